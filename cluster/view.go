package cluster

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/steadfast-pods/steadfast/codec"
)

// delegate receives memberlist's callbacks. They run on memberlist's
// goroutines (with its node lock held for the event callbacks) and must not
// block: they take c.mu briefly and hand inbound requests to the worker
// through a bounded queue.
type delegate struct{ c *Cluster }

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
)

func (d *delegate) NodeMeta(limit int) []byte {
	d.c.metaMu.Lock()
	defer d.c.metaMu.Unlock()
	if len(d.c.meta) > limit { // cannot happen: validate bounds every field
		return nil
	}
	return append([]byte(nil), d.c.meta...)
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.c.log.Warn("cluster: memberlist name conflict", "name", existing.Name,
		"existing", existing.Address(), "other", other.Address())
}

// NotifyMsg routes replies to their waiting request and queues requests for
// the worker; a full queue drops the request (counted), and the requester
// times out.
func (d *delegate) NotifyMsg(b []byte) {
	c := d.c
	if c.isClosed() {
		return
	}
	c.st.messagesIn.Add(1)
	c.st.bytesReceived.Add(uint64(len(b)))
	t, err := msgType(b)
	if err != nil {
		c.st.badMessages.Add(1)
		c.log.Warn("cluster: dropping message", "err", err, "bytes", len(b))
		return
	}
	switch t {
	case msgPushAck, msgGatherRep:
		id, ok := reqID(b)
		if !ok {
			c.st.badMessages.Add(1)
			return
		}
		c.reqMu.Lock()
		ch := c.waiting[id]
		c.reqMu.Unlock()
		if ch == nil {
			return // late reply
		}
		select {
		case ch <- append([]byte(nil), b...):
		default:
		}
	case msgPush, msgGather:
		limit := int64(4*c.cfg.MaxSnapshotBytes + 1<<20)
		if c.st.inboxBytes.Add(int64(len(b))) > limit {
			c.st.inboxBytes.Add(-int64(len(b)))
			c.st.messagesDropped.Add(1)
			return
		}
		select {
		case c.inbox <- append([]byte(nil), b...):
		default:
			c.st.inboxBytes.Add(-int64(len(b)))
			c.st.messagesDropped.Add(1)
		}
	default:
		c.st.badMessages.Add(1)
		c.log.Warn("cluster: dropping message of unknown type", "type", t)
	}
}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.c.observe(n, true) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.c.observe(n, true) }
func (d *delegate) NotifyLeave(n *memberlist.Node)  { d.c.observe(n, false) }

// observe records a memberlist node's state and recomputes the view.
func (c *Cluster) observe(mn *memberlist.Node, alive bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !alive {
		delete(c.nodes, mn.Name)
		c.recompute()
		return
	}
	n := &node{name: mn.Name, ip: append(net.IP(nil), mn.Addr...), port: mn.Port}
	if old := c.nodes[mn.Name]; old != nil {
		n.fencedReported = old.fencedReported
	}
	m, err := decodeMeta(mn.Meta)
	if err != nil {
		if old := c.nodes[mn.Name]; old == nil || old.valid {
			c.st.invalidMeta.Add(1)
			c.log.Warn("cluster: ignoring node with bad metadata", "name", mn.Name, "err", err)
		}
	} else {
		n.meta, n.valid = m, true
		if m.epoch > 0 {
			c.epochs.Observe(m.nodeID, m.epoch)
		}
	}
	c.nodes[mn.Name] = n
	c.recompute()
}

// higher orders incarnations of one node id: epoch, then name.
func higher(a, b *node) bool {
	if a.meta.epoch != b.meta.epoch {
		return a.meta.epoch > b.meta.epoch
	}
	return a.name > b.name
}

func (c *Cluster) member(n *node) Member {
	return Member{
		NodeID:       n.meta.nodeID,
		Epoch:        n.meta.epoch,
		Role:         n.meta.role,
		DataEndpoint: n.meta.dataEndpoint,
		MetricsAddr:  n.meta.metricsAddr,
		Name:         n.name,
		GossipAddr:   n.addr(),
		Self:         n.name == c.name,
	}
}

