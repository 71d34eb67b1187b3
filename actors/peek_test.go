package actors

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// crash points inside one consume step of a stage
const (
	beforeSend  = "before send"
	afterSend   = "between send and commit"
	afterCommit = "after commit"
)

type stageMode string

const (
	modeForward stageMode = "Forward"        // send+commit in one step
	modeSendFor stageMode = "SendFor+Commit" // marked send, separate commit
	modePlain   stageMode = "Send+Commit"    // at-least-once, for contrast
)

// runStage runs source(1..n) → stage(x*10, crashing once at point for each
// value in crashOn) → sink(records everything it receives) and returns what
// the sink received and the stage's restarts.
func runStage(t *testing.T, mode stageMode, point string, n int, crashOn []int, batch int) ([]int, int) {
	t.Helper()
	defer checkNoLeaks(t)()
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	in := NewChan[int]("in", 8)
	out := NewChan[int]("out", 8)
	mustAdd(t, g, Spec{Name: "source", Outputs: []Port{in}, Run: func(ctx *Context) error {
		for i := 1; i <= n; i++ {
			if !in.Send(ctx, i) {
				return nil
			}
		}
		return nil
	}})
	fired := map[string]bool{}
	crash := func(at string, v int) {
		key := fmt.Sprint(at, v)
		if at == point && slices.Contains(crashOn, v) && !fired[key] {
			fired[key] = true
			panic(fmt.Sprintf("injected %s at %d", at, v))
		}
	}
	mustAdd(t, g, Spec{Name: "stage", Inputs: []Input{in}, Outputs: []Port{out}, Run: func(ctx *Context) error {
		buf := make([]int, batch)
		res := make([]int, batch)
		for in.WaitAvailable(ctx, 1) {
			if k := in.Forwarded(); k > 0 { // SendFor rule: output already sent
				in.Commit(k)
				continue
			}
			k := in.PeekBatch(buf)
			for i, v := range buf[:k] {
				crash(beforeSend, v)
				res[i] = v * 10
			}
			switch mode {
			case modeForward:
				if !Forward(ctx, in, k, out, res[:k]) {
					return nil
				}
			case modeSendFor:
				if !out.SendFor(ctx, in, k, res[:k]) {
					return nil
				}
				for _, v := range buf[:k] {
					crash(afterSend, v)
				}
				in.Commit(k)
			case modePlain:
				if out.SendAll(ctx, res[:k]) != k {
					return nil
				}
				for _, v := range buf[:k] {
					crash(afterSend, v)
				}
				in.Commit(k)
			}
			for _, v := range buf[:k] {
				crash(afterCommit, v)
			}
		}
		return nil
	}})
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
	if dl := g.DeadLetters(); len(dl) != 0 {
		t.Fatalf("unexpected dead letters: %+v", dl)
	}
	return got, g.Stats().Actors[1].Restarts
}

// TestPeekBeforeCommitExactlyOnce injects a panic at every point of a consume
// step, for both exactly-once modes and for single and batched peeks: the
// sink must receive every output exactly once, in order.
func TestPeekBeforeCommitExactlyOnce(t *testing.T) {
	const n = 60
	crashOn := []int{1, 7, 8, 30, 59, 60}
	want := make([]int, n)
	for i := range want {
		want[i] = (i + 1) * 10
	}
	for _, mode := range []stageMode{modeForward, modeSendFor} {
		for _, point := range []string{beforeSend, afterSend, afterCommit} {
			if mode == modeForward && point == afterSend {
				continue // no such point: send and commit are one step
			}
			for _, batch := range []int{1, 4} {
				t.Run(fmt.Sprintf("%s/%s/batch%d", mode, point, batch), func(t *testing.T) {
					got, restarts := runStage(t, mode, point, n, crashOn, batch)
					if !slices.Equal(got, want) {
						t.Fatalf("sink got %v\nwant %v", got, want)
					}
					// One step covers a whole batch, so with batches after the
					// send, neighbours share a crash.
					if (batch == 1 && restarts != len(crashOn)) || restarts < 1 {
						t.Fatalf("restarts = %d, want %d", restarts, len(crashOn))
					}
				})
			}
		}
	}
}

// TestPlainSendThenCommitDuplicates shows why the rule exists (and that the
// test above would catch a duplicate): a crash between a plain send and the
// commit re-sends the output.
func TestPlainSendThenCommitDuplicates(t *testing.T) {
	got, _ := runStage(t, modePlain, afterSend, 10, []int{5}, 1)
	want := []int{10, 20, 30, 40, 50, 50, 60, 70, 80, 90, 100}
	if !slices.Equal(got, want) {
		t.Fatalf("sink got %v, want %v (one duplicate)", got, want)
	}
}

// TestPeekedMessageSurvivesCrash checks that a message peeked but not
// committed when its consumer panics is still at the head afterwards.
func TestPeekedMessageSurvivesCrash(t *testing.T) {
	cfg, _ := testConfig(t)
	g := newTestGraph(t, cfg)
	in := NewChan[string]("in", 4)
	in.TrySend("hello")
	in.Close()
	var seen []string
	mustAdd(t, g, Spec{Name: "c", Inputs: []Input{in}, Run: func(ctx *Context) error {
		for in.WaitAvailable(ctx, 1) {
			v, _ := in.TryPeek()
			seen = append(seen, v)
			if ctx.Restarts() == 0 {
				panic("crash while holding " + v)
			}
			in.Commit(1)
		}
		return nil
	}})
	if err := g.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"hello", "hello"}) {
		t.Fatalf("seen = %v", seen)
	}
}

type sinkState struct {
	Sum     int
	Count   int
	NextPos uint64
}

// TestStateEffectDedupByPosition checks the third rule: an effect on the
// actor's own state recorded with the input position is applied exactly once
// whatever the crash point.
func TestStateEffectDedupByPosition(t *testing.T) {
	for _, point := range []string{beforeSend, afterSend, afterCommit} {
		t.Run(point, func(t *testing.T) {
			cfg, _ := testConfig(t)
			g := newTestGraph(t, cfg)
			in := NewChan[int]("in", 4)
			mustAdd(t, g, Spec{Name: "source", Outputs: []Port{in}, Run: func(ctx *Context) error {
				for i := 1; i <= 50; i++ {
					in.Send(ctx, i)
				}
				return nil
			}})
			st := &sinkState{}
			fired := map[int]bool{}
			crash := func(at string, v int) {
				if at == point && v%7 == 0 && !fired[v] {
					fired[v] = true
					panic("injected")
				}
			}
			mustAdd(t, g, Spec{Name: "sink", State: st, Inputs: []Input{in}, Run: func(ctx *Context) error {
				s := StateOf[sinkState](ctx)
				buf := make([]int, 3)
				for in.WaitAvailable(ctx, 1) {
					k := in.PeekBatch(buf)
					head := in.HeadPos()
					for i, v := range buf[:k] {
						crash(beforeSend, v)
						if pos := head + uint64(i); pos >= s.NextPos {
							s.Sum += v
							s.Count++
							s.NextPos = pos + 1
						}
						crash(afterSend, v)
					}
					in.Commit(k)
					for _, v := range buf[:k] {
						crash(afterCommit, v)
					}
				}
				return nil
			}})
			if err := g.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if st.Sum != 50*51/2 || st.Count != 50 {
				t.Fatalf("sum %d count %d, want %d 50", st.Sum, st.Count, 50*51/2)
			}
			if r := g.Stats().Actors[1].Restarts; r != 7 {
				t.Fatalf("restarts = %d, want 7", r)
			}
		})
	}
}
