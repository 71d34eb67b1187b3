package actors

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestChanCapacityRoundsUp(t *testing.T) {
	for _, tc := range []struct{ in, want int }{{0, 2}, {1, 2}, {2, 2}, {3, 4}, {1000, 1024}, {1024, 1024}} {
		if got := NewChan[int]("c", tc.in).Cap(); got != tc.want {
			t.Errorf("NewChan(%d).Cap() = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestChanSendPeekCommitWrap(t *testing.T) {
	c := NewChan[int]("c", 4)
	next, want := 0, 0
	for round := 0; round < 50; round++ {
		// fill up to capacity in uneven steps, so positions wrap at every offset
		for c.TrySend(next) {
			next++
		}
		if c.Len() != 4 {
			t.Fatalf("full channel Len = %d", c.Len())
		}
		if c.SendBatch([]int{99}) != 0 {
			t.Fatal("SendBatch on a full channel sent something")
		}
		v, ok := c.TryPeek()
		if !ok || v != want {
			t.Fatalf("TryPeek = %d,%v want %d", v, ok, want)
		}
		v2, _ := c.TryPeek()
		if v2 != v || c.Len() != 4 {
			t.Fatal("TryPeek removed the message")
		}
		k := 1 + round%3
		buf := make([]int, k)
		n := c.PeekBatch(buf)
		if n != k {
			t.Fatalf("PeekBatch = %d, want %d", n, k)
		}
		for i := range n {
			if buf[i] != want+i {
				t.Fatalf("PeekBatch[%d] = %d, want %d", i, buf[i], want+i)
			}
		}
		c.Commit(n)
		want += n
		if c.HeadPos() != uint64(want) {
			t.Fatalf("HeadPos = %d, want %d", c.HeadPos(), want)
		}
	}
	st := c.Stats()
	if st.Sent != uint64(next) || st.Taken != uint64(want) || st.Len != next-want || st.Cap != 4 {
		t.Fatalf("Stats = %+v (sent %d taken %d)", st, next, want)
	}
}

func TestChanBatchOps(t *testing.T) {
	c := NewChan[int]("c", 8)
	in := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if n := c.SendBatch(in); n != 8 {
		t.Fatalf("SendBatch sent %d, want 8 (capacity)", n)
	}
	out := make([]int, 5)
	if n := c.TakeBatch(out); n != 5 || out[0] != 1 || out[4] != 5 {
		t.Fatalf("TakeBatch = %d %v", n, out)
	}
	if n := c.SendBatch(in[8:]); n != 2 { // wraps
		t.Fatalf("SendBatch sent %d, want 2", n)
	}
	out = make([]int, 16)
	n := c.TakeBatch(out)
	if n != 5 {
		t.Fatalf("TakeBatch = %d, want 5", n)
	}
	for i, v := range out[:n] {
		if v != 6+i {
			t.Fatalf("out[%d] = %d", i, v)
		}
	}
	if _, ok := c.TryTake(); ok {
		t.Fatal("TryTake on empty channel succeeded")
	}
}

func TestChanCommitTooManyPanics(t *testing.T) {
	c := NewChan[int]("c", 4)
	c.TrySend(1)
	defer func() {
		if recover() == nil {
			t.Fatal("Commit(2) with one message did not panic")
		}
	}()
	c.Commit(2)
}

func TestChanCloseSemantics(t *testing.T) {
	c := NewChan[int]("c", 8)
	c.SendBatch([]int{1, 2, 3})
	c.Close()
	c.Close() // idempotent
	if c.TrySend(4) || c.SendBatch([]int{4}) != 0 {
		t.Fatal("send after Close succeeded")
	}
	if c.IsClosedAndEmpty() {
		t.Fatal("closed channel with messages reported empty")
	}
	// asking for more than are left returns true with the final short batch
	if !c.WaitAvailable(context.Background(), 5) {
		t.Fatal("WaitAvailable on closed channel with 3 left returned false")
	}
	buf := make([]int, 5)
	if n := c.TakeBatch(buf); n != 3 {
		t.Fatalf("TakeBatch = %d", n)
	}
	if !c.IsClosedAndEmpty() {
		t.Fatal("drained closed channel not closed-and-empty")
	}
	if c.WaitAvailable(context.Background(), 1) {
		t.Fatal("WaitAvailable on closed-and-empty returned true")
	}
}

func TestChanCloseWakesWaitingConsumer(t *testing.T) {
	c := NewChan[int]("c", 8)
	got := make(chan bool)
	go func() { got <- c.WaitAvailable(context.Background(), 1) }()
	time.Sleep(10 * time.Millisecond)
	c.Close()
	select {
	case ok := <-got:
		if ok {
			t.Fatal("WaitAvailable returned true on closed-and-empty")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the consumer")
	}
}

func TestChanWaitsHonourDone(t *testing.T) {
	c := NewChan[int]("c", 2)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan bool, 2)
	go func() { res <- c.WaitAvailable(ctx, 1) }()
	c.SendBatch([]int{1, 2})
	full := NewChan[int]("full", 2)
	full.SendBatch([]int{1, 2})
	go func() { res <- full.WaitVacant(ctx, 1) }()
	// the first wait is satisfied by the send
	if ok := <-res; !ok {
		t.Fatal("WaitAvailable did not see the send")
	}
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case ok := <-res:
		if ok {
			t.Fatal("WaitVacant on a full channel returned true after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitVacant ignored cancellation")
	}
	if full.Send(ctx, 3) {
		t.Fatal("Send on full channel with cancelled ctx succeeded")
	}
	if n := full.SendAll(ctx, []int{3, 4}); n != 0 {
		t.Fatalf("SendAll sent %d", n)
	}
	empty := NewChan[int]("empty", 2)
	if empty.WaitAvailable(ctx, 1) {
		t.Fatal("WaitAvailable with cancelled ctx returned true")
	}
}

func TestChanDetachFailsSends(t *testing.T) {
	c := NewChan[int]("c", 2)
	c.SendBatch([]int{1, 2})
	done := make(chan bool)
	go func() { done <- c.Send(context.Background(), 3) }()
	time.Sleep(10 * time.Millisecond)
	c.detach()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("Send to a detached channel succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("detach did not wake the blocked producer")
	}
	if !c.Stats().Detached {
		t.Fatal("Stats.Detached = false")
	}
}

func TestChanSendAllLargerThanCapacity(t *testing.T) {
	c := NewChan[int]("c", 4)
	vals := make([]int, 100)
	for i := range vals {
		vals[i] = i
	}
	var got []int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]int, 3)
		for c.WaitAvailable(context.Background(), 1) {
			n := c.TakeBatch(buf)
			got = append(got, buf[:n]...)
		}
	}()
	if n := c.SendAll(context.Background(), vals); n != 100 {
		t.Fatalf("SendAll = %d", n)
	}
	c.Close()
	wg.Wait()
	for i, v := range got {
		if v != i {
			t.Fatalf("got[%d] = %d", i, v)
		}
	}
	if len(got) != 100 {
		t.Fatalf("got %d values", len(got))
	}
}

