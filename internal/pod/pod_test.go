package pod

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

type testPod struct {
	p    *Pod
	done chan struct{} // closed when Run returned; err holds its result
	err  error
	stop context.CancelFunc
	dir  string
}

// testLogger returns a pod's logger for a test: every record at info and
// above is checked as logCheck says (the test fails on a problem), and
// written to stderr with POD_TEST_LOG set.
func testLogger(t *testing.T, name string) *slog.Logger {
	var next slog.Handler = slog.NewTextHandler(io.Discard, nil)
	if os.Getenv("POD_TEST_LOG") != "" {
		next = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}).WithAttrs([]slog.Attr{slog.String("pod", name)})
	}
	lc := &logCheck{next: next, rec: &logProblems{}}
	t.Cleanup(func() {
		for _, p := range lc.rec.list() {
			t.Errorf("%s logged %s", name, p)
		}
	})
	return slog.New(lc)
}

// startPod runs a pod over mn (nil: the real transport, as cfg says).
func startPod(t *testing.T, mn *memNet, cfg Config, name string) *testPod {
	t.Helper()
	var nw network
	if mn != nil {
		nw = mn.node()
	}
	p, err := newPod(cfg, testLogger(t, name), nw)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tp := &testPod{p: p, done: make(chan struct{}), stop: cancel, dir: cfg.DataDir}
	go func() {
		tp.err = p.Run(ctx)
		close(tp.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-tp.done:
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop", name)
		}
		p.Close()
	})
	return tp
}

// finished waits for a subscriber pod to finish its stream (at most
// within) and fails the test if it does not or ends with an error.
func (tp *testPod) finished(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-tp.done:
	case <-time.After(within):
		t.Fatal("subscriber did not finish")
	}
	if tp.err != nil {
		t.Fatalf("subscriber: %v", tp.err)
	}
}