// recompute rebuilds the live view from c.nodes, emits events for the
// difference, and fences this node if a higher epoch of its id is live.
// c.mu must be held.
func (c *Cluster) recompute() {
	best := make(map[string]*node)
	for _, n := range c.nodes {
		if !n.valid || n.meta.epoch == 0 {
			continue
		}
		if b := best[n.meta.nodeID]; b == nil || higher(n, b) {
			best[n.meta.nodeID] = n
		}
	}
	view := make(map[string]Member, len(best))
	for id, n := range best {
		if n.meta.epoch < c.epochs.Highest(id) {
			continue
		}
		view[n.name] = c.member(n)
	}
	now := time.Now()
	changed := false
	for name, m := range view {
		if old, ok := c.view[name]; !ok {
			c.emit(Event{Kind: EventJoined, Member: m, At: now})
			changed = true
		} else if old != m {
			c.emit(Event{Kind: EventUpdated, Member: m, At: now})
			changed = true
		}
	}
	for name, m := range c.view {
		if _, ok := view[name]; ok {
			continue
		}
		changed = true
		if n := c.nodes[name]; n != nil {
			n.fencedReported = true
			c.st.fencedMembers.Add(1)
			c.emit(Event{Kind: EventFenced, Member: c.member(n), At: now})
		} else {
			c.emit(Event{Kind: EventLeft, Member: m, At: now})
		}
	}
	for _, n := range c.nodes {
		if _, ok := view[n.name]; ok || !n.valid || n.meta.epoch == 0 || n.fencedReported {
			continue
		}
		n.fencedReported = true
		changed = true
		c.st.fencedMembers.Add(1)
		c.emit(Event{Kind: EventFenced, Member: c.member(n), At: now})
	}
	c.view = view
	if c.epoch > 0 && c.fencedErr == nil {
		w := best[c.cfg.NodeID]
		switch {
		case w != nil && w.name != c.name && higher(w, &node{name: c.name, meta: meta{epoch: c.epoch}}):
			c.fence(fmt.Errorf("%w: %s has epoch %d, this node %s has %d", ErrFenced, w.name, w.meta.epoch, c.name, c.epoch))
			changed = true
		case c.epochs.Highest(c.cfg.NodeID) > c.epoch:
			c.fence(fmt.Errorf("%w: epoch %d seen, this node %s has %d", ErrFenced, c.epochs.Highest(c.cfg.NodeID), c.name, c.epoch))
			changed = true
		}
	}
	if changed {
		select {
		case c.wake <- struct{}{}:
		default:
		}
		for w := range c.watchers {
			select {
			case w.ch <- struct{}{}:
			default:
			}
		}
	}
}

// fence marks this incarnation fenced. c.mu must be held.
func (c *Cluster) fence(err error) {
	c.fencedErr = err
	close(c.fenced)
	c.log.Error("cluster: this incarnation is fenced and must stop", "err", err)
}

// emit queues an event, replacing a pending one for the same incarnation.
// c.mu must be held.
func (c *Cluster) emit(e Event) {
	c.st.events.Add(1)
	for i, p := range c.pending {
		if p.Member.Name == e.Member.Name {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			break
		}
	}
	if len(c.pending) >= maxPendingEvents {
		// Only the history is lost, never state: Members() is current.
		c.pending = append(c.pending[:0], c.pending[1:]...)
		c.st.eventsDropped.Add(1)
	}
	c.pending = append(c.pending, e)
}

// maxPendingEvents bounds the event history kept for a pod that does not
// drain Events (one that follows Members() only).
const maxPendingEvents = 1024

// worker serves inbound requests one at a time.
func (c *Cluster) worker() {
	for {
		select {
		case <-c.done:
			return
		case b := <-c.inbox:
			c.st.inboxBytes.Add(-int64(len(b)))
			t, _ := msgType(b)
			switch t {
			case msgPush:
				c.handlePush(b)
			case msgGather:
				c.handleGather(b)
			}
		}
	}
}

// rejectReason maps a decoding error to a counter label.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, errTooBig), errors.Is(err, codec.ErrTooLarge):
		return "too_large"
	case errors.Is(err, codec.ErrChecksum):
		return "checksum"
	}
	return "malformed"
}

