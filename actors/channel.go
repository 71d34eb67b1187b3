package actors

import (
	"fmt"
	"sync/atomic"
)

// cacheLine is the padding unit that keeps the producer's and the consumer's
// hot fields on separate cache lines (false sharing would halve throughput).
const cacheLine = 64

// Doner is anything with a Done channel: a context.Context, an actor's
// *Context (whose Done is the graph's hard abort) or a Signal. Blocking channel
// operations return early when it fires.
type Doner interface {
	Done() <-chan struct{}
}

// Signal adapts a bare channel to Doner, e.g. Signal(ctx.Stopping()) for a
// source that must stop waiting as soon as a graceful shutdown begins.
type Signal <-chan struct{}

// Done returns the channel itself.
func (s Signal) Done() <-chan struct{} { return s }

// Chan is a bounded, typed, single-producer/single-consumer ring buffer.
//
// Exactly one goroutine may call the producer methods (TrySend, SendBatch,
// Send, SendAll, WaitVacant, SendFor, Close) and exactly one goroutine the
// consumer methods (TryPeek, PeekBatch, Commit, TryTake, TakeBatch,
// WaitAvailable, Forwarded, HeadPos). A restarted actor runs on the same
// goroutine as its predecessor, so an actor keeps its role across restarts.
// Len, Cap, Name, IsClosed and Stats may be called from anywhere.
//
// Positions are counted from 0 when the channel is created and never wrap in
// practice (uint64): HeadPos is the position of the next message to take, and
// the total number of messages ever sent and taken are the tail and head
// positions.
//
// Peek before commit: TryPeek and PeekBatch leave messages in the channel;
// Commit(n) removes them. A consumer that crashes between peek and commit finds
// the same messages at the head when it is restarted. See Forward and SendFor
// for the rule that keeps the downstream free of duplicates.
type Chan[T any] struct {
	// Consumer-owned cache line: the head position (next slot to read).
	head atomic.Uint64
	_    [cacheLine - 8]byte

	// Producer-owned cache line: the tail position (next slot to write).
	tail atomic.Uint64
	_    [cacheLine - 8]byte

	// Producer-local fields (only the producer goroutine touches them).
	headCache uint64 // last head the producer loaded
	_         [cacheLine - 8]byte

	// Consumer-local fields (only the consumer goroutine touches them).
	tailCache uint64 // last tail the consumer loaded
	peekPos   uint64 // first position of the last peek
	peekEnd   uint64 // one past the last position of the last peek
	fwdEnd    uint64 // messages below this position have been forwarded (SendFor)
	careful   uint64 // while head < careful, batch peeks return at most 1 message
	_         [cacheLine - 40]byte

	// Wake-up protocol. A waiter stores the position it needs (consWant: a
	// tail; prodWant: a head), re-checks, then parks on its capacity-1 channel.
	// The other side stores its position, loads the want, and signals if the
	// want is satisfied. Go's atomics are sequentially consistent, so at least
	// one side sees the other's store and no wake-up is lost.
	consWant atomic.Uint64 // 0: the consumer is not waiting
	prodWant atomic.Uint64 // 0: the producer is not waiting
	closed   atomic.Bool   // set by the producer's Close
	detached atomic.Bool   // the consumer is gone for good: sends fail
	dataCh   chan struct{}
	spaceCh  chan struct{}

	buf      []T
	mask     uint64
	capacity uint64
	name     string

	// owners, recorded by Graph.Add to enforce single producer/consumer.
	producer, consumer string
}

// NewChan returns a channel holding up to capacity messages. The capacity is
// rounded up to a power of two (minimum 2). The name identifies the channel in
// Stats, logs and dead letters.
func NewChan[T any](name string, capacity int) *Chan[T] {
	if capacity < 2 {
		capacity = 2
	}
	c := uint64(1)
	for c < uint64(capacity) {
		c <<= 1
	}
	return &Chan[T]{
		buf:      make([]T, c),
		mask:     c - 1,
		capacity: c,
		name:     name,
		dataCh:   make(chan struct{}, 1),
		spaceCh:  make(chan struct{}, 1),
	}
}

