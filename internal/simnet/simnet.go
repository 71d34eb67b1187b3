// Package simnet is a test-only deterministic network and clock: datagrams
// sent through a Network are lost, duplicated, delayed and reordered
// according to a seeded random source, and delivered in virtual time. The
// same seed and the same sequence of calls give the same run, so a failing
// seed replays exactly.
package simnet

import (
	"container/heap"
	"math/rand/v2"
	"net/netip"
)

// Clock is a virtual monotonic clock in nanoseconds.
type Clock struct{ now int64 }

// Now returns the current virtual time.
func (c *Clock) Now() int64 { return c.now }

// Set moves the clock to t; it never goes backwards.
func (c *Clock) Set(t int64) {
	if t > c.now {
		c.now = t
	}
}

// Advance moves the clock forward by d nanoseconds.
func (c *Clock) Advance(d int64) { c.now += max(d, 0) }

// Faults configures a Network. Probabilities are in [0, 1].
type Faults struct {
	Loss      float64 // probability a datagram is dropped
	Duplicate float64 // probability a datagram is delivered twice
	Reorder   float64 // probability a datagram gets an extra delay of up to ReorderDelay
	MinDelay  int64   // ns, every datagram
	MaxDelay  int64   // ns, uniform in [MinDelay, MaxDelay]
	// ReorderDelay is the largest extra delay of a reordered datagram.
	ReorderDelay int64
}

// Packet is a datagram in flight.
type Packet struct {
	At       int64
	From, To netip.AddrPort
	Data     []byte
	seq      uint64
}

// Stats counts what the network did.
type Stats struct{ Sent, Dropped, Duplicated, Reordered, Delivered uint64 }

// Network is a seeded lossy network. Not safe for concurrent use.
type Network struct {
	rng   *rand.Rand
	f     Faults
	q     pq
	seq   uint64
	stats Stats
}

// New returns a network whose faults are drawn from seed.
func New(seed uint64, f Faults) *Network {
	return &Network{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), f: f}
}

// Stats returns the counters.
func (n *Network) Stats() Stats { return n.stats }

// Send submits a datagram at virtual time now; b is copied.
func (n *Network) Send(now int64, from, to netip.AddrPort, b []byte) {
	n.stats.Sent++
	if n.rng.Float64() < n.f.Loss {
		n.stats.Dropped++
		return
	}
	copies := 1
	if n.rng.Float64() < n.f.Duplicate {
		copies = 2
		n.stats.Duplicated++
	}
	for i := 0; i < copies; i++ {
		d := n.f.MinDelay
		if n.f.MaxDelay > n.f.MinDelay {
			d += n.rng.Int64N(n.f.MaxDelay - n.f.MinDelay + 1)
		}
		if n.f.ReorderDelay > 0 && n.rng.Float64() < n.f.Reorder {
			d += n.rng.Int64N(n.f.ReorderDelay + 1)
			n.stats.Reordered++
		}
		n.seq++
		heap.Push(&n.q, &Packet{At: now + d, From: from, To: to, Data: append([]byte(nil), b...), seq: n.seq})
	}
}

// NextAt returns the delivery time of the next datagram, if any.
func (n *Network) NextAt() (int64, bool) {
	if len(n.q) == 0 {
		return 0, false
	}
	return n.q[0].At, true
}

// Deliver hands every datagram due at or before now to fn, in delivery
// order, and returns how many it delivered.
func (n *Network) Deliver(now int64, fn func(p *Packet)) int {
	k := 0
	for len(n.q) > 0 && n.q[0].At <= now {
		p := heap.Pop(&n.q).(*Packet)
		n.stats.Delivered++
		fn(p)
		k++
	}
	return k
}

// InFlight returns the number of datagrams not yet delivered.
func (n *Network) InFlight() int { return len(n.q) }

type pq []*Packet

func (q pq) Len() int { return len(q) }
func (q pq) Less(i, j int) bool {
	if q[i].At != q[j].At {
		return q[i].At < q[j].At
	}
	return q[i].seq < q[j].seq
}
func (q pq) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pq) Push(x any)   { *q = append(*q, x.(*Packet)) }
func (q *pq) Pop() any {
	old := *q
	p := old[len(old)-1]
	*q = old[:len(old)-1]
	return p
}
