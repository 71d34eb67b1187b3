package pod

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/steadfast-pods/steadfast/codec"
)

// Beat times through the outbox: one mark per run of values with the same
// beat time, looked up by seq, dropped with the values they cover, kept in
// the snapshot.
func TestOutboxBeatMarks(t *testing.T) {
	o, _ := NewOutbox(100, 1)
	if o.BeatAt(1) != 0 {
		t.Fatal("beat time of a value not held")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(appendBeaten(o, 1, seqs(1, 3), 1000))  // 1..3 at 1000
	must(appendBeaten(o, 4, seqs(4, 2), 1000))  // 4..5: the same wake-up, no new mark
	must(appendBeaten(o, 6, seqs(6, 2), 0))     // 6..7: unknown, share the previous mark
	must(appendBeaten(o, 8, seqs(8, 3), 2000))  // 8..10 at 2000
	must(appendBeaten(o, 11, seqs(11, 1), 500)) // a clock stepped back: still its own mark
	if len(o.marks) != 3 {
		t.Fatalf("marks %+v, want 3", o.marks)
	}
	for seq, want := range map[uint64]int64{0: 0, 1: 1000, 5: 1000, 7: 1000, 8: 2000, 10: 2000, 11: 500, 12: 0} {
		if got := o.BeatAt(seq); got != want {
			t.Errorf("BeatAt(%d) = %d, want %d", seq, got, want)
		}
	}
	// Releasing 1..8 keeps the mark that covers 9.
	o.Release(8)
	if len(o.marks) != 2 || o.BeatAt(9) != 2000 || o.BeatAt(8) != 0 {
		t.Fatalf("after release: marks %+v, BeatAt(9) %d", o.marks, o.BeatAt(9))
	}
	// The snapshot keeps them; an old snapshot without marks restores
	// values with unknown beat times.
	r, err := RestoreOutbox(100, o.State())
	if err != nil || r.BeatAt(9) != 2000 || r.BeatAt(11) != 500 {
		t.Fatalf("restored: %v, BeatAt(9) %d", err, r.BeatAt(9))
	}
	old := o.State()
	old.Marks = nil
	if r, err := RestoreOutbox(100, old); err != nil || r.BeatAt(9) != 0 {
		t.Fatalf("state without marks: %v, BeatAt(9) %d", err, r.BeatAt(9))
	}
	// Emptied: no mark survives to date later values.
	o.Release(11)
	if len(o.marks) != 0 {
		t.Fatalf("empty outbox keeps marks %+v", o.marks)
	}
	must(appendBeaten(o, 12, seqs(12, 1), 0))
	if o.BeatAt(12) != 0 {
		t.Fatal("an unknown beat took a released value's time")
	}
	// A failed append adds no mark.
	if err := appendBeaten(o, 99, seqs(99, 1), 7); err == nil || len(o.marks) != 0 {
		t.Fatalf("out-of-order append: %v, marks %+v", err, o.marks)
	}
}

// TestOutboxBeatMarksModel: under random appends and releases, with more
// wake-ups than maxBeatMarks, the marks stay bounded and a value's beat
// time is never later than the truth (and exact until marks were merged).
func TestOutboxBeatMarksModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	const capacity = 8 * maxBeatMarks
	o, _ := NewOutbox(capacity, 1)
	truth := map[uint64]int64{}
	next, at := uint64(1), int64(1_000_000)
	merged := false
	for i := range 60000 {
		if rng.IntN(3) > 0 {
			k := uint64(1 + rng.IntN(2))
			if int(k) > o.Free() {
				continue
			}
			if rng.IntN(4) > 0 {
				at += int64(1 + rng.IntN(1000)) // a new wake-up
			}
			if len(o.marks) == maxBeatMarks && o.marks[len(o.marks)-1].At != at {
				merged = true
			}
			if err := appendBeaten(o, next, seqs(next, k), at); err != nil {
				t.Fatal(err)
			}
			for s := next; s < next+k; s++ {
				truth[s] = at
			}
			next += k
		} else if i%200 == 0 {
			o.Release(o.First() + uint64(rng.IntN(200)))
		}
		if len(o.marks) > maxBeatMarks {
			t.Fatalf("%d marks", len(o.marks))
		}
		if i%2000 == 0 {
			for s := o.First(); s <= o.Last(); s++ {
				got := o.BeatAt(s)
				if got == 0 || got > truth[s] || (!merged && got != truth[s]) {
					t.Fatalf("step %d: BeatAt(%d) = %d, truth %d (merged %v)", i, s, got, truth[s], merged)
				}
			}
		}
	}
	if !merged {
		t.Fatal("the marks never reached their bound: the test does not test merging")
	}
}

