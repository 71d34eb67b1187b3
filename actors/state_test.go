package actors

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

type pairState struct {
	A, B  int
	Label string
}

func TestSnapshotRestoreBeforeStart(t *testing.T) {
	cfg, _ := testConfig(t)
	g1 := newTestGraph(t, cfg)
	run := func(*Context) error { return nil }
	mustAdd(t, g1, Spec{Name: "x", Run: run, State: &pairState{A: 3, B: 4, Label: "hi"}})
	mustAdd(t, g1, Spec{Name: "y", Run: run, State: &counterState{N: 42}})
	mustAdd(t, g1, Spec{Name: "stateless", Run: run})
	snap, err := g1.SnapshotStates()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap) != 2 {
		t.Fatalf("snapshot has %d entries, want 2 (stateless actors omitted)", len(snap))
	}

	g2 := newTestGraph(t, cfg)
	x, y := &pairState{}, &counterState{}
	mustAdd(t, g2, Spec{Name: "x", Run: run, State: x})
	mustAdd(t, g2, Spec{Name: "y", Run: run, State: y})
	if err := g2.RestoreStates(snap); err != nil {
		t.Fatal(err)
	}
	if *x != (pairState{3, 4, "hi"}) || y.N != 42 {
		t.Fatalf("restored x=%+v y=%+v", x, y)
	}
	if err := g2.RestoreStates(map[string][]byte{"nope": []byte("{}")}); !errors.Is(err, ErrUnknownName) {
		t.Fatalf("restore unknown = %v", err)
	}
	if err := g2.RestoreStates(map[string][]byte{"x": []byte("garbage")}); err == nil {
		t.Fatal("restore garbage succeeded")
	}
	if err := g2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g2.RestoreStates(snap); !errors.Is(err, ErrStarted) {
		t.Fatalf("restore after start = %v", err)
	}
}

// TestSnapshotWhileRunningIsConsistent: the actor breaks its invariant A == B
// in the middle of every step and restores it before Checkpoint; snapshots
// taken concurrently (under -race) must never see A != B and never go back.
// The actor also restarts a few times (after a checkpoint) along the way.
func TestSnapshotWhileRunningIsConsistent(t *testing.T) {
	defer checkNoLeaks(t)()
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	const steps = 3000
	st := &pairState{}
	mustAdd(t, g, Spec{Name: "pair", State: st, Run: func(ctx *Context) error {
		s := StateOf[pairState](ctx)
		for s.B < steps {
			s.A++
			runtime.Gosched()
			s.B++
			ctx.MarkDirty()
			if err := ctx.Checkpoint(); err != nil {
				return err
			}
			if s.B%1000 == 0 && ctx.Restarts() < s.B/1000 {
				panic("restart me")
			}
		}
		return nil
	}})
	var stop atomic.Bool
	var wg sync.WaitGroup
	var seen, last int
	var bad error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			snap, err := g.SnapshotStates()
			if err != nil {
				bad = err
				return
			}
			var p pairState
			if err := json.Unmarshal(snap["pair"], &p); err != nil {
				bad = err
				return
			}
			if p.A != p.B || p.B < last {
				bad = errors.New("inconsistent snapshot")
				t.Errorf("snapshot %+v after %d", p, last)
				return
			}
			last = p.B
			seen++
		}
	}()
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()
	if bad != nil {
		t.Fatal(bad)
	}
	if seen < 10 {
		t.Fatalf("only %d snapshots taken", seen)
	}
	snap, _ := g.SnapshotStates()
	var final pairState
	json.Unmarshal(snap["pair"], &final)
	if final.A != steps || final.B != steps || g.Stats().Actors[0].Restarts != 3 {
		t.Fatalf("final %+v restarts %d", final, g.Stats().Actors[0].Restarts)
	}
}

func TestCheckpointOnlyWhenDirty(t *testing.T) {
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	var versions []uint64
	mustAdd(t, g, Spec{Name: "a", State: &counterState{}, Run: func(ctx *Context) error {
		ver := func() uint64 {
			ctx.a.mu.Lock()
			defer ctx.a.mu.Unlock()
			return ctx.a.version
		}
		versions = append(versions, ver()) // published at start
		ctx.Checkpoint()                   // clean: nothing
		versions = append(versions, ver())
		StateOf[counterState](ctx).N = 7
		ctx.MarkDirty()
		ctx.Checkpoint()
		versions = append(versions, ver())
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if versions[0] != versions[1] || versions[2] != versions[1]+1 {
		t.Fatalf("versions = %v", versions)
	}
}

type badState struct{ C chan int }

func TestCheckpointCodecError(t *testing.T) {
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	var cpErr error
	mustAdd(t, g, Spec{Name: "a", State: &badState{}, Run: func(ctx *Context) error {
		ctx.MarkDirty()
		cpErr = ctx.Checkpoint()
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cpErr == nil {
		t.Fatal("Checkpoint of an unmarshalable state returned nil")
	}
	if _, err := g.SnapshotStates(); err == nil {
		t.Fatal("SnapshotStates of an unmarshalable state returned nil error")
	}
}
