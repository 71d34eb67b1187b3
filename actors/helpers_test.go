package actors

import (
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// virtualClock is a fake Clock whose time only moves when somebody waits:
// After(d) advances the time by d and fires at once. Backoff therefore costs
// no real time, and the sleeps are recorded.
type virtualClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

var _ Clock = (*virtualClock)(nil)

func newVirtualClock() *virtualClock {
	return &virtualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
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
	c.sleeps = append(c.sleeps, d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *virtualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *virtualClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// testLogger logs to the test output when -v is given, else discards.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testConfig is a config with a virtual clock and a quiet logger.
func testConfig(t testing.TB) (Config, *virtualClock) {
	clk := newVirtualClock()
	return Config{
		Logger:          testLogger(t),
		Clock:           clk,
		MaxRestarts:     1000,
		RestartWindow:   time.Hour,
		ShutdownTimeout: 10 * time.Second,
	}, clk
}

func newTestGraph(t testing.TB, cfg Config) *Graph {
	t.Helper()
	g, err := NewGraph(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustAdd(t testing.TB, g *Graph, s Spec) {
	t.Helper()
	if err := g.Add(s); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkNoLeaks fails the test if goroutines started during it are still
// running (polling for a while, since exits are asynchronous).
func checkNoLeaks(t testing.TB) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				var ours []string
				for _, g := range strings.Split(string(buf[:n]), "\n\n") {
					if strings.Contains(g, "steadfast/actors") && !strings.Contains(g, "testing.tRunner") {
						ours = append(ours, g)
					}
				}
				t.Fatalf("goroutine leak: %d before, %d after:\n%s", before, runtime.NumGoroutine(), strings.Join(ours, "\n\n"))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
