package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// runPoisoned runs source(1..n) → stage → sink where the stage panics every
// time it processes a value in poison, peeking batches of batch.
func runPoisoned(t *testing.T, cfg Config, spec Spec, n int, poison func(v int) bool, batch int) (*Graph, []int) {
	t.Helper()
	g := newTestGraph(t, cfg)
	in := NewChan[int]("in", 16)
	out := NewChan[int]("out", 16)
	mustAdd(t, g, Spec{Name: "source", Outputs: []Port{in}, Run: func(ctx *Context) error {
		for i := 1; i <= n; i++ {
			if !in.Send(ctx, i) {
				return nil
			}
		}
		return nil
	}})
	spec.Name = "stage"
	spec.Inputs = []Input{in}
	spec.Outputs = []Port{out}
	spec.Run = func(ctx *Context) error {
		buf := make([]int, batch)
		res := make([]int, batch)
		for in.WaitAvailable(ctx, 1) {
			k := in.PeekBatch(buf)
			for i, v := range buf[:k] {
				if poison(v) {
					processPoison(v)
				}
				res[i] = v
			}
			if !Forward(ctx, in, k, out, res[:k]) {
				return nil
			}
		}
		return nil
	}
	mustAdd(t, g, spec)
	var got []int
	mustAdd(t, g, Spec{Name: "sink", Inputs: []Input{out}, Run: func(ctx *Context) error {
		for out.WaitAvailable(ctx, 1) {
			v, _ := out.TryTake()
			got = append(got, v)
		}
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return g, got
}

//go:noinline
func processPoison(v int) { panic(fmt.Sprintf("poison %d", v)) }

func without(n int, skip ...int) []int {
	var out []int
	for i := 1; i <= n; i++ {
		if !slices.Contains(skip, i) {
			out = append(out, i)
		}
	}
	return out
}

func TestShowstopperGoesToDeadLetters(t *testing.T) {
	defer checkNoLeaks(t)()
	cfg, _ := testConfig(t)
	g, got := runPoisoned(t, cfg, Spec{}, 20, func(v int) bool { return v == 5 }, 1)
	if want := without(20, 5); !slices.Equal(got, want) {
		t.Fatalf("sink got %v, want %v", got, want)
	}
	dl := g.DeadLetters()
	if len(dl) != 1 {
		t.Fatalf("dead letters = %+v", dl)
	}
	d := dl[0]
	if d.Actor != "stage" || d.Channel != "in" || d.Message != 5 || d.Pos != 4 || d.Crashes != 3 ||
		d.Panic != "poison 5" || d.Err != nil {
		t.Fatalf("dead letter = %+v", d)
	}
	if !strings.Contains(d.Stack, "processPoison") || !strings.Contains(d.Stack, "deadletter_test.go") {
		t.Fatalf("stack excerpt does not show the panic site:\n%s", d.Stack)
	}
	if strings.Contains(d.Stack, "runtime/debug.Stack") {
		t.Fatalf("stack excerpt includes the runtime's frames:\n%s", d.Stack)
	}
	st := g.Stats()
	if st.Actors[1].Restarts != 3 || st.DeadLetters != 1 || st.DeadLettersHeld != 1 || st.DeadLettersEvicted != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestShowstopperThresholdConfigurable(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.ShowstopperThreshold = 5
	g, _ := runPoisoned(t, cfg, Spec{}, 10, func(v int) bool { return v == 3 }, 1)
	if r := g.Stats().Actors[1].Restarts; r != 5 || g.DeadLetters()[0].Crashes != 5 {
		t.Fatalf("restarts = %d, want 5 (graph threshold)", r)
	}
	cfg, _ = testConfig(t)
	g, _ = runPoisoned(t, cfg, Spec{ShowstopperThreshold: 1}, 10, func(v int) bool { return v == 3 }, 1)
	if r := g.Stats().Actors[1].Restarts; r != 1 {
		t.Fatalf("restarts = %d, want 1 (spec override)", r)
	}
}

// TestShowstopperInBatch: the stage peeks batches of 8; the culprit is in the
// middle, so the batch head is innocent and must not be dead-lettered.
func TestShowstopperInBatch(t *testing.T) {
	cfg, _ := testConfig(t)
	g, got := runPoisoned(t, cfg, Spec{}, 40, func(v int) bool { return v == 13 || v == 14 }, 8)
	if want := without(40, 13, 14); !slices.Equal(got, want) {
		t.Fatalf("sink got %v, want %v", got, want)
	}
	dl := g.DeadLetters()
	if len(dl) != 2 || dl[0].Message != 13 || dl[1].Message != 14 {
		t.Fatalf("dead letters = %+v", dl)
	}
	// 13: at most one crash as part of a batch, then 3 at the head; 14: 3 at
	// the head (careful mode persists until the batch is passed).
	if r := g.Stats().Actors[1].Restarts; r < 6 || r > 8 {
		t.Fatalf("restarts = %d, want 6..8", r)
	}
}

func TestTransientCrashesAreNotShowstoppers(t *testing.T) {
	cfg, _ := testConfig(t)
	crashes := map[int]int{}
	// 5 crashes twice (below N=3) and then succeeds; 9 crashes once.
	g, got := runPoisoned(t, cfg, Spec{}, 12, func(v int) bool {
		if (v == 5 && crashes[v] < 2) || (v == 9 && crashes[v] < 1) {
			crashes[v]++
			return true
		}
		return false
	}, 1)
	if want := without(12); !slices.Equal(got, want) {
		t.Fatalf("sink got %v", got)
	}
	if len(g.DeadLetters()) != 0 || g.Stats().Actors[1].Restarts != 3 {
		t.Fatalf("dead letters %v restarts %d", g.DeadLetters(), g.Stats().Actors[1].Restarts)
	}
}

// TestCrashWithoutPeekDoesNotCount: a consumer that crashes before peeking
// has nothing in flight; the head message is innocent.
func TestCrashWithoutPeekDoesNotCount(t *testing.T) {
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	in := NewChan[int]("in", 4)
	in.TrySend(1)
	in.Close()
	runs := 0
	mustAdd(t, g, Spec{Name: "c", Inputs: []Input{in}, Run: func(ctx *Context) error {
		runs++
		if runs <= 5 {
			panic("startup failure")
		}
		for in.WaitAvailable(ctx, 1) {
			in.TryTake()
		}
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(g.DeadLetters()) != 0 {
		t.Fatalf("dead letters = %+v", g.DeadLetters())
	}
}

func TestShowstopperFromReturnedError(t *testing.T) {
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	in := NewChan[string]("in", 4)
	in.SendBatch([]string{"ok", "bad", "ok2"})
	in.Close()
	var got []string
	mustAdd(t, g, Spec{Name: "c", Inputs: []Input{in}, Run: func(ctx *Context) error {
		for in.WaitAvailable(ctx, 1) {
			v, _ := in.TryPeek()
			if v == "bad" {
				return errors.New("cannot parse")
			}
			got = append(got, v)
			in.Commit(1)
		}
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	dl := g.DeadLetters()
	if len(dl) != 1 || dl[0].Message != "bad" || dl[0].Err == nil || dl[0].Panic != nil {
		t.Fatalf("dead letters = %+v", dl)
	}
	if !slices.Equal(got, []string{"ok", "ok2"}) {
		t.Fatalf("got %v", got)
	}
}

func TestDeadLettersBoundedWithEvictionCount(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.DeadLetterCap = 2
	cfg.ShowstopperThreshold = 1
	g, got := runPoisoned(t, cfg, Spec{}, 10, func(v int) bool { return v%2 == 0 }, 1)
	if !slices.Equal(got, []int{1, 3, 5, 7, 9}) {
		t.Fatalf("got %v", got)
	}
	dl := g.DeadLetters()
	if len(dl) != 2 || dl[0].Message != 8 || dl[1].Message != 10 {
		t.Fatalf("held = %+v, want the newest two (8, 10)", dl)
	}
	st := g.Stats()
	if st.DeadLetters != 5 || st.DeadLettersEvicted != 3 || st.DeadLettersHeld != 2 {
		t.Fatalf("stats: total %d evicted %d held %d", st.DeadLetters, st.DeadLettersEvicted, st.DeadLettersHeld)
	}
}

// TestTakeDeadLetters: the restarted consumer learns which message was moved
// to the dead letters, once.
func TestTakeDeadLetters(t *testing.T) {
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	in := NewChan[int]("in", 8)
	in.SendBatch([]int{1, 2, 3})
	in.Close()
	var told []int
	mustAdd(t, g, Spec{Name: "c", Inputs: []Input{in}, Run: func(ctx *Context) error {
		for _, d := range ctx.TakeDeadLetters() {
			told = append(told, d.Message.(int))
		}
		for in.WaitAvailable(ctx, 1) {
			if v, _ := in.TryPeek(); v == 2 {
				panic("two")
			}
			in.Commit(1)
		}
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(told, []int{2}) {
		t.Fatalf("told %v, want [2]", told)
	}
}