func baseConfig(t *testing.T, role Role, id string, endpoint string) Config {
	c := DefaultConfig(role)
	c.NodeID = id
	c.DataDir = filepath.Join(t.TempDir(), id)
	c.Bind = "127.0.0.1:0"
	c.Membership = "local"
	c.Insecure = true // tests that want a key set one
	c.DataEndpoint = endpoint
	c.MetricsAddr = "127.0.0.1:0"
	c.SnapshotInterval = 100 * time.Millisecond
	c.Rate = 2 * time.Millisecond
	return c
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readFinal(t *testing.T, dir string) FinalState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, FinalStateFile))
	if err != nil {
		t.Fatal(err)
	}
	var f FinalState
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// histogramOf gathers the histogram called name from p's registry.
func histogramOf(t *testing.T, p *Pod, name string) *dto.Histogram {
	t.Helper()
	fams, err := p.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 && f.GetMetric()[0].GetHistogram() != nil {
			return f.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("%s exports no histogram %s", p.ID(), name)
	return nil
}

func scrape(t *testing.T, p *Pod) string {
	t.Helper()
	resp, err := http.Get("http://" + p.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestPodsInProcess runs a publisher and a subscriber over the in-memory
// network with real memberlist, snapshots and replication: the subscriber
// finishes by itself with a tally matching the closed form.
func TestPodsInProcess(t *testing.T) {
	for _, tc := range []struct {
		name        string
		panicEvery  uint64
		showstopper uint64
	}{{"clean", 0, 0}, {"panics", 97, 0}, {"showstopper", 0, 500}, {"last-value-showstopper", 0, 1020}, {"first-value-showstopper", 50, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			mn := newMemNet()
			pc := baseConfig(t, Publisher, "pub-1", "127.0.0.1:1")
			pc.Beats, pc.Batch = 60, 17
			pub := startPod(t, mn, pc, "pub")
			sc := baseConfig(t, Subscriber, "sub-1", "127.0.0.1:2")
			sc.Join = []string{pub.p.GossipAddr()}
			sc.PanicEvery, sc.Showstopper = tc.panicEvery, tc.showstopper
			sub := startPod(t, mn, sc, "sub")
			sub.finished(t, 60*time.Second)
			n := pc.Beats * uint64(pc.Batch)
			f := readFinal(t, sub.dir)
			var allowed []uint64
			if tc.showstopper != 0 {
				allowed = []uint64{tc.showstopper}
			}
			r := Check(f.Tally["pub-1"], n, allowed)
			if !r.OK() {
				t.Fatalf("check: %+v", r)
			}
			// The worker takes whole batches and injects at most one panic
			// per batch (so the runtime never takes injected panics for a
			// showstopper); how many batches the stream takes depends on
			// how the publisher coalesced beats, so only ask for some.
			want := 0
			if tc.panicEvery > 0 {
				want = 1
			}
			if tc.panicEvery > 0 && f.Restarts < want {
				t.Fatalf("only %d restarts with panic every %d of %d values", f.Restarts, tc.panicEvery, n)
			}
			if tc.showstopper != 0 && f.DeadLetters != 1 {
				t.Fatalf("dead letters %d, want 1", f.DeadLetters)
			}
			for _, want := range []string{"steadfast_publisher_last_seq " + fmt.Sprint(n), "steadfast_breaker_state{subscriber=\"sub-1\"}"} {
				waitFor(t, "publisher metric "+want, 10*time.Second, func() bool { return strings.Contains(scrape(t, pub.p), want) })
			}
			// The subscriber measured the beat-to-logger latency of every
			// batch it applied (one host: no clock skew, nothing clamped).
			latency := histogramOf(t, sub.p, "steadfast_delivery_latency_seconds")
			if latency.GetSampleCount() == 0 || latency.GetSampleSum() <= 0 {
				t.Fatalf("no delivery latency samples: %v", latency)
			}
			if m := scrape(t, sub.p); !strings.Contains(m, `steadfast_delivery_latency_dropped_total{reason="missing"} 0`) ||
				!strings.Contains(m, `steadfast_delivery_latency_dropped_total{reason="future"} 0`) ||
				!strings.Contains(m, `steadfast_delivery_latency_dropped_total{reason="too-old"} 0`) ||
				!strings.Contains(m, "steadfast_delivery_latency_clamped_total 0") {
				t.Errorf("beat times dropped or clamped on one host:\n%s", grepLines(m, "steadfast_delivery_latency_"))
			}
			// Every metric passes the Prometheus linter (what promtool
			// check metrics runs): no gauge named like a counter or a
			// histogram part, counters end in _total; and promtool itself
			// when it is installed.
			for _, pp := range []*Pod{pub.p, sub.p} {
				problems, err := promlint.New(strings.NewReader(scrape(t, pp))).Lint()
				if err != nil {
					t.Fatal(err)
				}
				for _, pr := range problems {
					t.Errorf("promlint: %s: %s", pr.Metric, pr.Text)
				}
				if promtool, err := exec.LookPath("promtool"); err == nil {
					cmd := exec.Command(promtool, "check", "metrics")
					cmd.Stdin = strings.NewReader(scrape(t, pp))
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Errorf("promtool check metrics on %s: %v\n%s", pp.ID(), err, out)
					}
				}
			}
			// Every steadfast_* metric a pod serves is documented in doc.go.
			doc, err := os.ReadFile("doc.go")
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(scrape(t, pub.p)+scrape(t, sub.p), "\n") {
				if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
					name = strings.Fields(name)[0]
					if strings.HasPrefix(name, "steadfast_") && !strings.Contains(string(doc), "- "+name) {
						t.Errorf("metric %s is not documented in doc.go", name)
					}
				}
			}
		})
	}
}

