package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/steadfast-pods/steadfast/codec"
	"github.com/steadfast-pods/steadfast/nodeid"
)

// Requests between nodes (snapshot pushes and gathers) and their replies.
//
// # Who is trusted
//
// A request names its sender by memberlist name. It is served only if that
// name is a member this node knows (alive, with valid metadata), and the
// reply goes to that member's advertised gossip address, never to an
// address the request names: a request cannot make a node connect anywhere
// else. A request from a name not (yet) known waits up to parkTimeout for
// membership to learn it (a starting node gathers before gossip reached
// everyone), then is dropped and counted (Stats.NotMember).
//
// Epochs come only from membership metadata: a push must carry the
// sender's own node id at the sender's current epoch (a holder never takes
// a snapshot "for" another node), and nothing in a message raises the
// epoch tracker. A gather reads only the requesting member's own node id.
//
// With a cluster key, membership and every message are authenticated by
// memberlist (AES-GCM with the key): only key holders are members or can
// send. Without a key, anyone who reaches the gossip port can join as any
// node id with any epoch, and can claim a member's name in a request (see
// the package documentation, "Security").

// Internal limits of the request path.
const (
	inboxDepth      = 64              // queued requests
	maxReplySenders = 8               // replies being sent at once
	maxParked       = 32              // requests waiting for their sender to become known
	parkTimeout     = 2 * time.Second // how long such a request waits
	parkPoll        = 20 * time.Millisecond
)

func (c *Cluster) replyTo() replyTo { return replyTo{name: c.name, addr: c.LocalAddr()} }

// request sends a request built with a fresh id to n over the reliable
// path and waits for the reply with that id.
func (c *Cluster) request(ctx context.Context, n *node, build func(req uint64) []byte) ([]byte, error) {
	ch := make(chan []byte, 1)
	c.reqMu.Lock()
	c.nextReq++
	req := c.nextReq
	c.waiting[req] = ch
	c.reqMu.Unlock()
	defer func() {
		c.reqMu.Lock()
		delete(c.waiting, req)
		c.reqMu.Unlock()
	}()
	msg := build(req)
	if err := c.ml.SendReliable(&memberlist.Node{Name: n.name, Addr: n.ip, Port: n.port}, msg); err != nil {
		return nil, err
	}
	c.st.bytesSent.Add(uint64(len(msg)))
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx) // errPeerGone when Save gave up on the peer
	case <-c.done:
		return nil, ErrClosed
	}
}

// reqID reads the request id of a reply without decoding the rest.
func reqID(b []byte) (uint64, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, n := binary.Uvarint(b[3:])
	return v, n > 0
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
		c.logLimited("bad_message", "cluster: dropping message", "err", err, "bytes", len(b))
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
		c.logLimited("bad_message", "cluster: dropping message of unknown type", "type", t)
	}
}

// parked is a request whose sender was not a known member when it came.
type parked struct {
	raw   []byte
	until time.Time
}

// worker serves inbound requests one at a time. A request from a sender
// not known yet is parked (at most maxParked, each up to parkTimeout) and
// retried every parkPoll.
func (c *Cluster) worker() {
	var waiting []parked
	poll := time.NewTicker(parkPoll)
	defer poll.Stop()
	release := func(b []byte) { c.st.inboxBytes.Add(-int64(len(b))) }
	defer func() {
		for _, p := range waiting {
			release(p.raw)
		}
	}()
	for {
		var pollC <-chan time.Time
		if len(waiting) > 0 {
			pollC = poll.C
		}
		select {
		case <-c.done:
			return
		case b := <-c.inbox:
			if c.serve(b) {
				release(b)
				continue
			}
			if len(waiting) >= maxParked {
				c.dropNotMember(waiting[0].raw)
				release(waiting[0].raw)
				waiting = waiting[1:]
			}
			waiting = append(waiting, parked{raw: b, until: time.Now().Add(parkTimeout)})
		case now := <-pollC:
			keep := waiting[:0]
			for _, p := range waiting {
				switch {
				case c.serve(p.raw):
					release(p.raw)
				case now.After(p.until):
					c.dropNotMember(p.raw)
					release(p.raw)
				default:
					keep = append(keep, p)
				}
			}
			clear(waiting[len(keep):])
			waiting = keep
		}
	}
}

func (c *Cluster) dropNotMember(b []byte) {
	c.st.notMember.Add(1)
	name := ""
	if d := newDec(b); d.err == nil {
		d.uint()
		name = d.str(maxName)
	}
	c.logLimited("not_member", "cluster: dropping a request from a non-member", "from", name)
}