func (c *Cluster) handlePush(b []byte) {
	m, err := decodePush(b, c.cfg.MaxSnapshotBytes)
	if err != nil {
		// The reply address may be unreadable: count and drop; the sender
		// times out.
		reason := rejectReason(err)
		c.st.reject(reason)
		c.log.Warn("cluster: rejecting snapshot push", "reason", reason, "err", err)
		if m.from.addr != "" && errors.Is(err, errTooBig) {
			c.reply(m.from, (&pushAck{req: m.req, status: ackRejected, reason: reason}).encode())
		}
		return
	}
	ack := pushAck{req: m.req, status: ackRejected}
	defer func() { c.reply(m.from, ack.encode()) }()
	rej := func(reason string, err error) {
		ack.reason = reason
		c.st.reject(reason)
		c.log.Warn("cluster: rejecting snapshot push", "from", m.from.name, "node_id", m.nodeID,
			"epoch", m.epoch, "reason", reason, "err", err)
	}
	snap, err := codec.DecodeSnapshot(m.snapshot, c.cfg.MaxSnapshotBytes)
	if err != nil {
		rej(rejectReason(err), err)
		return
	}
	if snap.NodeID != m.nodeID || snap.Epoch != m.epoch || snap.NodeID == c.cfg.NodeID {
		if snap.NodeID == c.cfg.NodeID && snap.Epoch > 0 {
			c.epochs.Observe(snap.NodeID, snap.Epoch)
			c.mu.Lock()
			c.recompute()
			c.mu.Unlock()
		}
		rej("mismatch", fmt.Errorf("snapshot of %s/%d in a push for %s/%d", snap.NodeID, snap.Epoch, m.nodeID, m.epoch))
		return
	}
	if !c.epochs.Observe(snap.NodeID, snap.Epoch) {
		rej("fenced", fmt.Errorf("epoch %d is below %d", snap.Epoch, c.epochs.Highest(snap.NodeID)))
		return
	}
	h, stale, err := c.store.putReplica(snap, m.snapshot)
	if h.snap != nil {
		ack.heldEpoch, ack.heldVersion = h.snap.Epoch, h.snap.Version
	}
	switch {
	case err != nil:
		rej("io", err)
	case stale:
		rej("stale", fmt.Errorf("holding a newer snapshot"))
	default:
		ack.status = ackOK
		c.st.received.Add(1)
	}
}

func (c *Cluster) handleGather(b []byte) {
	m, err := decodeGather(b)
	if err != nil {
		c.st.badMessages.Add(1)
		c.log.Warn("cluster: dropping gather request", "err", err)
		return
	}
	rep := gatherRep{req: m.req, highest: c.epochs.Highest(m.nodeID)}
	h := c.store.replica(m.nodeID)
	if m.nodeID == c.cfg.NodeID {
		// An incarnation of this very id is starting: it may be our
		// replacement. Offer our own snapshot; its higher epoch will fence
		// us once it announces it.
		h = c.store.ownSnapshot()
		rep.highest = max(rep.highest, c.Epoch())
	}
	if h.snap != nil {
		rep.highest = max(rep.highest, h.snap.Epoch)
		rep.has, rep.heldEpoch, rep.heldVersion = true, h.snap.Epoch, h.snap.Version
		if m.want {
			rep.snapshot = h.raw
		}
	}
	c.reply(m.from, rep.encode())
}

// reply sends msg to a requester from a tracked goroutine (at most
// maxReplySenders at once), so the worker never waits on a TCP connect.
func (c *Cluster) reply(to replyTo, msg []byte) {
	host, port, err := net.SplitHostPort(to.addr)
	ip := net.ParseIP(host)
	p, perr := parsePort(port)
	if err != nil || ip == nil || perr != nil {
		c.st.badMessages.Add(1)
		c.log.Warn("cluster: bad reply address", "addr", to.addr)
		return
	}
	select {
	case c.sends <- struct{}{}:
	case <-c.done:
		return
	}
	ok := c.goTracked(func() {
		defer func() { <-c.sends }()
		if err := c.ml.SendReliable(&memberlist.Node{Name: to.name, Addr: ip, Port: p}, msg); err != nil {
			c.log.Debug("cluster: reply failed", "to", to.name, "err", err)
			return
		}
		c.st.bytesSent.Add(uint64(len(msg)))
	})
	if !ok {
		<-c.sends
	}
}

func parsePort(s string) (uint16, error) {
	var p uint64
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			return 0, fmt.Errorf("bad port %q", s)
		}
		p = p*10 + uint64(ch-'0')
	}
	if p == 0 || p > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(p), nil
}
