package actors

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type counterState struct{ N int }

func TestRestartOnPanicKeepsState(t *testing.T) {
	defer checkNoLeaks(t)()
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	st := &counterState{}
	var sawRestarts []int
	mustAdd(t, g, Spec{Name: "flaky", State: st, Run: func(ctx *Context) error {
		s := StateOf[counterState](ctx)
		sawRestarts = append(sawRestarts, ctx.Restarts())
		for s.N < 10 {
			s.N++
			if s.N%3 == 0 && ctx.Restarts() < s.N/3 {
				panic("boom at " + string(rune('0'+s.N)))
			}
		}
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.N != 10 {
		t.Fatalf("state N = %d, want 10 (state kept across restarts)", st.N)
	}
	as := g.Stats().Actors[0]
	if as.Restarts != 3 || as.Status != StatusStopped || !strings.Contains(as.LastFailure, "boom at 9") {
		t.Fatalf("stats = %+v, want 3 restarts, stopped, last failure boom at 9", as)
	}
	if want := []int{0, 1, 2, 3}; len(sawRestarts) != 4 || sawRestarts[3] != 3 {
		t.Fatalf("ctx.Restarts() per run = %v, want %v", sawRestarts, want)
	}
}

func TestRestartOnReturnedError(t *testing.T) {
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	runs := 0
	mustAdd(t, g, Spec{Name: "err", Run: func(ctx *Context) error {
		runs++
		if runs < 3 {
			return errors.New("transient")
		}
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if runs != 3 || g.Stats().Actors[0].Restarts != 2 {
		t.Fatalf("runs = %d restarts = %d", runs, g.Stats().Actors[0].Restarts)
	}
}

func TestResumableErrorResumes(t *testing.T) {
	cfg, clk := testConfig(t)
	cfg.MaxRestarts = 1 // a restart would count; resumes must not
	g := newTestGraph(t, cfg)
	runs := 0
	mustAdd(t, g, Spec{Name: "poller", Run: func(ctx *Context) error {
		runs++
		if runs <= 5 {
			return Resumable(errors.New("poll timeout"))
		}
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	as := g.Stats().Actors[0]
	if as.Restarts != 0 || as.Resumes != 5 || runs != 6 {
		t.Fatalf("restarts %d resumes %d runs %d, want 0/5/6", as.Restarts, as.Resumes, runs)
	}
	if len(clk.Sleeps()) != 0 {
		t.Fatalf("resume slept %v; want no backoff", clk.Sleeps())
	}
	if !IsResumable(Resumable(errors.New("x"))) || IsResumable(errors.New("x")) || Resumable(nil) != nil {
		t.Fatal("Resumable/IsResumable")
	}
}

func TestStopStrategyStopsOnlyThatActor(t *testing.T) {
	defer checkNoLeaks(t)()
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	out := NewChan[int]("out", 4)
	in2 := NewChan[int]("in2", 4)
	mustAdd(t, g, Spec{Name: "fragile", Strategy: Stop, Outputs: []Port{out}, Inputs: []Input{in2},
		Run: func(ctx *Context) error { panic("fatal") }})
	got := 0
	mustAdd(t, g, Spec{Name: "downstream", Inputs: []Input{out}, Run: func(ctx *Context) error {
		for out.WaitAvailable(ctx, 1) {
			out.TryTake()
			got++
		}
		return nil
	}})
	sendOK := make(chan bool, 1)
	mustAdd(t, g, Spec{Name: "upstream", Outputs: []Port{in2}, Run: func(ctx *Context) error {
		for i := 0; ; i++ {
			if !in2.Send(ctx, i) {
				sendOK <- false
				return nil
			}
		}
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("Stop strategy must not fail the graph: %v", err)
	}
	st := g.Stats()
	if st.Actors[0].Status != StatusFailed || st.Actors[0].Restarts != 0 {
		t.Fatalf("fragile = %+v", st.Actors[0])
	}
	if st.Actors[1].Status != StatusStopped {
		t.Fatalf("downstream = %+v (its input was closed by the stop)", st.Actors[1])
	}
	if ok := <-sendOK; ok {
		t.Fatal("upstream Send succeeded to a stopped consumer")
	}
}

func TestBackoffDoublesToCapFromInjectedClock(t *testing.T) {
	cfg, clk := testConfig(t)
	cfg.BackoffMin = time.Millisecond
	cfg.BackoffMax = 20 * time.Millisecond
	g := newTestGraph(t, cfg)
	runs := 0
	mustAdd(t, g, Spec{Name: "crashy", Run: func(ctx *Context) error {
		runs++
		if runs <= 7 {
			panic("again")
		}
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	want := []time.Duration{1 * ms, 2 * ms, 4 * ms, 8 * ms, 16 * ms, 20 * ms, 20 * ms}
	got := clk.Sleeps()
	if len(got) != len(want) {
		t.Fatalf("sleeps = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sleeps = %v, want %v", got, want)
		}
	}
}

func TestBackoffResetsAfterHealthyRun(t *testing.T) {
	cfg, clk := testConfig(t)
	cfg.BackoffMin = time.Millisecond
	cfg.BackoffMax = 10 * time.Millisecond
	g := newTestGraph(t, cfg)
	runs := 0
	mustAdd(t, g, Spec{Name: "a", Run: func(ctx *Context) error {
		runs++
		switch runs {
		case 1, 2, 3:
			panic("early")
		case 4:
			clk.Advance(time.Second) // ran "a long time" before failing
			panic("late")
		}
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := clk.Sleeps()
	ms := time.Millisecond
	if len(got) != 4 || got[0] != ms || got[1] != 2*ms || got[2] != 4*ms || got[3] != ms {
		t.Fatalf("sleeps = %v, want [1ms 2ms 4ms 1ms]", got)
	}
}

func TestRealClockFirstRestartIsQuick(t *testing.T) {
	g := newTestGraph(t, Config{Logger: testLogger(t)})
	var failedAt, restartedAt time.Time
	runs := 0
	mustAdd(t, g, Spec{Name: "a", Run: func(ctx *Context) error {
		runs++
		if runs == 1 {
			failedAt = time.Now()
			panic("once")
		}
		restartedAt = time.Now()
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// BackoffMin is 1ms; allow scheduling noise under -race.
	if d := restartedAt.Sub(failedAt); d < time.Millisecond || d > 200*time.Millisecond {
		t.Fatalf("first restart after %v, want about 1ms", d)
	}
}

func TestRestartBudgetEscalates(t *testing.T) {
	defer checkNoLeaks(t)()
	cfg, _ := testConfig(t)
	cfg.MaxRestarts = 4
	cfg.RestartWindow = time.Minute
	cfg.BackoffMax = 10 * time.Millisecond // virtual: 5 restarts stay inside the window
	g := newTestGraph(t, cfg)
	ch := NewChan[int]("ticks", 4)
	var sourceStopped atomic.Bool
	mustAdd(t, g, Spec{Name: "source", Outputs: []Port{ch}, Run: func(ctx *Context) error {
		stop := Signal(ctx.Stopping())
		for ch.Send(stop, 1) {
		}
		sourceStopped.Store(true)
		return nil
	}})
	mustAdd(t, g, Spec{Name: "doomed", Inputs: []Input{ch}, Run: func(ctx *Context) error {
		ch.WaitAvailable(ctx, 1)
		panic(errors.New("disk on fire"))
	}})
	err := g.Run(context.Background())
	var esc *EscalationError
	if !errors.As(err, &esc) {
		t.Fatalf("Run = %v, want *EscalationError", err)
	}
	if esc.Actor != "doomed" || esc.Restarts != 4 || !strings.Contains(err.Error(), "disk on fire") ||
		!strings.Contains(err.Error(), `"doomed"`) {
		t.Fatalf("escalation = %+v (%v)", esc, err)
	}
	var pe *PanicError
	if !errors.As(err, &pe) || !strings.Contains(pe.Stack, "supervisor_test.go") {
		t.Fatalf("cause is not a *PanicError with a stack: %v", err)
	}
	if !sourceStopped.Load() {
		t.Fatal("escalation did not stop the source gracefully")
	}
	for _, a := range g.Stats().Actors {
		if a.Status != StatusStopped && a.Status != StatusFailed {
			t.Fatalf("actor %s still %v after escalation", a.Name, a.Status)
		}
	}
}

func TestRestartBudgetWindowSlides(t *testing.T) {
	cfg, clk := testConfig(t)
	cfg.MaxRestarts = 2
	cfg.RestartWindow = time.Second
	g := newTestGraph(t, cfg)
	runs := 0
	mustAdd(t, g, Spec{Name: "a", Run: func(ctx *Context) error {
		runs++
		if runs <= 6 {
			if runs%2 == 1 {
				clk.Advance(2 * time.Second) // older restarts leave the window
			}
			panic("x")
		}
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatalf("6 restarts spread over time must not escalate: %v", err)
	}
}

func TestEscalateStrategy(t *testing.T) {
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	mustAdd(t, g, Spec{Name: "critical", Strategy: Escalate, Run: func(ctx *Context) error {
		return errors.New("lost quorum")
	}})
	err := g.Run(context.Background())
	var esc *EscalationError
	if !errors.As(err, &esc) || esc.Actor != "critical" || esc.Restarts != 0 {
		t.Fatalf("Run = %v", err)
	}
}

func TestAddValidation(t *testing.T) {
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	c := NewChan[int]("c", 2)
	run := func(*Context) error { return nil }
	if err := g.Add(Spec{Name: "", Run: run}); err == nil {
		t.Error("empty name accepted")
	}
	if err := g.Add(Spec{Name: "x"}); err == nil {
		t.Error("nil Run accepted")
	}
	if err := g.Add(Spec{Name: "x", Run: run, State: counterState{}}); err == nil {
		t.Error("non-pointer state accepted")
	}
	mustAdd(t, g, Spec{Name: "p", Run: run, Outputs: []Port{c}})
	if err := g.Add(Spec{Name: "p", Run: run}); err == nil {
		t.Error("duplicate name accepted")
	}
	if err := g.Add(Spec{Name: "p2", Run: run, Outputs: []Port{c}}); err == nil {
		t.Error("second producer accepted")
	}
	mustAdd(t, g, Spec{Name: "c", Run: run, Inputs: []Input{c}})
	if err := g.Add(Spec{Name: "c2", Run: run, Inputs: []Input{c}}); err == nil {
		t.Error("second consumer accepted")
	}
	if _, err := NewGraph(Config{ShowstopperThreshold: -1}); err == nil {
		t.Error("negative threshold accepted")
	}
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.Add(Spec{Name: "late", Run: run}); !errors.Is(err, ErrStarted) {
		t.Errorf("Add after start = %v", err)
	}
	if err := g.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v", err)
	}
}
