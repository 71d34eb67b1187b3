package actors

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestGracefulShutdownDrains cancels the context of a running pipeline whose
// source would run forever: the source stops, every message it sent is
// processed, every channel ends closed and empty, and no goroutine leaks.
func TestGracefulShutdownDrains(t *testing.T) {
	defer checkNoLeaks(t)()
	cfg, _ := testConfig(t)
	cfg.Clock = SystemClock{}
	g := newTestGraph(t, cfg)
	a := NewChan[int]("a", 64)
	b := NewChan[int]("b", 64)
	var sent atomic.Int64
	mustAdd(t, g, Spec{Name: "source", Outputs: []Port{a}, Run: func(ctx *Context) error {
		stop := Signal(ctx.Stopping())
		for i := 0; ; i++ {
			if !a.Send(stop, i) {
				return nil
			}
			sent.Add(1)
		}
	}})
	mustAdd(t, g, Spec{Name: "slow", Inputs: []Input{a}, Outputs: []Port{b}, Run: func(ctx *Context) error {
		buf := make([]int, 16)
		for a.WaitAvailable(ctx, 1) {
			k := a.PeekBatch(buf)
			time.Sleep(50 * time.Microsecond)
			if !Forward(ctx, a, k, b, buf[:k]) {
				return nil
			}
		}
		return nil
	}})
	var got atomic.Int64
	mustAdd(t, g, Spec{Name: "sink", Inputs: []Input{b}, Run: func(ctx *Context) error {
		buf := make([]int, 16)
		want := 0
		for b.WaitAvailable(ctx, 1) {
			k := b.TakeBatch(buf)
			for _, v := range buf[:k] {
				if v != want {
					return errors.New("out of order")
				}
				want++
			}
			got.Add(int64(k))
		}
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "some traffic", 5*time.Second, func() bool { return got.Load() > 500 })
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if got.Load() != sent.Load() {
		t.Fatalf("sink got %d of %d sent: not drained", got.Load(), sent.Load())
	}
	st := g.Stats()
	for _, c := range st.Channels {
		if c.Len != 0 || !c.Closed {
			t.Fatalf("channel %+v not closed and empty", c)
		}
	}
	for _, a := range st.Actors {
		if a.Status != StatusStopped || a.Restarts != 0 {
			t.Fatalf("actor %+v", a)
		}
	}
}

// TestShutdownTimeoutNamesBusyActors: one actor waits on its own terms (it
// honours Done, so the abort frees it), one ignores everything (stuck).
func TestShutdownTimeoutNamesBusyActors(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	cfg, _ := testConfig(t)
	cfg.ShutdownTimeout = 50 * time.Millisecond
	cfg.AbortGrace = 50 * time.Millisecond
	g := newTestGraph(t, cfg)
	run := func(ctx *Context) error { <-ctx.Stopping(); return nil }
	mustAdd(t, g, Spec{Name: "polite", Run: run})
	mustAdd(t, g, Spec{Name: "stubborn", Run: func(ctx *Context) error { <-ctx.Done(); return nil }})
	mustAdd(t, g, Spec{Name: "wedged", Run: func(ctx *Context) error { <-release; return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err := g.Run(ctx)
	var te *ShutdownTimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("Run = %v, want *ShutdownTimeoutError", err)
	}
	if !slices.Equal(te.Busy, []string{"stubborn", "wedged"}) || !slices.Equal(te.Stuck, []string{"wedged"}) {
		t.Fatalf("busy %v stuck %v", te.Busy, te.Stuck)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Run took %v", d)
	}
}

// TestPollingSourceStops: a source that blocks in a poll loop outside the
// graph stops on a graceful stop.
func TestPollingSourceStops(t *testing.T) {
	defer checkNoLeaks(t)()
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	out := NewChan[int]("out", 8)
	polls := atomic.Int64{}
	mustAdd(t, g, Spec{Name: "receive", Outputs: []Port{out}, Run: func(ctx *Context) error {
		for !ctx.IsStopping() {
			polls.Add(1)
			select { // "poll with a timeout"
			case <-time.After(time.Millisecond):
			case <-ctx.Stopping():
			}
		}
		return nil
	}})
	mustAdd(t, g, Spec{Name: "sink", Inputs: []Input{out}, Run: func(ctx *Context) error {
		for out.WaitAvailable(ctx, 1) {
			out.TryTake()
		}
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	g.Start(ctx)
	waitFor(t, "polling", 5*time.Second, func() bool { return polls.Load() > 3 })
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestStopIsIdempotentAndWorksBeforeStart(t *testing.T) {
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	g.Stop()
	g.Stop()
	mustAdd(t, g, Spec{Name: "src", Run: func(ctx *Context) error { <-ctx.Stopping(); return nil }})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	default:
		t.Fatal("Done not closed after Run")
	}
}

func TestStatsWhileRunning(t *testing.T) {
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	c := NewChan[int]("c", 8)
	filled := make(chan struct{})
	mustAdd(t, g, Spec{Name: "p", Outputs: []Port{c}, Run: func(ctx *Context) error {
		c.SendBatch([]int{1, 2, 3, 4, 5})
		close(filled)
		<-ctx.Stopping()
		return nil
	}})
	mustAdd(t, g, Spec{Name: "q", Inputs: []Input{c}, Run: func(ctx *Context) error {
		<-filled
		c.TakeBatch(make([]int, 2))
		<-ctx.Stopping()
		for c.WaitAvailable(ctx, 1) {
			c.TryTake()
		}
		return nil
	}})
	g.Start(context.Background())
	waitFor(t, "fill", 5*time.Second, func() bool { return g.Stats().Channels[0].Taken == 2 })
	st := g.Stats()
	if cs := st.Channels[0]; cs.Name != "c" || cs.Len != 3 || cs.Cap != 8 || cs.Sent != 5 || cs.Taken != 2 || cs.Closed {
		t.Fatalf("channel stats %+v", cs)
	}
	if st.Actors[0].Name != "p" || st.Actors[0].Status != StatusRunning {
		t.Fatalf("actor stats %+v", st.Actors[0])
	}
	g.Stop()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	st = g.Stats()
	if cs := st.Channels[0]; cs.Len != 0 || cs.Sent != 5 || cs.Taken != 5 || !cs.Closed {
		t.Fatalf("channel stats after stop %+v", cs)
	}
	if st.Actors[0].Status.String() != "stopped" || StatusRestarting.String() != "restarting" {
		t.Fatal("status strings")
	}
}