// sender returns a copy of the known member called name, or nil.
func (c *Cluster) sender(name string) *node {
	if name == c.name {
		return nil // never from ourselves: a forgery
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[name]
	if n == nil || !n.valid {
		return nil
	}
	cp := *n
	return &cp
}

// serve handles one request and reports false when its sender is not a
// known member (the caller parks or drops it).
func (c *Cluster) serve(b []byte) bool {
	t, _ := msgType(b)
	switch t {
	case msgPush:
		m, err := decodePush(b, c.cfg.MaxSnapshotBytes)
		from := c.sender(m.from.name)
		if err != nil {
			reason := rejectReason(err)
			c.st.reject(reason)
			c.logLimited("push_"+reason, "cluster: rejecting snapshot push", "reason", reason, "err", oneLine(err))
			if from != nil && errors.Is(err, errTooBig) {
				c.reply(from, (&pushAck{req: m.req, status: ackRejected, reason: reason}).encode())
			}
			return true
		}
		if from == nil {
			return false
		}
		c.handlePush(m, from)
	case msgGather:
		m, err := decodeGather(b)
		if err != nil {
			c.st.badMessages.Add(1)
			c.logLimited("bad_gather", "cluster: dropping gather request", "err", err)
			return true
		}
		from := c.sender(m.from.name)
		if from == nil {
			return false
		}
		c.handleGather(m, from)
	}
	return true
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

// handlePush stores a replica pushed by its owner, from.
func (c *Cluster) handlePush(m pushMsg, from *node) {
	ack := pushAck{req: m.req, status: ackRejected}
	defer func() { c.reply(from, ack.encode()) }()
	rej := func(reason string, err error) {
		ack.reason = reason
		c.st.reject(reason)
		c.logLimited("push_"+reason, "cluster: rejecting snapshot push", "from", from.name, "snapshot_of", m.nodeID,
			"epoch", m.epoch, "reason", reason, "err", oneLine(err))
	}
	snap, err := codec.DecodeSnapshot(m.snapshot, c.cfg.MaxSnapshotBytes)
	if err != nil {
		rej(rejectReason(err), err)
		return
	}
	if err := nodeid.Validate(snap.NodeID); err != nil {
		rej("bad_id", err)
		return
	}
	if snap.NodeID != m.nodeID || snap.Epoch != m.epoch || snap.NodeID == c.cfg.NodeID {
		rej("mismatch", fmt.Errorf("snapshot of %s/%d in a push for %s/%d", snap.NodeID, snap.Epoch, m.nodeID, m.epoch))
		return
	}
	owner := from.name
	if snap.NodeID != from.meta.nodeID {
		// A relay: a holder re-replicating the replica of a node that has
		// no live incarnation (see relay). It never carries an epoch above
		// what membership announced for that id (when this node saw one),
		// and never replaces a newer replica.
		switch h := c.epochs.Highest(snap.NodeID); {
		case c.liveID(snap.NodeID):
			rej("not_owner", fmt.Errorf("snapshot of %s pushed by %s while %s is live", snap.NodeID, from.name, snap.NodeID))
			return
		case !c.inView(from.name):
			rej("fenced", fmt.Errorf("relay from %s, not a live member", from.name))
			return
		case h > 0 && snap.Epoch > h:
			rej("epoch", fmt.Errorf("relayed epoch %d above the highest announced %d", snap.Epoch, h))
			return
		}
		owner = "" // not the owner's push: never replaces a rival incarnation's replica
	} else {
		if h := c.epochs.Highest(snap.NodeID); from.meta.epoch == 0 || snap.Epoch < h {
			rej("fenced", fmt.Errorf("epoch %d is below %d", snap.Epoch, h))
			return
		}
		if !c.inView(from.name) {
			// Same epoch as the live incarnation but lost to it on the name
			// (two incarnations that chose one epoch apart, then merged).
			rej("fenced", fmt.Errorf("%s is not the live incarnation of %s", from.name, snap.NodeID))
			return
		}
		if snap.Epoch != from.meta.epoch {
			rej("epoch", fmt.Errorf("snapshot epoch %d, sender's epoch %d", snap.Epoch, from.meta.epoch))
			return
		}
	}
	if err := c.validSnapshot(snap); err != nil {
		rej("invalid", err)
		return
	}
	h, stale, err := c.store.putReplica(snap, m.snapshot, owner)
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

// handleGather answers a member asking what this node knows of its own
// node id. A gather for another node id is refused and counted: no member
// reads another's snapshot.
func (c *Cluster) handleGather(m gatherMsg, from *node) {
	if m.nodeID != from.meta.nodeID {
		c.st.gatherRefused.Add(1)
		c.logLimited("gather_other", "cluster: refusing a gather for another node id", "from", from.name, "asked_for", m.nodeID)
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
	c.reply(from, rep.encode())
}

// reply sends msg to the member to (its advertised gossip address) from a
// tracked goroutine (at most maxReplySenders at once), so the worker never
// waits on a TCP connect.
func (c *Cluster) reply(to *node, msg []byte) {
	select {
	case c.sends <- struct{}{}:
	case <-c.done:
		return
	}
	ok := c.goTracked(func() {
		defer func() { <-c.sends }()
		if err := c.ml.SendReliable(&memberlist.Node{Name: to.name, Addr: to.ip, Port: to.port}, msg); err != nil {
			c.log.Debug("cluster: reply failed", "to", to.name, "err", oneLine(err))
			return
		}
		c.st.bytesSent.Add(uint64(len(msg)))
	})
	if !ok {
		<-c.sends
	}
}