// Name returns the channel's name.
func (c *Chan[T]) Name() string { return c.name }

// Cap returns the capacity.
func (c *Chan[T]) Cap() int { return int(c.capacity) }

// Len returns the number of messages currently in the channel (a snapshot).
func (c *Chan[T]) Len() int {
	h := c.head.Load()
	t := c.tail.Load()
	if t < h { // raced: head moved after we read it
		return 0
	}
	return int(t - h)
}

// IsClosed reports whether the producer has closed the channel. Messages sent
// before Close may still be waiting to be taken.
func (c *Chan[T]) IsClosed() bool { return c.closed.Load() }

// ---------------------------------------------------------------- producer

// vacant returns how many slots are free, refreshing the cached head only when
// the cached view shows fewer than want.
func (c *Chan[T]) vacant(t uint64, want uint64) uint64 {
	free := c.capacity - (t - c.headCache)
	if free < want {
		c.headCache = c.head.Load()
		free = c.capacity - (t - c.headCache)
	}
	return free
}

// publish makes positions up to t visible to the consumer and wakes it if it
// waits for them (or for the channel to close).
func (c *Chan[T]) publish(t uint64) {
	c.tail.Store(t)
	if w := c.consWant.Load(); w != 0 && t >= w {
		select {
		case c.dataCh <- struct{}{}:
		default:
		}
	}
}

// TrySend appends v if there is room and reports whether it did. It never
// blocks. It fails when the channel is full, closed or its consumer is gone.
func (c *Chan[T]) TrySend(v T) bool {
	if c.closed.Load() || c.detached.Load() {
		return false
	}
	t := c.tail.Load()
	if c.vacant(t, 1) == 0 {
		return false
	}
	c.buf[t&c.mask] = v
	c.publish(t + 1)
	return true
}

// SendBatch appends as many of vs as fit without blocking and returns how
// many it appended (a prefix of vs), in one publication.
func (c *Chan[T]) SendBatch(vs []T) int {
	if len(vs) == 0 || c.closed.Load() || c.detached.Load() {
		return 0
	}
	t := c.tail.Load()
	n := c.vacant(t, uint64(len(vs)))
	if n == 0 {
		return 0
	}
	if n > uint64(len(vs)) {
		n = uint64(len(vs))
	}
	c.write(t, vs[:n])
	c.publish(t + n)
	return int(n)
}

// write copies vs into the ring at position t (caller checked room).
func (c *Chan[T]) write(t uint64, vs []T) {
	i := t & c.mask
	k := copy(c.buf[i:], vs)
	if k < len(vs) {
		copy(c.buf, vs[k:])
	}
}

// WaitVacant blocks until at least n slots are free (n is clamped to Cap).
// It returns false without waiting further if d fires, the channel is closed,
// or the consumer is gone. Do not wait for n > 1 vacant slots while the
// consumer waits for m > 1 messages: with fewer than m messages and fewer
// than n free slots, both would wait forever. SendAll only waits for one.
func (c *Chan[T]) WaitVacant(d Doner, n int) bool {
	want := uint64(max(n, 1))
	if want > c.capacity {
		want = c.capacity
	}
	for {
		if c.closed.Load() || c.detached.Load() {
			return false
		}
		t := c.tail.Load()
		if c.vacant(t, want) >= want {
			return true
		}
		// Need head >= t + want - capacity (>= 1 here, as the ring is fuller
		// than capacity-want).
		c.prodWant.Store(t + want - c.capacity)
		if c.capacity-(t-c.head.Load()) >= want || c.detached.Load() {
			c.prodWant.Store(0)
			continue
		}
		select {
		case <-c.spaceCh:
		case <-doneOf(d):
			c.prodWant.Store(0)
			return false
		}
		c.prodWant.Store(0)
	}
}

