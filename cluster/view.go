package cluster

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
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
			c.log.Warn("cluster: ignoring node with bad metadata", "name", mn.Name, "err", oneLine(err))
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
		c.viewVer++
		close(c.viewCh)
		c.viewCh = make(chan struct{})
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// fence marks this incarnation fenced. c.mu must be held.
func (c *Cluster) fence(err error) {
	c.fencedErr = err
	close(c.fenced)
	c.log.Error("cluster: this incarnation is fenced and must stop", "err", oneLine(err))
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

// liveID reports whether node id has an incarnation in the live view.
func (c *Cluster) liveID(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.view {
		if m.NodeID == id {
			return true
		}
	}
	return false
}