// TestChanSPSCStress runs a producer and a consumer on separate goroutines
// with random batch sizes and random waits; every value must arrive once, in
// order. Run with -race, it also checks the memory ordering of the ring.
//
// Waiting for n > 1 on both sides can deadlock (the producer waits for more
// room than the consumer frees while the consumer waits for more messages
// than fit), so only one side at a time waits for several.
func TestChanSPSCStress(t *testing.T) {
	const total = 200_000
	for _, capacity := range []int{2, 16, 1024} {
		for _, consumerWaitsMany := range []bool{false, true} {
			spscStress(t, capacity, total, consumerWaitsMany)
		}
	}
}

func spscStress(t *testing.T, capacity int, total uint64, consumerWaitsMany bool) {
	{
		c := NewChan[uint64]("stress", capacity)
		ctx := context.Background()
		errc := make(chan error, 1)
		go func() {
			r := rand.New(rand.NewPCG(1, uint64(capacity)))
			buf := make([]uint64, 64)
			var next uint64
			for next < total {
				k := 1 + r.IntN(len(buf))
				for i := range k {
					buf[i] = next + uint64(i)
				}
				mode := r.IntN(3)
				if consumerWaitsMany && mode == 2 {
					mode = 1
				}
				switch mode {
				case 0:
					if c.Send(ctx, buf[0]) {
						next++
					}
				case 1:
					next += uint64(c.SendAll(ctx, buf[:min(k, int(total-next))]))
				default:
					if c.WaitVacant(ctx, k) {
						next += uint64(c.SendBatch(buf[:min(k, int(total-next))]))
					}
				}
			}
			c.Close()
			errc <- nil
		}()
		r := rand.New(rand.NewPCG(2, uint64(capacity)))
		buf := make([]uint64, 64)
		var want uint64
		waitN := func() int {
			if consumerWaitsMany {
				return 1 + r.IntN(8)
			}
			return 1
		}
		for c.WaitAvailable(ctx, waitN()) {
			k := 1 + r.IntN(len(buf))
			n := c.PeekBatch(buf[:k])
			for i := range n {
				if buf[i] != want+uint64(i) {
					t.Fatalf("cap %d: got %d want %d", capacity, buf[i], want+uint64(i))
				}
			}
			// commit only part of what was peeked, sometimes
			m := n
			if n > 1 && r.IntN(2) == 0 {
				m = 1 + r.IntN(n)
			}
			c.Commit(m)
			want += uint64(m)
		}
		<-errc
		if want != total {
			t.Fatalf("cap %d: consumed %d of %d", capacity, want, total)
		}
	}
}

func TestForwardAndSendFor(t *testing.T) {
	in := NewChan[int]("in", 8)
	out := NewChan[int]("out", 8)
	in.SendBatch([]int{1, 2, 3})
	buf := make([]int, 2)
	n := in.PeekBatch(buf)
	if !Forward(context.Background(), in, n, out, []int{10, 20}) {
		t.Fatal("Forward failed")
	}
	if in.Len() != 1 || out.Len() != 2 {
		t.Fatalf("after Forward in=%d out=%d", in.Len(), out.Len())
	}
	v, _ := in.TryPeek()
	if !out.SendFor(context.Background(), in, 1, []int{v * 10}) {
		t.Fatal("SendFor failed")
	}
	if in.Forwarded() != 1 {
		t.Fatalf("Forwarded = %d, want 1", in.Forwarded())
	}
	in.Commit(1)
	if in.Forwarded() != 0 {
		t.Fatalf("Forwarded after commit = %d, want 0", in.Forwarded())
	}
	// Forward must not commit when the output cannot take the values.
	out.Close()
	in.TrySend(4)
	in.TryPeek()
	if Forward(context.Background(), in, 1, out, []int{40}) {
		t.Fatal("Forward to a closed channel succeeded")
	}
	if in.Len() != 1 {
		t.Fatal("failed Forward committed its input")
	}
}