// Send appends v, waiting for room. It returns false if d fired, the channel
// is closed or its consumer is gone before v could be appended.
func (c *Chan[T]) Send(d Doner, v T) bool {
	if c.TrySend(v) {
		return true
	}
	for c.WaitVacant(d, 1) {
		if c.TrySend(v) {
			return true
		}
	}
	return false
}

// SendAll appends all of vs, waiting for room as needed and appending what
// fits each time (so batches larger than Cap work). It returns how many it appended;
// fewer than len(vs) only if d fired, the channel is closed or the consumer is
// gone.
func (c *Chan[T]) SendAll(d Doner, vs []T) int {
	sent := 0
	for sent < len(vs) {
		sent += c.SendBatch(vs[sent:])
		if sent == len(vs) {
			break
		}
		// Wait for any room (not for all of it): a consumer waiting for
		// several messages must not deadlock against us.
		if !c.WaitVacant(d, 1) {
			break
		}
	}
	return sent
}

// Close marks the channel closed: no more sends. The consumer still takes
// what is in it and then sees IsClosedAndEmpty. Close is idempotent and is
// called by the producer (the supervisor closes an actor's outputs when the
// actor stops for good).
func (c *Chan[T]) Close() {
	if c.closed.Swap(true) {
		return
	}
	select {
	case c.dataCh <- struct{}{}:
	default:
	}
}

// ---------------------------------------------------------------- consumer

// available returns how many messages can be read at head h, refreshing the
// cached tail only when the cached view shows fewer than want.
func (c *Chan[T]) available(h uint64, want uint64) uint64 {
	n := c.tailCache - h
	if n < want || c.tailCache < h {
		c.tailCache = c.tail.Load()
		n = c.tailCache - h
	}
	return n
}

// HeadPos returns the position of the message at the head: the number of
// messages ever committed. It identifies a message for dedup in persistent
// state (see the package doc, "Exactly once"). Positions start at 0 in every
// new channel, so they identify messages within one graph run only.
func (c *Chan[T]) HeadPos() uint64 { return c.head.Load() }

// TryPeek returns the message at the head without removing it.
func (c *Chan[T]) TryPeek() (T, bool) {
	h := c.head.Load()
	if c.available(h, 1) == 0 {
		var zero T
		return zero, false
	}
	c.notePeek(h, 1)
	return c.buf[h&c.mask], true
}

// PeekBatch copies up to len(dst) messages from the head into dst without
// removing them and returns how many it copied. After a crash with several
// messages peeked, the restarted consumer gets at most one message per
// PeekBatch until the head has moved past the previously peeked range, so the
// message that crashes it ends up alone at the head (see "Showstoppers").
func (c *Chan[T]) PeekBatch(dst []T) int {
	h := c.head.Load()
	want := uint64(len(dst))
	if h < c.careful && want > 1 {
		want = 1
	}
	n := c.available(h, want)
	if n > want {
		n = want
	}
	if n == 0 {
		return 0
	}
	i := h & c.mask
	k := copy(dst[:n], c.buf[i:])
	if uint64(k) < n {
		copy(dst[k:n], c.buf)
	}
	c.notePeek(h, n)
	return int(n)
}

// notePeek records that positions [h, h+n) have been peeked: the in-flight
// range used to recognise showstoppers after a crash.
func (c *Chan[T]) notePeek(h, n uint64) {
	if h < c.peekPos || h >= c.peekEnd {
		c.peekPos, c.peekEnd = h, h+n
	} else if h+n > c.peekEnd {
		c.peekEnd = h + n
	}
}

// Commit removes n messages from the head (those peeked before). Committing
// more than are available is a bug and panics.
func (c *Chan[T]) Commit(n int) {
	if n <= 0 {
		return
	}
	h := c.head.Load()
	if c.available(h, uint64(n)) < uint64(n) {
		panic(fmt.Sprintf("actors: Commit(%d) on channel %q with %d messages", n, c.name, c.tailCache-h))
	}
	c.clearRange(h, uint64(n))
	c.advance(h + uint64(n))
}

