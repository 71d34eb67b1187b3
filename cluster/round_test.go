package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func refs(names ...string) []peerRef {
	out := make([]peerRef, len(names))
	for i, n := range names {
		out[i] = peerRef{name: n + "#1", nodeID: n}
	}
	return out
}

func names(ps []peerRef) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.nodeID
	}
	return strings.Join(s, ",")
}

var errPush = errors.New("push failed")

func TestRoundScenarios(t *testing.T) {
	t.Run("no peer", func(t *testing.T) {
		r, first := newRound(2, 1, nil)
		if len(first) != 0 || !r.Done() {
			t.Fatalf("first %v done %v", first, r.Done())
		}
		if _, err := r.Result(); !errors.Is(err, ErrNoReplica) {
			t.Fatalf("Result = %v", err)
		}
	})
	t.Run("first ack is enough", func(t *testing.T) {
		r, first := newRound(2, 1, refs("a", "b", "c"))
		if names(first) != "a,b" {
			t.Fatalf("first = %s", names(first))
		}
		r.Acked("b#1")
		got, err := r.Result()
		if !r.Done() || err != nil || slices.Compare(got, []string{"b"}) != 0 {
			t.Fatalf("done %v, %v, %v", r.Done(), got, err)
		}
	})
	t.Run("two acks wanted", func(t *testing.T) {
		r, _ := newRound(2, 2, refs("a", "b", "c"))
		r.Acked("a#1")
		if r.Done() {
			t.Fatal("done after one of two acks")
		}
		if next := r.Failed("b#1", errPush, refs("a", "b", "c")); names(next) != "c" {
			t.Fatalf("replacement %s, want c", names(next))
		}
		r.Acked("c#1")
		if got, err := r.Result(); !r.Done() || err != nil || len(got) != 2 {
			t.Fatalf("%v %v", got, err)
		}
	})
	t.Run("two acks wanted, one peer live", func(t *testing.T) {
		r, first := newRound(2, 2, refs("a"))
		if names(first) != "a" || r.need != 1 {
			t.Fatalf("first %s need %d", names(first), r.need)
		}
	})
	t.Run("peer leaves, replaced, failures on one line", func(t *testing.T) {
		r, _ := newRound(2, 1, refs("a", "b", "c", "d"))
		gone, start := r.ViewChanged(refs("b", "c", "d"))
		if slices.Compare(gone, []string{"a#1"}) != 0 || names(start) != "c" {
			t.Fatalf("gone %v start %s", gone, names(start))
		}
		r.Acked("a#1") // late outcome of an abandoned push: ignored
		if r.Done() {
			t.Fatal("an abandoned push's ack counted")
		}
		if next := r.Failed("b#1", errPush, refs("b", "c", "d")); names(next) != "d" {
			t.Fatalf("replacement %s, want d", names(next))
		}
		r.Failed("c#1", errPush, refs("b", "c", "d"))
		r.Failed("d#1", errPush, refs("b", "c", "d"))
		_, err := r.Result()
		if !r.Done() || !errors.Is(err, ErrNoReplica) || !errors.Is(err, errPeerGone) || !errors.Is(err, errPush) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("done %v err %q", r.Done(), err)
		}
	})
}

// TestRoundSimulated drives rounds with random outcomes and view changes
// from a seed and checks the invariants against a naive model: never a
// peer pushed twice, never more than Replicas in flight plus acknowledged,
// only live peers started, and the end result matches the outcomes.
func TestRoundSimulated(t *testing.T) {
	for seed := uint64(1); seed <= 2000; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := rng.IntN(6)
		all := make([]string, n)
		for i := range all {
			all[i] = fmt.Sprint("p", i)
		}
		live := map[string]bool{}
		for _, p := range all {
			live[p] = true
		}
		ranked := func() []peerRef {
			var out []string
			for _, p := range all {
				if live[p] {
					out = append(out, p)
				}
			}
			return refs(out...)
		}
		replicas := 1 + rng.IntN(3)
		minAcks := 1 + rng.IntN(replicas)
		r, first := newRound(replicas, minAcks, ranked())
		started := map[string]int{}
		inflight := map[string]bool{}
		acks := 0
		check := func(ps []peerRef) {
			for _, p := range ps {
				started[p.name]++
				if started[p.name] > 1 {
					t.Fatalf("seed %d: %s pushed twice", seed, p.name)
				}
				if !live[p.nodeID] {
					t.Fatalf("seed %d: pushed to %s, not live", seed, p.name)
				}
				inflight[p.name] = true
			}
			if len(inflight)+acks > replicas {
				t.Fatalf("seed %d: %d in flight + %d acked > %d", seed, len(inflight), acks, replicas)
			}
		}
		check(first)
		for steps := 0; !r.Done(); steps++ {
			if steps > 100 {
				t.Fatalf("seed %d: round never ends", seed)
			}
			var names []string
			for name := range inflight {
				names = append(names, name)
			}
			slices.Sort(names)
			switch k := rng.IntN(3); {
			case k == 0 && len(names) > 0:
				name := names[rng.IntN(len(names))]
				delete(inflight, name)
				acks++
				r.Acked(name)
			case k == 1 && len(names) > 0:
				name := names[rng.IntN(len(names))]
				delete(inflight, name)
				check(r.Failed(name, errPush, ranked()))
			default:
				if len(all) == 0 {
					continue
				}
				p := all[rng.IntN(len(all))]
				live[p] = !live[p]
				gone, start := r.ViewChanged(ranked())
				for _, g := range gone {
					if live[strings.TrimSuffix(g, "#1")] || !inflight[g] {
						t.Fatalf("seed %d: abandoned %s, live or not in flight", seed, g)
					}
					delete(inflight, g)
				}
				check(start)
			}
		}
		got, err := r.Result()
		if (acks > 0) != (err == nil) || len(got) != acks {
			t.Fatalf("seed %d: %d acks, Result %v %v", seed, acks, got, err)
		}
		if acks < r.need && len(inflight) > 0 {
			t.Fatalf("seed %d: done with %d acks of %d and pushes in flight", seed, acks, r.need)
		}
	}
}