// A snapshot's beat marks come from disk or a peer: hostile ones are
// refused (the restore tries the next source), never trusted or panicked on.
func TestRestoreOutboxBadMarks(t *testing.T) {
	good := OutboxState{First: 10, Values: seqs(10, 5), Marks: []BeatMark{{Seq: 3, At: 5}, {Seq: 12, At: 9}}}
	if o, err := RestoreOutbox(8, good); err != nil || o.BeatAt(10) != 5 || o.BeatAt(12) != 9 {
		t.Fatalf("good state: %v", err)
	}
	many := make([]BeatMark, maxBeatMarks+1)
	for i := range many {
		many[i] = BeatMark{Seq: uint64(i + 1), At: 1}
	}
	for name, marks := range map[string][]BeatMark{
		"zero time":       {{Seq: 10, At: 0}},
		"negative time":   {{Seq: 10, At: -1}},
		"beyond the last": {{Seq: 15, At: 1}},
		"not ascending":   {{Seq: 12, At: 1}, {Seq: 11, At: 1}},
		"repeated seq":    {{Seq: 12, At: 1}, {Seq: 12, At: 2}},
		"too many":        many,
	} {
		st := good
		st.Marks = marks
		if name == "too many" {
			st.Values = seqs(1, maxBeatMarks+1)
			st.First = 1
		}
		if _, err := RestoreOutbox(maxBeatMarks+1, st); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Through the publisher state's decoder: kept when good, ErrBadState
	// when not.
	b, _ := codec.Marshal(&pubState{Outbox: mustRestore(t, good), Subs: map[string]*SubRecord{}})
	if st, err := decodePubState(b, 8); err != nil || st.Outbox.BeatAt(12) != 9 {
		t.Fatalf("good pub state: %v", err)
	}
	b, err := codec.Marshal(map[string]any{"outbox": map[string]any{"first": 10, "values": seqs(10, 2), "marks": [][]int64{{11, 1}, {10, 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodePubState(b, 8); !errors.Is(err, ErrBadState) || !strings.Contains(err.Error(), "ascending") {
		t.Fatalf("decodePubState with descending marks: %v", err)
	}
}

// appendBeaten appends as PubCore.Append does: the values, then their
// beat time.
func appendBeaten(o *Outbox, first uint64, values []uint64, at int64) error {
	if err := o.Append(first, values); err != nil {
		return err
	}
	o.MarkBeat(first, at)
	return nil
}

func mustRestore(t *testing.T, st OutboxState) *Outbox {
	t.Helper()
	o, err := RestoreOutbox(max(len(st.Values), 1), st)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The publisher core stamps each message with the beat time of its first
// value, and a replay carries the original time: the latency of a value
// held through an outage includes the outage.
func TestPubCoreStampsBeat(t *testing.T) {
	c := newTestPubCore(t, PubCoreConfig{MinSubscribers: 1, Chunk: 4}, 100)
	c.SetMembers(t0, []Peer{{ID: "s", Epoch: 1, Endpoint: "a"}}, nil)
	t1, t2 := t0.Add(time.Millisecond), t0.Add(2*time.Millisecond)
	if err := c.Append(t1, 1, seqs(1, 3)); err != nil {
		t.Fatal(err)
	}
	if err := c.Append(t2, 4, seqs(4, 3)); err != nil {
		t.Fatal(err)
	}
	c.OnHello(t2, "s", 1, 0)
	now := t2.Add(time.Millisecond)
	s, ok := c.Next(now, "s")
	if !ok || s.First != 1 || s.N != 4 || !s.Beat.Equal(t1) {
		t.Fatalf("first message %+v, want 1..4 stamped %v", s, t1)
	}
	c.Result(now, s, 0)
	s, _ = c.Next(now, "s")
	if s.First != 5 || !s.Beat.Equal(t2) {
		t.Fatalf("second message %+v, want 5.. stamped %v", s, t2)
	}
	c.Result(now, s, 0)
	// The subscriber restarted and asks again from 0, a minute later.
	later := t0.Add(time.Minute)
	c.OnHello(later, "s", 1, 0)
	s, _ = c.Next(later, "s")
	if s.First != 1 || !s.Beat.Equal(t1) {
		t.Fatalf("replay %+v, want 1.. stamped with the original %v", s, t1)
	}
	// An unknown beat time stays unknown.
	c2 := newTestPubCore(t, PubCoreConfig{MinSubscribers: 1}, 10)
	c2.SetMembers(t0, []Peer{{ID: "s", Epoch: 1, Endpoint: "a"}}, nil)
	_ = c2.Append(time.Time{}, 1, seqs(1, 2))
	c2.OnHello(t0, "s", 1, 0)
	if s, _ := c2.Next(t0, "s"); !s.Beat.IsZero() || unixNano(s.Beat) != 0 {
		t.Fatalf("unknown beat sent as %v", s.Beat)
	}
}

// The subscriber core judges beat times against its own clock, which it is
// given: missing, too far ahead (beyond the allowed clock skew) and
// absurdly old stamps are dropped and counted; the values are delivered
// regardless.
func TestSubCoreCheckBeat(t *testing.T) {
	c, _ := NewSubCore(SubCoreConfig{MaxClockSkew: time.Second, MaxBeatAge: time.Hour}, nil)
	now := t0
	for _, tc := range []struct {
		beat time.Time
		ok   bool
	}{
		{now.Add(-3 * time.Millisecond), true},
		{now.Add(500 * time.Millisecond), true}, // ahead, within the skew
		{now.Add(2 * time.Second), false},       // future
		{now.Add(-2 * time.Hour), false},        // too old
		{time.Unix(0, 1), false},                // 1970: too old
		{time.Time{}, false},                    // missing
	} {
		got := c.CheckBeat(now, unixNano(tc.beat))
		if tc.ok != !got.IsZero() || (tc.ok && !got.Equal(tc.beat)) {
			t.Errorf("beat %v: got %v, want ok %v", tc.beat, got, tc.ok)
		}
	}
	if got := c.CheckBeat(now, -5); !got.IsZero() {
		t.Errorf("negative beat: %v", got)
	}
	want := map[string]uint64{BeatMissing: 2, BeatFuture: 1, BeatTooOld: 2}
	if got := c.BeatDrops(); len(got) != len(want) || got[BeatMissing] != 2 || got[BeatFuture] != 1 || got[BeatTooOld] != 2 {
		t.Fatalf("drops %v, want %v", got, want)
	}
	// Defaults: a minute of skew, a day of age.
	d, _ := NewSubCore(SubCoreConfig{}, nil)
	if d.CheckBeat(now, unixNano(now.Add(59*time.Second))).IsZero() || !d.CheckBeat(now, unixNano(now.Add(61*time.Second))).IsZero() ||
		d.CheckBeat(now, unixNano(now.Add(-23*time.Hour))).IsZero() || !d.CheckBeat(now, unixNano(now.Add(-25*time.Hour))).IsZero() {
		t.Fatal("default bounds are not 1 min ahead and 24 h old")
	}
}

func TestDeliveryLatency(t *testing.T) {
	if d, clamped, ok := deliveryLatency(t0, t0.Add(-250*time.Microsecond)); !ok || clamped || d != 250*time.Microsecond {
		t.Fatalf("%v %v %v", d, clamped, ok)
	}
	if d, clamped, ok := deliveryLatency(t0, t0.Add(time.Millisecond)); !ok || !clamped || d != 0 {
		t.Fatalf("publisher ahead: %v %v %v, want 0 clamped", d, clamped, ok)
	}
	if _, _, ok := deliveryLatency(t0, time.Time{}); ok {
		t.Fatal("latency without a beat")
	}
}

// BenchmarkBeatStamping: what the delivery latency adds per message: on
// the publisher, the beat time of the message's first value (a binary
// search over the outbox's marks, here the most it keeps); on the
// subscriber, judging the stamp, computing the latency and one histogram
// observation. Compare with the per-message work (encode/decode of up to
// 4096 values: codec's BenchmarkBatch1000).
func BenchmarkBeatStamping(b *testing.B) {
	o, _ := NewOutbox(maxBeatMarks*4, 1)
	for i := range maxBeatMarks {
		if err := appendBeaten(o, uint64(4*i+1), seqs(uint64(4*i+1), 4), int64(1_000_000+i)); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("publisher", func(b *testing.B) {
		b.ReportAllocs()
		var sink int64
		seq := uint64(1)
		for b.Loop() {
			sink += unixNano(fromUnixNano(o.BeatAt(seq)))
			seq = seq%uint64(o.Len()) + 1
		}
		_ = sink
	})
	b.Run("subscriber", func(b *testing.B) {
		c, _ := NewSubCore(SubCoreConfig{}, nil)
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: latencyBuckets})
		now := time.Now()
		beat := now.Add(-3 * time.Millisecond).UnixNano()
		b.ReportAllocs()
		for b.Loop() {
			bt := c.CheckBeat(now, beat)
			if d, _, ok := deliveryLatency(now, fromUnixNano(unixNano(bt))); ok {
				h.Observe(d.Seconds())
			}
		}
	})
}
