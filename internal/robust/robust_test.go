package robust

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/actors"
)

// virtualClock: After(d) advances time by d and fires at once, so heartbeat
// pacing and restart backoff cost no real time.
type virtualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *virtualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func graphConfig() actors.Config {
	return actors.Config{
		Logger:        logger(),
		Clock:         &virtualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		MaxRestarts:   200,
		RestartWindow: time.Minute,
	}
}

func checkNoLeaks(t *testing.T) func() {
	before := runtime.NumGoroutine()
	return func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func counts(s LoggerState) LoggerState {
	return LoggerState{FizzBuzz: s.FizzBuzz, Fizz: s.Fizz, Buzz: s.Buzz, Plain: s.Plain, PlainSum: s.PlainSum}
}

func actorStats(t *testing.T, g *actors.Graph, name string) actors.ActorStats {
	for _, a := range g.Stats().Actors {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no actor %q", name)
	return actors.ActorStats{}
}

// TestRobustPipelineWithInjectedFailures is the package's promise: with
// transient panics in every actor and two showstoppers in the worker, the
// logger's counts are exactly the closed form minus the dead-lettered values,
// the showstoppers are in the dead-letter queue, the restarts were counted,
// and the shutdown drained everything.
func TestRobustPipelineWithInjectedFailures(t *testing.T) {
	defer checkNoLeaks(t)()
	const beats, batch = 30, 100
	const n = beats * batch
	workerOnce := []uint64{1, 2, 64, 65, 500, 1001, 1500, 2999}
	showstoppers := []uint64{777, 1800}
	loggerOnce := []uint64{10, 11, 999, 2500}
	p, err := New(Options{
		Beats: beats, Rate: 10 * time.Millisecond, BatchSize: batch, ChannelCap: 256,
		WorkerPanicOnce:    workerOnce,
		Showstoppers:       showstoppers,
		LoggerPanicOnce:    loggerOnce,
		GeneratorPanicOnce: []uint64{1, 7, 30},
		HeartbeatPanicOnce: []uint64{2, 29},
		Graph:              graphConfig(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := *p.LoggerState
	if got, want := counts(st), Expected(n, showstoppers...); got != want {
		t.Fatalf("logger counts %+v\nwant          %+v", got, want)
	}
	if st.LastSeq != n || st.Gaps != uint64(len(showstoppers)) || st.Total() != n-uint64(len(showstoppers)) {
		t.Fatalf("logger last seq %d gaps %d total %d", st.LastSeq, st.Gaps, st.Total())
	}
	if p.GeneratorState.NextSeq != n+1 || p.HeartbeatState.Sent != beats {
		t.Fatalf("generator next %d heartbeat sent %d", p.GeneratorState.NextSeq, p.HeartbeatState.Sent)
	}

	var dead []uint64
	for _, d := range p.Graph.DeadLetters() {
		v := d.Message.(Value)
		dead = append(dead, v.V)
		if d.Actor != Worker || d.Channel != "values" || !strings.Contains(d.Stack, "pipeline_test.go") ||
			d.Panic != "injected showstopper "+itoa(v.V) {
			t.Fatalf("dead letter %+v", d)
		}
	}
	if !slices.Equal(dead, showstoppers) {
		t.Fatalf("dead letters %v, want %v", dead, showstoppers)
	}

	s := p.Graph.Stats()
	if s.DeadLetters != uint64(len(showstoppers)) || s.DeadLettersEvicted != 0 {
		t.Fatalf("dead-letter stats %+v", s)
	}
	// Worker: one restart per transient value; a showstopper crashes it
	// 3 times at the head, plus at most once inside a batch before that.
	w := actorStats(t, p.Graph, Worker).Restarts
	if lo, hi := len(workerOnce)+3*len(showstoppers), len(workerOnce)+4*len(showstoppers); w < lo || w > hi {
		t.Fatalf("worker restarts %d, want %d..%d", w, lo, hi)
	}
	for name, want := range map[string]int{Logger: len(loggerOnce), Generator: 3, Heartbeat: 2} {
		if r := actorStats(t, p.Graph, name).Restarts; r != want {
			t.Fatalf("%s restarts %d, want %d", name, r, want)
		}
	}
	for _, a := range s.Actors {
		if a.Status != actors.StatusStopped {
			t.Fatalf("actor %s ended %v", a.Name, a.Status)
		}
	}
	for _, c := range s.Channels {
		if c.Len != 0 || !c.Closed {
			t.Fatalf("channel %+v not drained", c)
		}
	}
	if vs := s.Channels[1]; vs.Name != "values" || vs.Sent != n || vs.Taken != n {
		t.Fatalf("values channel %+v", vs)
	}
}

func itoa(v uint64) string { b, _ := json.Marshal(v); return string(b) }

// TestRobustPipelineGracefulStopMidStream stops an endless heartbeat from
// outside: everything generated before the stop is counted exactly once.
func TestRobustPipelineGracefulStopMidStream(t *testing.T) {
	defer checkNoLeaks(t)()
	cfg := graphConfig()
	cfg.Clock = actors.SystemClock{}
	cfg.BackoffMin = -1 // restart at once
	p, err := New(Options{
		Rate: 100 * time.Microsecond, BatchSize: 50,
		WorkerPanicOnce: []uint64{5, 120, 121},
		Showstoppers:    []uint64{333},
		Graph:           cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Graph.Start(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap, err := p.Graph.SnapshotStates()
		if err != nil {
			t.Fatal(err)
		}
		var ls LoggerState
		if err := json.Unmarshal(snap[Logger], &ls); err != nil {
			t.Fatal(err)
		}
		if ls.LastSeq > 2000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress: %+v", ls)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := p.Graph.Wait(); err != nil {
		t.Fatal(err)
	}
	n := p.GeneratorState.NextSeq - 1
	if n%50 != 0 || n < 2000 {
		t.Fatalf("generated %d", n)
	}
	if got, want := counts(*p.LoggerState), Expected(n, 333); got != want {
		t.Fatalf("after stop at %d: logger %+v\nwant %+v", n, got, want)
	}
	if len(p.Graph.DeadLetters()) != 1 {
		t.Fatalf("dead letters %+v", p.Graph.DeadLetters())
	}
	for _, c := range p.Graph.Stats().Channels {
		if c.Len != 0 {
			t.Fatalf("channel %+v not drained", c)
		}
	}
}

// TestRobustPipelineRestoreFromSnapshot runs the first half, snapshots,
// restores into a fresh pipeline and runs the second half: the final counts
// equal one uninterrupted run.
func TestRobustPipelineRestoreFromSnapshot(t *testing.T) {
	first, err := New(Options{Beats: 10, BatchSize: 30, WorkerPanicOnce: []uint64{45}, Graph: graphConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap, err := first.Graph.SnapshotStates()
	if err != nil {
		t.Fatal(err)
	}
	second, err := New(Options{Beats: 25, BatchSize: 30, LoggerPanicOnce: []uint64{400}, Graph: graphConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Graph.RestoreStates(snap); err != nil {
		t.Fatal(err)
	}
	if err := second.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := counts(*second.LoggerState), Expected(25*30); got != want {
		t.Fatalf("logger %+v\nwant   %+v", got, want)
	}
	if second.LoggerState.Gaps != 0 {
		t.Fatalf("gaps %d", second.LoggerState.Gaps)
	}
}

// TestRobustRestartBudgetExhaustionStopsGraph: a worker that fails on every
// value exceeds its budget (the showstopper threshold is set above the
// budget); the graph stops gracefully with an error naming the worker.
func TestRobustRestartBudgetExhaustionStopsGraph(t *testing.T) {
	defer checkNoLeaks(t)()
	cfg := graphConfig()
	cfg.MaxRestarts = 5
	cfg.ShowstopperThreshold = 100
	p, err := New(Options{Beats: 1000, BatchSize: 10, Showstoppers: []uint64{25}, Graph: cfg})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(context.Background())
	var esc *actors.EscalationError
	if !errors.As(err, &esc) {
		t.Fatalf("Run = %v, want an escalation", err)
	}
	if esc.Actor != Worker || !strings.Contains(err.Error(), `"worker"`) ||
		!strings.Contains(err.Error(), "injected showstopper 25") {
		t.Fatalf("escalation %+v: %v", esc, err)
	}
	if r := actorStats(t, p.Graph, Worker).Restarts; r != 5 {
		t.Fatalf("worker restarts %d, want 5", r)
	}
	// Graceful: the heartbeat stopped early, the logger drained what the
	// worker had forwarded (values 1..24), and every actor ended.
	if p.HeartbeatState.Sent >= 1000 {
		t.Fatal("heartbeat was not stopped by the escalation")
	}
	if got, want := counts(*p.LoggerState), Expected(24); got != want {
		t.Fatalf("logger %+v, want %+v", got, want)
	}
	for _, a := range p.Graph.Stats().Actors {
		if a.Status != actors.StatusStopped && a.Status != actors.StatusFailed {
			t.Fatalf("actor %s still %v", a.Name, a.Status)
		}
	}
}