// clearRange zeroes n slots from position h so the ring holds no references
// to taken messages.
func (c *Chan[T]) clearRange(h, n uint64) {
	i := h & c.mask
	end := i + n
	if end <= c.capacity {
		clear(c.buf[i:end])
		return
	}
	clear(c.buf[i:])
	clear(c.buf[:end-c.capacity])
}

// advance publishes the new head and wakes a producer waiting for room.
func (c *Chan[T]) advance(h uint64) {
	c.head.Store(h)
	if w := c.prodWant.Load(); w != 0 && h >= w {
		select {
		case c.spaceCh <- struct{}{}:
		default:
		}
	}
}

// TryTake removes and returns the message at the head.
func (c *Chan[T]) TryTake() (T, bool) {
	v, ok := c.TryPeek()
	if ok {
		c.Commit(1)
	}
	return v, ok
}

// TakeBatch removes up to len(dst) messages into dst and returns how many.
func (c *Chan[T]) TakeBatch(dst []T) int {
	n := c.PeekBatch(dst)
	c.Commit(n)
	return n
}

// WaitAvailable blocks until at least n messages are available (n is clamped
// to Cap) and returns true. Waiting for n > 1 relies on the producer filling
// the channel (see WaitVacant), so pair it with Send/SendAll producers. It also returns true when the channel is closed
// with at least one message left (the final, shorter batch). It returns false
// when the channel is closed and empty, or when d fires first.
func (c *Chan[T]) WaitAvailable(d Doner, n int) bool {
	want := uint64(max(n, 1))
	if want > c.capacity {
		want = c.capacity
	}
	for {
		h := c.head.Load()
		if c.available(h, want) >= want {
			return true
		}
		if c.closed.Load() {
			// Close happens after the last publish; reload to see it all.
			c.tailCache = c.tail.Load()
			return c.tailCache > h
		}
		c.consWant.Store(h + want)
		if c.tail.Load()-h >= want || c.closed.Load() {
			c.consWant.Store(0)
			continue
		}
		select {
		case <-c.dataCh:
		case <-doneOf(d):
			c.consWant.Store(0)
			return false
		}
		c.consWant.Store(0)
	}
}

// IsClosedAndEmpty reports whether the producer closed the channel and every
// message has been taken: the consumer is done with this input.
func (c *Chan[T]) IsClosedAndEmpty() bool {
	if !c.closed.Load() {
		return false
	}
	return c.tail.Load() == c.head.Load()
}

// ---------------------------------------------------------------- exactly once

// Forwarded returns how many messages at the head already had their output
// sent by SendFor but are not yet committed. A consumer restarted after a
// crash between SendFor and Commit sees a non-zero value and must commit that
// many messages without sending their output again.
func (c *Chan[T]) Forwarded() int {
	h := c.head.Load()
	if c.fwdEnd <= h {
		return 0
	}
	return int(c.fwdEnd - h)
}

// markForwarded records that the first n messages at the head have had their
// output sent (consumer side).
func (c *Chan[T]) markForwarded(n int) {
	e := c.head.Load() + uint64(n)
	if e > c.fwdEnd {
		c.fwdEnd = e
	}
}

// SendFor appends all of vs as the output for the first n messages at the
// head of in (whose consumer is the calling goroutine), and records that fact
// in in, in one step with no user code in between. It waits for room for all
// of vs at once, so len(vs) must not exceed Cap (it panics otherwise). It
// returns false, sending nothing and recording nothing, if d fired, c is
// closed or its consumer is gone.
func (c *Chan[T]) SendFor(d Doner, in Input, n int, vs []T) bool {
	if len(vs) > int(c.capacity) {
		panic(fmt.Sprintf("actors: SendFor of %d messages on channel %q of capacity %d", len(vs), c.name, c.capacity))
	}
	if len(vs) > 0 {
		if !c.WaitVacant(d, len(vs)) {
			return false
		}
		t := c.tail.Load()
		c.write(t, vs)
		c.publish(t + uint64(len(vs)))
	}
	in.markForwarded(n)
	return true
}

