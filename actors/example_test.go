package actors_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/steadfast-pods/steadfast/actors"
)

// GenState is the generator's persistent state: the next number to send.
type GenState struct{ Next uint64 }

// SumState is the summer's persistent state: the total and the position of
// the next input message to apply (for exactly-once after a restart).
type SumState struct {
	Total   uint64
	NextPos uint64
}

func Example() {
	g, err := actors.NewGraph(actors.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	nums := actors.NewChan[uint64]("nums", 16)
	doubled := actors.NewChan[uint64]("doubled", 16)

	// A source: sends 1..10, then returns (or returns early on a stop).
	gen := func(ctx *actors.Context) error {
		st := actors.StateOf[GenState](ctx)
		stop := actors.Signal(ctx.Stopping())
		for st.Next <= 10 {
			if !nums.Send(stop, st.Next) {
				return nil // stopping, or the consumer is gone
			}
			st.Next++
			ctx.MarkDirty()
			ctx.Checkpoint()
		}
		return nil // the supervisor closes nums
	}
	// A stage: peek a batch, compute, then send and commit in one step.
	double := func(ctx *actors.Context) error {
		in := make([]uint64, 8)
		out := make([]uint64, 8)
		for nums.WaitAvailable(ctx, 1) {
			n := nums.PeekBatch(in)
			for i, v := range in[:n] {
				out[i] = 2 * v
			}
			if !actors.Forward(ctx, nums, n, doubled, out[:n]) {
				return nil // aborted
			}
		}
		return nil // nums closed and empty: done
	}
	// A sink whose effect is its own state: dedup by input position.
	sum := func(ctx *actors.Context) error {
		st := actors.StateOf[SumState](ctx)
		for doubled.WaitAvailable(ctx, 1) {
			v, _ := doubled.TryPeek()
			if pos := doubled.HeadPos(); pos >= st.NextPos {
				st.Total += v
				st.NextPos = pos + 1
				ctx.MarkDirty()
			}
			doubled.Commit(1)
			ctx.Checkpoint()
		}
		return nil
	}

	sumState := &SumState{}
	must(g.Add(actors.Spec{Name: "gen", Run: gen, State: &GenState{Next: 1}, Outputs: []actors.Port{nums}}))
	must(g.Add(actors.Spec{Name: "double", Run: double, Inputs: []actors.Input{nums}, Outputs: []actors.Port{doubled}}))
	must(g.Add(actors.Spec{Name: "sum", Run: sum, State: sumState, Inputs: []actors.Input{doubled}}))

	if err := g.Run(context.Background()); err != nil {
		panic(err)
	}
	states, _ := g.SnapshotStates()
	fmt.Println("total:", sumState.Total)
	fmt.Println("sum state:", string(states["sum"]))
	for _, a := range g.Stats().Actors {
		fmt.Println(a.Name, a.Status, "restarts:", a.Restarts)
	}
	// Output:
	// total: 110
	// sum state: {"Total":110,"NextPos":10}
	// gen stopped restarts: 0
	// double stopped restarts: 0
	// sum stopped restarts: 0
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
