package pod

import (
	"errors"
	"math/rand/v2"
	"testing"
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

// TestOutboxModel checks the ring against a plain slice under random use.
func TestOutboxModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	o, _ := NewOutbox(37, 1)
	var model []uint64 // seqs held
	next := uint64(1)
	for range 20000 {
		switch rng.IntN(3) {
		case 0:
			k := rng.IntN(10)
			vals := make([]uint64, k)
			for i := range vals {
				vals[i] = (next + uint64(i)) * 3
			}
			err := o.Append(next, vals)
			if len(model)+k > 37 {
				if !errors.Is(err, ErrOutboxFull) {
					t.Fatalf("want full, got %v", err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range k {
				model = append(model, next+uint64(i))
			}
			next += uint64(k)
		case 1:
			up := next - uint64(rng.IntN(20))
			for len(model) > 0 && model[0] <= up {
				model = model[1:]
			}
			o.Release(up)
		case 2:
			from := next - uint64(rng.IntN(40))
			got := o.Range(nil, from, 5)
			var want []uint64
			for _, s := range model {
				if s >= from && len(want) < 5 {
					want = append(want, s*3)
				}
			}
			if len(model) == 0 || from < model[0] {
				want = nil
			}
			if !equal(got, want) {
				t.Fatalf("range from %d: %v, want %v (model %v)", from, got, want, model)
			}
		}
		if o.Len() != len(model) {
			t.Fatalf("len %d, model %d", o.Len(), len(model))
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
