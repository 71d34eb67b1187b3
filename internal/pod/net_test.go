package pod

import (
	"strconv"
	"strings"
	"sync"

	"github.com/steadfast-pods/steadfast/transport"
)

// memNet is an in-memory network shared by the pods of one test: a
// publication to an endpoint delivers into the subscription bound there, in
// order; with no subscription it is not connected, and a full queue
// back-pressures. Reliable and ordered, like the transport's contract.
type memNet struct {
	mu   sync.Mutex
	subs map[string]*memSub // by endpoint/stream
}

func newMemNet() *memNet { return &memNet{subs: map[string]*memSub{}} }

func memKey(channel string, stream int32) string {
	ep, _, _ := strings.Cut(strings.TrimPrefix(channel, "aeron:udp?endpoint="), "|") // other URI parameters do not matter here
	return ep + "/" + strconv.Itoa(int(stream))
}

// node returns one pod's view of the network.
func (m *memNet) node() *memNode { return &memNode{net: m} }

type memNode struct {
	net  *memNet
	mu   sync.Mutex
	subs []*memSub
}

var _ network = (*memNode)(nil)

func (n *memNode) AddPublication(channel string, stream int32) (publication, error) {
	return &memPub{net: n.net, key: memKey(channel, stream)}, nil
}

func (n *memNode) AddSubscription(channel string, stream int32) (subscription, error) {
	s := &memSub{notify: make(chan struct{}, 1)}
	n.net.mu.Lock()
	n.net.subs[memKey(channel, stream)] = s
	n.net.mu.Unlock()
	n.mu.Lock()
	n.subs = append(n.subs, s)
	n.mu.Unlock()
	return s, nil
}

func (n *memNode) Stats() transport.DriverStats { return transport.DriverStats{} }

func (n *memNode) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.subs {
		s.close()
	}
	return nil
}

type memPub struct {
	net    *memNet
	key    string
	closed bool
}

func (p *memPub) Offer(msg []byte) (int64, error) {
	if p.closed {
		return transport.PublicationClosed, transport.ErrClosed
	}
	p.net.mu.Lock()
	s := p.net.subs[p.key]
	p.net.mu.Unlock()
	if s == nil {
		return transport.NotConnected, transport.ErrNotConnected
	}
	return s.put(msg)
}

func (p *memPub) Close() error { p.closed = true; return nil }

type memSub struct {
	mu     sync.Mutex
	q      [][]byte
	closed bool
	pos    int64
	notify chan struct{}
}

const memQueueLimit = 512

func (s *memSub) put(msg []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return transport.NotConnected, transport.ErrNotConnected
	case len(s.q) >= memQueueLimit:
		return transport.BackPressured, transport.ErrBackPressured
	}
	s.q = append(s.q, append([]byte(nil), msg...))
	s.pos += int64(len(msg))
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return s.pos, nil
}

func (s *memSub) Poll(h func([]byte, transport.Header), limit int) int {
	s.mu.Lock()
	k := min(limit, len(s.q))
	msgs := append([][]byte(nil), s.q[:k]...)
	s.q = s.q[k:]
	s.mu.Unlock()
	for _, m := range msgs {
		h(m, transport.Header{})
	}
	return k
}

func (s *memSub) Notify() <-chan struct{} { return s.notify }

func (s *memSub) close() {
	s.mu.Lock()
	s.closed = true
	s.q = nil
	s.mu.Unlock()
}