// TestSubscriberReplacedEmptyDisk stops a subscriber mid-stream and starts a
// replacement with the same node id and an empty data dir: it restores from
// the publisher's replica and the stream completes exactly once.
func TestSubscriberReplacedEmptyDisk(t *testing.T) {
	mn := newMemNet()
	pc := baseConfig(t, Publisher, "pub-1", "127.0.0.1:1")
	pc.Beats, pc.Batch, pc.Rate = 400, 10, 2*time.Millisecond
	pub := startPod(t, mn, pc, "pub")
	sc := baseConfig(t, Subscriber, "sub-1", "127.0.0.1:2")
	sc.Join = []string{pub.p.GossipAddr()}
	sub := startPod(t, mn, sc, "sub")
	waitFor(t, "some values delivered and acked", 30*time.Second, func() bool {
		// Scrape while the pods run (the race detector watches the collectors).
		if !strings.Contains(scrape(t, pub.p)+scrape(t, sub.p), "steadfast_up 1") {
			return false
		}
		st := pub.p.pubSide.status.Load()
		return len(st.Subs) == 1 && st.Subs[0].Acked > 500
	})
	// Abrupt stop: the network vanishes first (as with SIGKILL), then Run.
	sub.p.driver.Close()
	sub.stop()
	<-sub.done
	sub.p.Close()

	sc2 := sc
	sc2.DataDir = filepath.Join(t.TempDir(), "sub-1-new")
	sc2.DataEndpoint = "127.0.0.1:3"
	sub2 := startPod(t, mn, sc2, "sub2")
	select {
	case <-sub2.done:
		if sub2.err != nil {
			t.Fatal(sub2.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("replacement did not finish")
	}
	f := readFinal(t, sub2.dir)
	if !strings.HasPrefix(f.RestoreSource, "peer:") {
		t.Fatalf("restore source %q, want peer:...", f.RestoreSource)
	}
	if r := Check(f.Tally["pub-1"], 4000, nil); !r.OK() {
		t.Fatalf("check: %+v", r)
	}
}

// TestMetricsDuringStartup scrapes a pod while it starts, runs and stops:
// /healthz says 503 before it runs and 200 while it runs, /metrics always
// answers (and the race detector watches the collector).
func TestMetricsDuringStartup(t *testing.T) {
	mn := newMemNet()
	pc := baseConfig(t, Publisher, "pub-1", "127.0.0.1:1")
	// A seed that never answers keeps the pod joining.
	pc.Join = []string{"127.0.0.1:1"}
	p, err := newPod(pc, testLogger(t, "pub"), mn.node())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	health := func() int {
		resp, err := http.Get("http://" + p.MetricsAddr() + "/healthz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, "healthz 503 while joining", 10*time.Second, func() bool { return health() == http.StatusServiceUnavailable })
	if m := scrape(t, p); !strings.Contains(m, "steadfast_up 0") {
		t.Fatalf("metrics while starting lack steadfast_up 0")
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Run returned nil although the cluster never started")
	}
}

// TestPublisherReplacedMidBeat replaces the publisher (abrupt stop, empty
// data dir) while its small outbox makes the publishing actor take partial
// beats, so the restored outbox usually ends inside a beat: the replacement
// must complete that beat and the stream must still have exactly N values.
func TestPublisherReplacedMidBeat(t *testing.T) {
	mn := newMemNet()
	pc := baseConfig(t, Publisher, "pub-1", "127.0.0.1:1")
	pc.Beats, pc.Batch, pc.Rate, pc.OutboxCapacity = 300, 64, time.Millisecond, 100
	pub := startPod(t, mn, pc, "pub")
	sc := baseConfig(t, Subscriber, "sub-1", "127.0.0.1:2")
	sc.Join = []string{pub.p.GossipAddr()}
	sub := startPod(t, mn, sc, "sub")
	waitFor(t, "a third of the stream delivered", 30*time.Second, func() bool {
		st := pub.p.pubSide.status.Load()
		return st.Last > 300*64/3
	})
	pub.p.driver.Close()
	pub.stop()
	<-pub.done
	pub.p.Close()

	pc2 := pc
	pc2.DataDir = filepath.Join(t.TempDir(), "pub-1-new")
	pc2.DataEndpoint = "127.0.0.1:3"
	pc2.Join = []string{sub.p.GossipAddr()}
	pub2 := startPod(t, mn, pc2, "pub2")
	select {
	case <-sub.done:
		if sub.err != nil {
			t.Fatal(sub.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("subscriber did not finish (publisher replacement at seq %d)", pub2.p.pubSide.status.Load().Last)
	}
	f := readFinal(t, sub.dir)
	if r := Check(f.Tally["pub-1"], 300*64, nil); !r.OK() {
		t.Fatalf("check: %+v", r)
	}
}
