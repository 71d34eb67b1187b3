package pod

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/steadfast-pods/steadfast/codec"
)

func TestOutboxAppendReleaseRange(t *testing.T) {
	o, err := NewOutbox(8, 1)
	if err != nil {
		t.Fatal(err)
	}
	if o.Len() != 0 || o.First() != 1 || o.Last() != 0 {
		t.Fatalf("empty: len %d first %d last %d", o.Len(), o.First(), o.Last())
	}
	if err := o.Append(2, []uint64{2}); !errors.Is(err, ErrOutboxOrder) {
		t.Fatalf("out of order append: %v", err)
	}
	if err := o.Append(1, []uint64{1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	if err := o.Append(6, []uint64{6, 7, 8, 9}); !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("overfull append: %v", err)
	}
	if o.Len() != 5 {
		t.Fatalf("a failed append changed the outbox: len %d", o.Len())
	}
	if got := o.Range(nil, 3, 10); !equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("range %v", got)
	}
	if got := o.Range(nil, 6, 10); len(got) != 0 {
		t.Fatalf("range past the end %v", got)
	}
	if n := o.Release(3); n != 3 || o.First() != 4 {
		t.Fatalf("release: %d, first %d", n, o.First())
	}
	if got := o.Range(nil, 2, 10); len(got) != 0 {
		t.Fatalf("range below first %v", got)
	}
	// Wrap around the ring.
	if err := o.Append(6, []uint64{6, 7, 8, 9, 10, 11}); err != nil {
		t.Fatal(err)
	}
	if got := o.Range(nil, 4, 100); !equal(got, []uint64{4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Fatalf("wrapped range %v", got)
	}
	if got := o.Range(nil, 9, 2); !equal(got, []uint64{9, 10}) {
		t.Fatalf("limited range %v", got)
	}
	// Release beyond the end empties it and keeps the sequence going.
	if n := o.Release(100); n != 8 || o.Len() != 0 || o.Last() != 11 {
		t.Fatalf("release all: %d len %d last %d", n, o.Len(), o.Last())
	}
	if n := o.Release(5); n != 0 {
		t.Fatalf("release below first: %d", n)
	}
	if err := o.Append(12, []uint64{12}); err != nil {
		t.Fatal(err)
	}
	st := o.State()
	r, err := RestoreOutbox(8, st)
	if err != nil || r.First() != 12 || r.Last() != 12 || !equal(r.Range(nil, 12, 1), []uint64{12}) {
		t.Fatalf("restore: %v %+v", err, st)
	}
	if _, err := RestoreOutbox(0, st); err == nil {
		t.Fatal("restore into a smaller outbox accepted")
	}
	if _, err := NewOutbox(0, 1); err == nil {
		t.Fatal("zero capacity accepted")
	}
}

// TestOutboxModel checks the outbox against a plain slice under random
// use: appends of arbitrary values, of consecutive ones (one run) and of
// runs, releases, ranges, and encode/decode round trips.
func TestOutboxModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const capacity = 37
	o, _ := NewOutbox(capacity, 1)
	type held struct{ seq, val uint64 }
	var model []held
	next := uint64(1)
	for step := range 20000 {
		switch rng.IntN(5) {
		case 0, 1:
			k := rng.IntN(10)
			vals := make([]uint64, k)
			base := rng.Uint64N(1000)
			for i := range vals {
				switch rng.IntN(3) {
				case 0:
					vals[i] = (next + uint64(i)) * 3 // no run
				default:
					vals[i] = base + uint64(i) // one run
				}
			}
			var err error
			if rng.IntN(2) == 0 {
				err = o.Append(next, vals)
			} else {
				for i := range vals {
					vals[i] = base + uint64(i)
				}
				err = o.AppendRun(next, base, k)
			}
			if len(model)+k > capacity {
				if !errors.Is(err, ErrOutboxFull) {
					t.Fatalf("want full, got %v", err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range k {
				model = append(model, held{next + uint64(i), vals[i]})
			}
			next += uint64(k)
		case 2:
			up := next - uint64(rng.IntN(20))
			for len(model) > 0 && model[0].seq <= up {
				model = model[1:]
			}
			o.Release(up)
		case 3:
			from := next - uint64(rng.IntN(40))
			max := 1 + rng.IntN(8)
			got := o.Range(nil, from, max)
			var want []uint64
			for _, h := range model {
				if h.seq >= from && len(want) < max {
					want = append(want, h.val)
				}
			}
			if len(model) == 0 || from < model[0].seq {
				want = nil
			}
			if !equal(got, want) {
				t.Fatalf("step %d: range from %d: %v, want %v (model %v)", step, from, got, want, model)
			}
		case 4:
			b, err := codec.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := NewOutbox(1, 1)
			if err := codec.Unmarshal(b, r); err != nil {
				t.Fatal(err)
			}
			if r.First() != o.First() || r.Len() != o.Len() || r.Runs() != o.Runs() || !equal(r.Range(nil, r.First(), capacity), o.Range(nil, o.First(), capacity)) {
				t.Fatalf("step %d: round trip: %+v, want %+v", step, r.State(), o.State())
			}
			o = r
			o.capacity = capacity
		}
		if o.Len() != len(model) || o.Runs() > o.Len() {
			t.Fatalf("len %d runs %d, model %d", o.Len(), o.Runs(), len(model))
		}
	}
}

// TestOutboxRunsEncoding: the pods' outbox (value = seq) is one run
// whatever its length, so checkpoints and snapshots stay small; the older
// form (one entry per value) is still read; a state that claims more values
// than any outbox may hold is refused before anything is built.
func TestOutboxRunsEncoding(t *testing.T) {
	o, _ := NewOutbox(1<<18, 1)
	for seq := uint64(1); seq <= 1<<18; seq += 1024 {
		if err := o.AppendRun(seq, seq, 1024); err != nil {
			t.Fatal(err)
		}
	}
	o.Release(1000)
	b, err := codec.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if o.Runs() != 1 || len(b) > 64 {
		t.Fatalf("%d values in %d runs encode to %d bytes", o.Len(), o.Runs(), len(b))
	}
	old, err := codec.Marshal(OutboxState{First: 5, Values: []uint64{5, 6, 9}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := NewOutbox(1, 1)
	if err := codec.Unmarshal(old, r); err != nil || r.First() != 5 || !equal(r.Range(nil, 5, 9), []uint64{5, 6, 9}) || r.Runs() != 2 {
		t.Fatalf("older form: %v %+v", err, r.State())
	}
	for _, bad := range []OutboxState{
		{First: 1, Runs: []uint64{1, maxOutbox + 1}},
		{First: 1, Runs: []uint64{1, maxOutbox, 1, 1}},
		{First: 1, Runs: []uint64{1}},
		{First: 1, Runs: []uint64{1, 0}},
		{First: 1, Runs: []uint64{^uint64(0), 2}},
		{First: 1, Runs: []uint64{1, 1}, Values: []uint64{1}},
	} {
		b, err := codec.Marshal(bad)
		if err != nil {
			t.Fatal(err)
		}
		if err := codec.Unmarshal(b, r); err == nil {
			t.Errorf("state %+v accepted", bad)
		}
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLine(t *testing.T) {
	if Line(15, FizzBuzz) != "FizzBuzz" || Line(7, Plain) != "7" || Line(9, Fizz) != "Fizz" || Line(10, Buzz) != "Buzz" {
		t.Error("Line")
	}
}

func fullTally(n uint64, skip func(v uint64) int) *PubTally {
	tl := NewTally()
	for v := uint64(1); v <= n; v++ {
		switch skip(v) {
		case 0:
			tl.Apply("p", 1, v, v, Classify(v))
		case 1: // lost
		case 2: // applied twice
			tl.Apply("p", 1, v, v, Classify(v))
			tl.Apply("p", 1, v, v, Classify(v))
		case 3:
			tl.DeadLetter("p", 1, v, v)
		}
	}
	tl.End("p", 1, n)
	return tl.Pubs["p"]
}

func TestCheck(t *testing.T) {
	const n = 1000
	ok := Check(fullTally(n, func(uint64) int { return 0 }), n, nil)
	if !ok.OK() || ok.Delivered != n {
		t.Fatalf("complete stream: %+v", ok)
	}
	r := Check(fullTally(n, func(v uint64) int {
		if v == 7 || v == 9 {
			return 1
		}
		return 0
	}), n, nil)
	if r.Lost != 2 || r.Duplicated != 0 || r.OK() {
		t.Fatalf("two lost: %+v", r)
	}
	r = Check(fullTally(n, func(v uint64) int {
		if v == 30 {
			return 2
		}
		return 0
	}), n, nil)
	if r.Duplicated != 1 || r.Lost != 0 || r.OK() {
		t.Fatalf("one duplicate: %+v", r)
	}
	// One lost and another duplicated: the count matches, the sums do not.
	r = Check(fullTally(n, func(v uint64) int {
		switch v {
		case 7:
			return 1
		case 8:
			return 2
		}
		return 0
	}), n, nil)
	if r.Lost == 0 || r.Duplicated == 0 || r.OK() {
		t.Fatalf("swap: %+v", r)
	}
	// A showstopper dead-lettered is fine when allowed, lost when not.
	dead := fullTally(n, func(v uint64) int {
		if v == 45 {
			return 3
		}
		return 0
	})
	if r := Check(dead, n, []uint64{45}); !r.OK() || r.Dead != 1 || r.Delivered != n-1 {
		t.Fatalf("allowed showstopper: %+v", r)
	}
	if r := Check(dead, n, nil); r.OK() || r.Lost != 1 {
		t.Fatalf("unexpected dead letter: %+v", r)
	}
	if r := Check(fullTally(n, func(uint64) int { return 0 }), n, []uint64{45}); r.OK() {
		t.Fatalf("showstopper not dead-lettered passed: %+v", r)
	}
	// Short stream: not ended.
	if r := Check(fullTally(n-10, func(uint64) int { return 0 }), n, nil); r.OK() || r.Lost != 10 {
		t.Fatalf("short: %+v", r)
	}
	if r := Check(nil, n, nil); r.OK() || r.Lost != n {
		t.Fatalf("missing: %+v", r)
	}
}
