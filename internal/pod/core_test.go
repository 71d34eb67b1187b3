package pod

import (
	"slices"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/actors"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestPubCore(t *testing.T, cfg PubCoreConfig, capacity int) *PubCore {
	t.Helper()
	ob, err := NewOutbox(capacity, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewPubCore(cfg, &pubState{Outbox: ob})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func seqs(first, n uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = first + uint64(i)
	}
	return out
}

// Defect 2, publisher side: an ack or hello from a node that is not a live
// subscriber used to create a permanent record that pinned the outbox. Now it
// is rejected and counted, and changes nothing.
func TestPubCoreUnknownSenderDoesNotPin(t *testing.T) {
	c := newTestPubCore(t, PubCoreConfig{MinSubscribers: 1}, 10)
	c.SetMembers(t0, []Peer{{ID: "sub-1", Epoch: 1, Endpoint: "a"}}, nil)
	if err := c.Append(t0, 1, seqs(1, 10)); err != nil {
		t.Fatal(err)
	}
	if c.OnAck(t0, "ghost", 1, 0) || c.OnHello(t0, "ghost", 7, 0) {
		t.Fatal("ack/hello from a non-member accepted")
	}
	if !c.OnAck(t0, "sub-1", 1, 10) {
		t.Fatal("member's ack rejected")
	}
	if _, n := c.Tick(t0); n != 10 {
		t.Fatalf("released %d, want 10 (pinned by a non-member?)", n)
	}
	if r := c.Rejects()[RejectUnknownSender]; r != 2 {
		t.Fatalf("unknown-sender rejects %d, want 2", r)
	}
	// Stale, future epochs and implausible positions are rejected too.
	if c.OnAck(t0, "sub-1", 0, 10) || c.OnAck(t0, "sub-1", 2, 10) || c.OnAck(t0, "sub-1", 1, 1<<40) {
		t.Fatal("bad ack accepted")
	}
	r := c.Rejects()
	if r[RejectStaleEpoch] != 1 || r[RejectFutureEpoch] != 1 || r[RejectImplausible] != 1 {
		t.Fatalf("rejects %v", r)
	}
}

// A subscriber gone from the view longer than the retention is retired: it
// no longer holds the outbox. Before that it does (it may come back).
func TestPubCoreRetiresGoneSubscriber(t *testing.T) {
	c := newTestPubCore(t, PubCoreConfig{MinSubscribers: 1, Retention: time.Minute}, 10)
	c.SetMembers(t0, []Peer{{ID: "sub-1", Epoch: 1, Endpoint: "a"}, {ID: "sub-2", Epoch: 1, Endpoint: "b"}}, nil)
	_ = c.Append(t0, 1, seqs(1, 10))
	c.OnAck(t0, "sub-1", 1, 10)
	ch := c.SetMembers(t0.Add(time.Second), []Peer{{ID: "sub-1", Epoch: 1, Endpoint: "a"}}, nil)
	if len(ch) != 1 || ch[0].ID != "sub-2" || ch[0].Endpoint != "" {
		t.Fatalf("conn changes %+v, want sub-2 closed", ch)
	}
	if _, n := c.Tick(t0.Add(30 * time.Second)); n != 0 {
		t.Fatalf("released %d while sub-2 is within its retention", n)
	}
	ret, n := c.Tick(t0.Add(62 * time.Second))
	if len(ret) != 1 || ret[0].ID != "sub-2" || ret[0].Early || ret[0].ReleasedTo != 10 || n != 10 {
		t.Fatalf("retired %v released %d, want sub-2 and 10", ret, n)
	}
	// It comes back: it resumes from what the outbox holds (nothing of
	// 1..10): it is told those values were released.
	c.SetMembers(t0.Add(70*time.Second), []Peer{{ID: "sub-1", Epoch: 1, Endpoint: "a"}, {ID: "sub-2", Epoch: 1, Endpoint: "b"}}, nil)
	c.OnHello(t0.Add(70*time.Second), "sub-2", 1, 0)
	s, ok := c.Next(t0.Add(71*time.Second), "sub-2")
	if !ok || s.Kind != SendReleased || s.Seq != 10 {
		t.Fatalf("next %+v %v, want released up to 10", s, ok)
	}
}

// Scale-down: a subscriber that left for good holds the outbox (every
// live subscriber acknowledged more); once the outbox is full and it has
// been gone for the grace, it is retired early, its values released, and
// the stream goes on. Before the grace, when the outbox is not full, when
// a live subscriber is the one behind, when no live subscriber would
// remain, or with no grace, it is kept (it may be a replacement on its
// way); a subscriber that returns within the grace resumes exactly where
// it acknowledged.
func TestPubCoreRetiresScaledDownSubscriberWhenFull(t *testing.T) {
	const grace = 10 * time.Second
	peers := func(ids ...string) []Peer {
		var out []Peer
		for _, id := range ids {
			out = append(out, Peer{ID: id, Epoch: 1, Endpoint: id})
		}
		return out
	}
	// setup: sub-1..3 acknowledge 1..5; sub-3 leaves at t0+1s; the
	// outbox (10) fills with 6..15 (or 6..14 when !full); sub-1 and sub-2
	// acknowledge everything.
	setup := func(t *testing.T, cfg PubCoreConfig, full bool) *PubCore {
		cfg.Grace, cfg.Retention = grace, time.Hour
		c := newTestPubCore(t, cfg, 10)
		c.SetMembers(t0, peers("sub-1", "sub-2", "sub-3"), nil)
		_ = c.Append(t0, 1, seqs(1, 10))
		for _, id := range []string{"sub-1", "sub-2", "sub-3"} {
			c.OnAck(t0, id, 1, 5)
		}
		if _, n := c.Tick(t0); n != 5 {
			t.Fatalf("released %d, want 5", n)
		}
		c.SetMembers(t0.Add(time.Second), peers("sub-1", "sub-2"), nil)
		last := uint64(15)
		if !full {
			last = 14
		}
		_ = c.Append(t0, 11, seqs(11, last-10))
		c.OnAck(t0, "sub-1", 1, last)
		c.OnAck(t0, "sub-2", 1, last)
		return c
	}
	left := t0.Add(time.Second)

	t.Run("retired after the grace", func(t *testing.T) {
		c := setup(t, PubCoreConfig{MinSubscribers: 2}, true)
		if ret, n := c.Tick(left.Add(grace - time.Millisecond)); len(ret) != 0 || n != 0 {
			t.Fatalf("within the grace: retired %+v, released %d", ret, n)
		}
		ret, n := c.Tick(left.Add(grace))
		want := Retirement{ID: "sub-3", Acked: 5, Gone: grace, Early: true, ReleasedTo: 15}
		if len(ret) != 1 || ret[0] != want || n != 10 {
			t.Fatalf("retired %+v, released %d; want %+v and 10", ret, n, want)
		}
		if c.RetiredEarly() != 1 || c.Retired() != 1 {
			t.Fatalf("counters: early %d, retired %d", c.RetiredEarly(), c.Retired())
		}
		// The stream goes on: the generator's next values fit.
		if err := c.Append(t0, 16, seqs(16, 10)); err != nil {
			t.Fatal(err)
		}
		// Back after all (scaled up again): told what was released.
		c.SetMembers(left.Add(2*grace), peers("sub-1", "sub-2", "sub-3"), nil)
		c.OnHello(left.Add(2*grace), "sub-3", 1, 5)
		if s, ok := c.Next(left.Add(2*grace), "sub-3"); !ok || s.Kind != SendReleased || s.Seq != 15 {
			t.Fatalf("returning subscriber: next %+v %v, want released up to 15", s, ok)
		}
	})
	t.Run("outbox not full", func(t *testing.T) {
		c := setup(t, PubCoreConfig{MinSubscribers: 2}, false)
		if ret, n := c.Tick(left.Add(30 * grace)); len(ret) != 0 || n != 0 {
			t.Fatalf("retired %+v, released %d", ret, n)
		}
	})
	t.Run("a live subscriber is behind", func(t *testing.T) {
		c := setup(t, PubCoreConfig{MinSubscribers: 1}, true)
		// sub-2 acknowledged only 3: it, not sub-3, holds the outbox.
		c.st.Subs["sub-2"].Acked = 3
		if ret, _ := c.Tick(left.Add(2 * grace)); len(ret) != 0 {
			t.Fatalf("retired %+v while a live subscriber holds the outbox", ret)
		}
	})
	t.Run("no live subscriber would remain", func(t *testing.T) {
		c := setup(t, PubCoreConfig{MinSubscribers: 1}, true)
		c.SetMembers(left, nil, nil)
		if ret, _ := c.Tick(left.Add(2 * grace)); len(ret) != 0 {
			t.Fatalf("retired %+v with no live subscriber left", ret)
		}
	})
	t.Run("min subscribers: a gate before the first release only", func(t *testing.T) {
		// Values were released: the gate stays open, sub-3 is retired.
		c := setup(t, PubCoreConfig{MinSubscribers: 3}, true)
		if ret, n := c.Tick(left.Add(2 * grace)); len(ret) != 1 || n != 10 {
			t.Fatalf("retired %+v, released %d; want sub-3 and 10", ret, n)
		}
		// Nothing released yet: two live subscribers could not release
		// what three must have joined for, so sub-3 is kept.
		c = newTestPubCore(t, PubCoreConfig{MinSubscribers: 3, Grace: grace, Retention: time.Hour}, 10)
		c.SetMembers(t0, peers("sub-1", "sub-2", "sub-3"), nil)
		_ = c.Append(t0, 1, seqs(1, 10))
		c.SetMembers(left, peers("sub-1", "sub-2"), nil)
		c.OnAck(t0, "sub-1", 1, 10)
		c.OnAck(t0, "sub-2", 1, 10)
		if ret, n := c.Tick(left.Add(2 * grace)); len(ret) != 0 || n != 0 {
			t.Fatalf("retired %+v, released %d before the first release", ret, n)
		}
	})
	t.Run("no grace", func(t *testing.T) {
		c := setup(t, PubCoreConfig{MinSubscribers: 2}, true)
		c.cfg.Grace = 0
		if ret, _ := c.Tick(left.Add(30 * grace)); len(ret) != 0 {
			t.Fatalf("retired %+v with the grace off", ret)
		}
	})
	t.Run("replaced within the grace", func(t *testing.T) {
		c := setup(t, PubCoreConfig{MinSubscribers: 2}, true)
		// The replacement (same node id, next epoch) joins before the
		// grace ran out, then restores and asks for what follows 5.
		back := left.Add(grace / 2)
		c.SetMembers(back, []Peer{{ID: "sub-1", Epoch: 1, Endpoint: "sub-1"}, {ID: "sub-2", Epoch: 1, Endpoint: "sub-2"}, {ID: "sub-3", Epoch: 2, Endpoint: "new"}}, nil)
		if ret, n := c.Tick(left.Add(2 * grace)); len(ret) != 0 || n != 0 {
			t.Fatalf("retired %+v, released %d: the replacement would lose values", ret, n)
		}
		c.OnHello(back, "sub-3", 2, 5)
		s, ok := c.Next(back, "sub-3")
		if !ok || s.Kind != SendValues || s.First != 6 || s.N != 10 {
			t.Fatalf("replacement: next %+v %v, want values 6..15", s, ok)
		}
	})
	t.Run("left while the publisher was down", func(t *testing.T) {
		// A publisher restored from a snapshot taken while sub-3 was a
		// member: sub-3 is in no view of the new incarnation.
		ob, err := NewOutbox(10, 6)
		if err != nil {
			t.Fatal(err)
		}
		if err := ob.Append(6, seqs(6, 10)); err != nil {
			t.Fatal(err)
		}
		st := &pubState{Outbox: ob, Subs: map[string]*SubRecord{
			"sub-1": {Epoch: 1, Acked: 15}, "sub-2": {Epoch: 1, Acked: 15}, "sub-3": {Epoch: 1, Acked: 5}}}
		c, err := NewPubCore(PubCoreConfig{MinSubscribers: 2, Grace: grace, Retention: time.Hour}, st)
		if err != nil {
			t.Fatal(err)
		}
		c.SetMembers(left, peers("sub-1", "sub-2"), nil)
		if ret, n := c.Tick(left.Add(grace)); len(ret) != 1 || ret[0].ID != "sub-3" || n != 10 {
			t.Fatalf("retired %+v, released %d; want sub-3 and 10", ret, n)
		}
	})
}

// Smart batching: whatever piled up in the outbox goes out in one message
// (up to Chunk), and a breaker failure stops sending.
func TestPubCoreCoalescesAndEnds(t *testing.T) {
	c := newTestPubCore(t, PubCoreConfig{Total: 5, MinSubscribers: 1}, 10)
	c.SetMembers(t0, []Peer{{ID: "s", Epoch: 1, Endpoint: "a"}}, nil)
	for i := uint64(1); i <= 5; i++ {
		_ = c.Append(t0, i, []uint64{i}) // five beats of one value
	}
	c.GenDone()
	if _, ok := c.Next(t0, "s"); ok {
		t.Fatal("sent before the subscriber's position was known")
	}
	c.OnHello(t0, "s", 1, 0)
	s, ok := c.Next(t0, "s")
	if !ok || s.Kind != SendValues || s.First != 1 || s.N != 5 {
		t.Fatalf("next %+v, want values 1..5 in one message", s)
	}
	c.Result(t0, s, actors.FailBackPressured)
	s, _ = c.Next(t0, "s")
	c.Result(t0, s, 0)
	s, ok = c.Next(t0, "s")
	if !ok || s.Kind != SendEnd || s.Seq != 5 {
		t.Fatalf("next %+v, want end of stream", s)
	}
	c.Result(t0, s, 0)
	c.OnAck(t0, "s", 1, 5)
	c.Tick(t0)
	if !c.Complete() {
		t.Fatal("not complete")
	}
}

// Defect 1: a batch checked but not handed on (the receive actor failed in
// between) is not counted as taken in: the same batch is accepted again.
func TestSubCoreTwoPhaseIntake(t *testing.T) {
	c, _ := NewSubCore(SubCoreConfig{}, nil)
	c.SetMembers(t0, []Peer{{ID: "pub-1", Epoch: 1}})
	if v, skip := c.OnBatch(t0, "pub-1", 1, 1, 10); v != Accept || skip != 0 {
		t.Fatalf("%v %d", v, skip)
	}
	// (no Advance: the values never reached the pipeline)
	if v, _ := c.OnBatch(t0, "pub-1", 1, 1, 10); v != Accept {
		t.Fatalf("retried batch: %v, want accept", v)
	}
	c.Advance("pub-1", 1, 10)
	if v, _ := c.OnBatch(t0, "pub-1", 1, 5, 10); v != Accept {
		t.Fatal("overlapping batch not accepted")
	}
	if v, skip := c.OnBatch(t0, "pub-1", 1, 5, 10); skip != 6 {
		t.Fatalf("overlap: %v skip %d, want 6", v, skip)
	}
	if v, _ := c.OnBatch(t0, "pub-1", 1, 3, 5); v != Duplicate {
		t.Fatalf("old batch: %v", v)
	}
	if v, _ := c.OnBatch(t0, "pub-1", 1, 20, 5); v != Gap {
		t.Fatalf("gap: %v", v)
	}
}

// Defect 2, subscriber side, and issue 14 item 1: messages from a sender that
// is not a live publisher at exactly that epoch change nothing (a forged
// "released up to 1e8" no longer gives the stream up) and do not hold back
// completion.
func TestSubCoreChecksSenders(t *testing.T) {
	c, _ := NewSubCore(SubCoreConfig{}, nil)
	c.SetMembers(t0, []Peer{{ID: "pub-1", Epoch: 3}})
	for _, tc := range []struct {
		pub   string
		epoch uint64
		why   string
	}{{"ghost", 3, RejectUnknownSender}, {"pub-1", 2, RejectStaleEpoch}, {"pub-1", 1000, RejectFutureEpoch}} {
		if v, _ := c.OnBatch(t0, tc.pub, tc.epoch, 1, 1); v != Rejected {
			t.Fatalf("%+v: batch %v", tc, v)
		}
		if _, ok := c.OnReleased(t0, tc.pub, tc.epoch, 100_000_000); ok {
			t.Fatalf("%+v: released accepted", tc)
		}
		if c.OnEnd(t0, tc.pub, tc.epoch, 1) != Rejected {
			t.Fatalf("%+v: end accepted", tc)
		}
		if c.Rejects()[tc.why] != 3 {
			t.Fatalf("%+v: rejects %v", tc, c.Rejects())
		}
	}
	if v, _ := c.OnBatch(t0, "pub-1", 3, 0, 1); v != Rejected {
		t.Fatal("seq 0 accepted")
	}
	if v, _ := c.OnBatch(t0, "pub-1", 3, ^uint64(0), 2); v != Rejected {
		t.Fatal("wrapping seqs accepted")
	}
	if c.Taken("pub-1") != 0 || c.Taken("ghost") != 0 {
		t.Fatal("state changed by rejected messages")
	}
	// pub-1 delivers and ends; the ghost never pins completion.
	c.OnBatch(t0, "pub-1", 3, 1, 2)
	c.Advance("pub-1", 3, 2)
	if c.OnEnd(t0, "pub-1", 3, 2) != Accept {
		t.Fatal("end rejected")
	}
	if !c.Finished(1) {
		t.Fatal("not finished: an unknown sender pins completion")
	}
	if c.Finished(2) {
		t.Fatal("finished with fewer publishers than required")
	}
}

// Hellos and acks: a hello when a publisher's incarnation is new, acks only
// of durable positions, repeated, and not before anything is durable.
func TestSubCoreSchedule(t *testing.T) {
	c, _ := NewSubCore(SubCoreConfig{}, &SubCoreState{Pubs: map[string]SubPubState{"pub-1": {Epoch: 1, Taken: 7}}})
	c.SetMembers(t0, []Peer{{ID: "pub-1", Epoch: 2}})
	e := c.Tick(t0, nil)
	if len(e) != 1 || e[0].Kind != SendHello || e[0].Seq != 7 {
		t.Fatalf("effects %+v, want one hello after 7 (and no ack: nothing durable yet)", e)
	}
	c.Sent(t0, e[0])
	if e := c.Tick(t0.Add(time.Millisecond), nil); len(e) != 0 {
		t.Fatalf("effects %+v, want none", e)
	}
	c.Durable(map[string]SubPubState{"pub-1": {Epoch: 1, Taken: 7}})
	e = c.Tick(t0.Add(2*time.Millisecond), nil)
	if len(e) != 1 || e[0].Kind != SendAck || e[0].Seq != 7 {
		t.Fatalf("effects %+v, want an ack of 7", e)
	}
	c.Sent(t0, e[0])
	if e := c.Tick(t0.Add(500*time.Millisecond), nil); len(e) != 0 {
		t.Fatalf("effects %+v before the ack repeats", e)
	}
	if e := c.Tick(t0.Add(1100*time.Millisecond), nil); len(e) != 1 || e[0].Kind != SendAck {
		t.Fatalf("effects %+v, want the ack repeated", e)
	}
	// A bad state is refused.
	if _, err := NewSubCore(SubCoreConfig{}, &SubCoreState{Pubs: map[string]SubPubState{"../x": {}}}); err == nil {
		t.Fatal("bad node id accepted")
	}
	if _, err := NewSubCore(SubCoreConfig{}, &SubCoreState{Pubs: map[string]SubPubState{"p": {Taken: 9, End: 5}}}); err == nil {
		t.Fatal("taken beyond the end accepted")
	}
}

// Reordering: batches above a gap are held (a copy, within the window) and
// handed out in order once the gap is filled, each value once; nothing held
// is taken in (the watermark, and so acks and the persistent state, move
// only as batches are handed on); a new incarnation drops what is held.
func TestSubCoreHoldsReorderedBatches(t *testing.T) {
	c, _ := NewSubCore(SubCoreConfig{MaxValues: 8, ReorderWindow: 6}, nil)
	c.SetMembers(t0, []Peer{{ID: "pub-1", Epoch: 1}})
	in := func(first, n uint64) Verdict {
		t.Helper()
		v, _ := c.OnBatch(t0, "pub-1", 1, first, int(n))
		if v == Gap {
			c.Hold("pub-1", 1, first, seqs(first, n), int64(first))
		}
		return v
	}
	// 1..2 is late; 3..4, 5..6 and (overlapping) 4..5 arrive first.
	for _, b := range [][2]uint64{{3, 2}, {5, 2}, {4, 2}} {
		if v := in(b[0], b[1]); v != Gap {
			t.Fatalf("batch %v: %v, want gap", b, v)
		}
	}
	// 7..8 would exceed the window (6 values held): not held.
	if v := in(7, 2); v != Gap || c.HeldValues("pub-1") != 6 {
		t.Fatalf("over the window: %v, held %d", v, c.HeldValues("pub-1"))
	}
	if _, _, ok := c.Held("pub-1"); ok || c.Taken("pub-1") != 0 {
		t.Fatal("held batch handed out above a gap, or taken in")
	}
	// Hold admits nothing OnBatch would not.
	if c.Hold("pub-1", 2, 9, seqs(9, 1), 0) || c.Hold("ghost", 1, 9, seqs(9, 1), 0) || c.Hold("pub-1", 1, 1, seqs(1, 1), 0) {
		t.Fatal("held a batch from a wrong epoch, an unknown sender, or at the watermark")
	}
	if v := in(1, 2); v != Accept {
		t.Fatalf("late batch: %v", v)
	}
	c.Advance("pub-1", 1, 2)
	var got []uint64
	for {
		h, skip, ok := c.Held("pub-1")
		if !ok {
			break
		}
		if h.Beat != int64(h.First) || h.Epoch != 1 {
			t.Fatalf("held batch %+v lost its beat or epoch", h)
		}
		got = append(got, h.Values[skip:]...)
		c.Advance("pub-1", h.Epoch, h.Last())
	}
	if want := seqs(3, 4); !slices.Equal(got, want) || c.Taken("pub-1") != 6 || c.HeldValues("pub-1") != 0 {
		t.Fatalf("handed out %v (taken %d, held %d), want %v once each", got, c.Taken("pub-1"), c.HeldValues("pub-1"), want)
	}
	// A held batch whose hand-off failed (no Advance) stays held; a new
	// incarnation of the publisher drops it.
	in(8, 1)
	if h, _, ok := c.Held("pub-1"); ok {
		t.Fatalf("%+v handed out above the gap at 7", h)
	}
	if c.HeldValues("pub-1") != 1 {
		t.Fatal("batch 8 not held")
	}
	c.SetMembers(t0, []Peer{{ID: "pub-1", Epoch: 2}})
	if c.HeldValues("pub-1") != 0 {
		t.Fatal("held values of a previous incarnation kept")
	}
}

// A gap asks for a replay once it has lasted HelloRetry (a batch merely
// reordered fills it before), and again every HelloRetry while it lasts:
// a lost hello costs one retry, not QuietHello.
func TestSubCoreGapHello(t *testing.T) {
	c, _ := NewSubCore(SubCoreConfig{HelloRetry: 100 * time.Millisecond, QuietHello: time.Hour}, nil)
	c.SetMembers(t0, []Peer{{ID: "pub-1", Epoch: 1}})
	for _, e := range c.Tick(t0, nil) { // the new incarnation's hello
		c.Sent(t0, e)
	}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	hellos := func(ms int) int {
		n := 0
		for _, e := range c.Tick(at(ms), nil) {
			if e.Kind == SendHello {
				if e.Seq != c.Taken("pub-1") {
					t.Fatalf("hello after %d, taken %d", e.Seq, c.Taken("pub-1"))
				}
				c.Sent(at(ms), e)
				n++
			}
		}
		return n
	}
	// Reordered: 2 before 1, the gap filled within HelloRetry: no hello.
	c.OnBatch(at(200), "pub-1", 1, 2, 1)
	if n := hellos(250); n != 0 {
		t.Fatalf("%d hellos for a gap of 50 ms", n)
	}
	c.OnBatch(at(260), "pub-1", 1, 1, 1)
	c.Advance("pub-1", 1, 1)
	c.OnBatch(at(260), "pub-1", 1, 2, 1)
	c.Advance("pub-1", 1, 2)
	if n := hellos(400); n != 0 {
		t.Fatalf("%d hellos after the gap was filled", n)
	}
	// Lost: 3 never comes; hellos every HelloRetry until it does.
	c.OnBatch(at(500), "pub-1", 1, 4, 1)
	if n := hellos(550); n != 0 {
		t.Fatal("hello before HelloRetry")
	}
	if hellos(600) != 1 || hellos(650) != 0 || hellos(700) != 1 || hellos(800) != 1 {
		t.Fatal("want a hello every HelloRetry while the gap lasts")
	}
	c.OnBatch(at(810), "pub-1", 1, 3, 2)
	c.Advance("pub-1", 1, 4)
	if n := hellos(1000); n != 0 {
		t.Fatalf("%d hellos after the gap was filled", n)
	}
}

// AppendSeqs (the publishing actor's append: value = seq, one run) skips
// what the outbox already holds (values regenerated after a restore),
// appends all or nothing, and keeps the values a plain Append would.
func TestPubCoreAppendSeqs(t *testing.T) {
	c := newTestPubCore(t, PubCoreConfig{}, 10)
	ob := c.Outbox()
	if err := c.AppendSeqs(t0, 1, 4); err != nil {
		t.Fatal(err)
	}
	if err := c.AppendSeqs(t0, 2, 2); err != nil || ob.Last() != 4 {
		t.Fatalf("regenerated values: %v, last %d", err, ob.Last())
	}
	if err := c.AppendSeqs(t0, 3, 5); err != nil || ob.Last() != 7 {
		t.Fatalf("overlapping values: %v, last %d", err, ob.Last())
	}
	if err := c.AppendSeqs(t0, 8, 4); err == nil || ob.Last() != 7 {
		t.Fatalf("overfull append: %v, last %d", err, ob.Last())
	}
	if err := c.AppendSeqs(t0, 9, 1); err == nil {
		t.Fatal("a gap accepted")
	}
	if err := c.AppendSeqs(t0, 8, 3); err != nil || ob.Free() != 0 || c.FullEvents() != 1 {
		t.Fatalf("fill: %v, free %d, full events %d", err, ob.Free(), c.FullEvents())
	}
	// The generator retries while the outbox stays full: one event, not
	// one per attempt (steadfast_outbox_full_total counts events).
	for range 5 {
		if err := c.AppendSeqs(t0, 11, 1); err == nil {
			t.Fatal("append to a full outbox accepted")
		}
	}
	if c.FullEvents() != 1 {
		t.Fatalf("full events %d after retries while full, want 1", c.FullEvents())
	}
	if got := ob.Range(nil, 1, 20); !equal(got, seqs(1, 10)) || ob.Runs() != 1 {
		t.Fatalf("values %v in %d runs", got, ob.Runs())
	}
}