// Forward appends all of vs to out and commits n messages of in, as one step:
// no user code runs between the send and the commit, so a crash happens
// either before (nothing sent, the input is still at the head) or after
// (sent and committed). This is the preferred way to consume and produce.
// len(vs) must not exceed out.Cap(). It returns false, doing nothing, if d
// fired, out is closed or its consumer is gone.
func Forward[I, O any](d Doner, in *Chan[I], n int, out *Chan[O], vs []O) bool {
	if !out.SendFor(d, in, n, vs) {
		return false
	}
	in.Commit(n)
	return true
}

// ---------------------------------------------------------------- runtime hooks

// Input is the consumer side of a channel as the runtime sees it: the
// supervisor uses it to detect showstoppers and move them to dead letters.
// *Chan[T] implements it; you only pass channels around as Input.
type Input interface {
	Port
	markForwarded(n int)
	// inFlight reports the head position and whether the consumer had peeked
	// it without committing (consumer goroutine only).
	inFlight() (pos uint64, ok bool)
	// dropHead removes the head message and returns it (consumer goroutine).
	dropHead() (any, bool)
	// beCareful limits batch peeks to one message until the head passes the
	// range peeked before a crash (consumer goroutine).
	beCareful()
	// resetPeek forgets the peeked range (consumer goroutine, on restart).
	resetPeek()
	detach()
}

// Port is a channel as seen by a graph: a name, stats and ownership.
type Port interface {
	Name() string
	Len() int
	Cap() int
	Stats() ChanStats
	// Close closes the channel (producer side).
	Close()
	owners() (producer, consumer *string)
}

var _ Input = (*Chan[int])(nil)

func (c *Chan[T]) owners() (*string, *string) { return &c.producer, &c.consumer }

func (c *Chan[T]) inFlight() (uint64, bool) {
	h := c.head.Load()
	return h, c.peekPos <= h && h < c.peekEnd
}

func (c *Chan[T]) dropHead() (any, bool) {
	h := c.head.Load()
	if c.available(h, 1) == 0 {
		return nil, false
	}
	v := c.buf[h&c.mask]
	var zero T
	c.buf[h&c.mask] = zero
	c.advance(h + 1)
	return v, true
}

func (c *Chan[T]) beCareful() {
	h := c.head.Load()
	if c.peekPos <= h && h+1 < c.peekEnd && c.peekEnd > c.careful {
		c.careful = c.peekEnd
	}
}

func (c *Chan[T]) resetPeek() { c.peekPos, c.peekEnd = 0, 0 }

func (c *Chan[T]) detach() {
	c.detached.Store(true)
	select {
	case c.spaceCh <- struct{}{}:
	default:
	}
}

// ChanStats is a point-in-time view of a channel.
type ChanStats struct {
	Name     string
	Len, Cap int
	Sent     uint64 // messages ever sent (the tail position)
	Taken    uint64 // messages ever committed or dead-lettered (the head position)
	Closed   bool
	Detached bool // the consumer stopped for good
}

// Stats returns a snapshot of the channel's fill and counters.
func (c *Chan[T]) Stats() ChanStats {
	h := c.head.Load()
	t := c.tail.Load()
	if t < h {
		t = h
	}
	return ChanStats{
		Name: c.name, Len: int(t - h), Cap: int(c.capacity),
		Sent: t, Taken: h, Closed: c.closed.Load(), Detached: c.detached.Load(),
	}
}

func doneOf(d Doner) <-chan struct{} {
	if d == nil {
		return nil
	}
	return d.Done()
}
