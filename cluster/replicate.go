package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
)

// errPeerGone fails a push whose peer left the live view (declared dead,
// left, fenced, or superseded by a higher epoch of its node id) before it
// acknowledged. Save wraps it in its ErrNoReplica error.
var errPeerGone = errors.New("cluster: peer left the live view before acknowledging")

// inView reports whether the incarnation name is in the live view.
func (c *Cluster) inView(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.view[name]
	return ok
}

// Save writes snap to the data dir and pushes it to up to Replicas live
// peers. It returns once the snapshot is written locally and MinAcks peers
// (default 1; fewer if fewer were live) have acknowledged that they
// persisted it, or, when there is no live peer and Config.DurableAlone is
// set, once it is written locally. Pushes to further peers continue in the
// background. Calls should not overlap; if they do, a peer holding a newer
// version of the same epoch counts as an acknowledgement of the older.
//
// A push fails at once when its peer leaves the live view (declared dead,
// left, fenced, or superseded by a higher epoch of its node id), without
// waiting for ReplicaTimeout. While fewer than MinAcks peers have
// acknowledged, every failed push (that one or any other) is replaced by a
// push to the next live peer in rendezvous order that this Save has not
// pushed to yet, keeping up to Replicas pushes in flight. When no push is
// left and no untried live peer remains, Save returns: durable if at least
// one peer acknowledged, ErrNoReplica otherwise. Save also stops as soon as
// this incarnation is fenced.
//
// snap must carry this node's id and the epoch chosen by Start, and must
// not be older than the last saved one. Errors: ErrNotStarted, ErrFenced
// (wrapped), ErrSnapshot, codec.ErrTooLarge, ErrNoReplica (wrapped with
// each peer's failure; the local write happened), ctx.Err(), ErrClosed.
func (c *Cluster) Save(ctx context.Context, snap *codec.Snapshot) (Durable, error) {
	t0 := time.Now()
	c.mu.Lock()
	epoch, fenced := c.epoch, c.fencedErr
	c.mu.Unlock()
	switch {
	case c.isClosed():
		return Durable{}, ErrClosed
	case fenced != nil:
		return Durable{}, fenced
	case epoch == 0:
		return Durable{}, ErrNotStarted
	case snap == nil || snap.NodeID != c.cfg.NodeID || snap.Epoch != epoch:
		return Durable{}, fmt.Errorf("%w: want node id %q epoch %d", ErrSnapshot, c.cfg.NodeID, epoch)
	}
	raw, err := codec.EncodeSnapshot(snap)
	if err != nil {
		return Durable{}, fmt.Errorf("cluster: encode snapshot: %w", err)
	}
	if len(raw) > c.cfg.MaxSnapshotBytes {
		return Durable{}, fmt.Errorf("cluster: %w: snapshot of %d bytes exceeds %d", codec.ErrTooLarge, len(raw), c.cfg.MaxSnapshotBytes)
	}
	if err := c.store.saveOwn(snap, raw); err != nil {
		return Durable{}, err
	}
	c.st.saved.Add(1)
	defer func() {
		c.st.lastSave.Store(int64(time.Since(t0)))
		c.st.lastSaveBytes.Store(int64(len(raw)))
	}()

	d := Durable{Epoch: snap.Epoch, Version: snap.Version}
	// Take the view's change channel before ranking the peers: a peer that
	// leaves after being chosen always wakes this Save up.
	_, changed := c.viewChanged()
	byName := make(map[string]*node)
	current := func() []peerRef {
		ranked := c.rankedPeers()
		refs := make([]peerRef, len(ranked))
		for i, n := range ranked {
			byName[n.name] = n
			refs[i] = peerRef{name: n.name, nodeID: n.meta.nodeID}
		}
		return refs
	}
	r, first := newRound(c.cfg.Replicas, c.cfg.MinAcks, current())
	if len(first) == 0 {
		if c.cfg.DurableAlone {
			d.Alone = true
			return d, nil
		}
		return d, fmt.Errorf("%w: no live peer", ErrNoReplica)
	}

	type result struct {
		name string
		err  error
	}
	results := make(chan result)
	saveDone := make(chan struct{})
	defer close(saveDone) // pushes still running report to nobody
	cancels := make(map[string]context.CancelCauseFunc)
	var launch func(ps []peerRef, replacing bool)
	launch = func(ps []peerRef, replacing bool) {
		for _, p := range ps {
			n := byName[p.name]
			if replacing {
				c.log.Info("cluster: pushing the snapshot to another peer", "peer", p.name,
					"version", snap.Version, "acks", len(r.acked), "failed", len(r.errs))
			}
			pctx, cancel := context.WithCancelCause(context.Background())
			cancels[p.name] = cancel
			ok := c.goTracked(func() {
				tctx, tcancel := context.WithTimeout(pctx, c.cfg.ReplicaTimeout)
				err := c.push(tctx, n, snap, raw)
				tcancel()
				cancel(nil)
				select {
				case results <- result{p.name, err}:
				case <-saveDone:
				}
			})
			if !ok {
				cancel(nil)
				launch(r.Failed(p.name, ErrClosed, current()), true)
			}
		}
	}
	launch(first, false)
	for !r.Done() {
		select {
		case res := <-results:
			if res.err == nil {
				r.Acked(res.name)
				continue
			}
			launch(r.Failed(res.name, res.err, current()), true)
		case <-changed:
			_, changed = c.viewChanged()
			if err := c.Err(); err != nil {
				return d, err
			}
			gone, start := r.ViewChanged(current())
			for _, name := range gone {
				cancels[name](errPeerGone) // its goroutine stops waiting for the ack
				c.log.Info("cluster: replica peer left the live view during a push", "peer", name,
					"version", snap.Version, "after_seconds", time.Since(t0).Seconds())
			}
			launch(start, true)
		case <-ctx.Done():
			return d, ctx.Err()
		case <-c.done:
			return d, ErrClosed
		}
	}
	// Fewer than MinAcks is still durable when every live candidate
	// answered (see round).
	d.Replicas, err = r.Result()
	return d, err
}

// push sends one snapshot to one peer and waits for its acknowledgement.
func (c *Cluster) push(ctx context.Context, p *node, snap *codec.Snapshot, raw []byte) error {
	c.st.sent.Add(1)
	t0 := time.Now()
	rep, err := c.request(ctx, p, func(req uint64) []byte {
		return (&pushMsg{req: req, from: c.replyTo(), nodeID: snap.NodeID, epoch: snap.Epoch, snapshot: raw}).encode()
	})
	if err != nil {
		return err
	}
	ack, err := decodePushAck(rep)
	if err != nil {
		return err
	}
	// A peer that already holds a newer version of the same epoch (a later
	// Save overtook this one) makes this state durable too: snapshots of one
	// incarnation only grow.
	superseded := ack.reason == "stale" && ack.heldEpoch == snap.Epoch && ack.heldVersion >= snap.Version
	if ack.status != ackOK && !superseded {
		return fmt.Errorf("rejected: %s (peer holds %d/%d)", ack.reason, ack.heldEpoch, ack.heldVersion)
	}
	c.st.acked.Add(1)
	c.st.rtt.observe(time.Since(t0))
	if snap.NodeID == c.cfg.NodeID {
		c.noteHolder(snap, p.name)
	}
	return nil
}

// rankedPeers returns the live peers ordered by rendezvous hashing on
// (this node id, peer node id): Save pushes to the first Replicas of them,
// so that a node keeps its replicas on the same peers while membership is
// stable, and falls back to the next ones.
func (c *Cluster) rankedPeers() []*node { return c.rankedFor(c.cfg.NodeID, false) }

// rankedFor returns the live members other than owner's incarnations in
// rendezvous order for owner (this node included if withSelf).
func (c *Cluster) rankedFor(owner string, withSelf bool) []*node {
	c.mu.Lock()
	var peers []*node
	for name, m := range c.view {
		if m.Self && !withSelf || m.NodeID == owner {
			continue
		}
		if n := c.nodes[name]; n != nil {
			cp := *n
			peers = append(peers, &cp)
		}
	}
	c.mu.Unlock()
	score := func(n *node) uint64 {
		h := fnv.New64a()
		h.Write([]byte(owner))
		h.Write([]byte{0})
		h.Write([]byte(n.meta.nodeID))
		return h.Sum64()
	}
	slices.SortFunc(peers, func(a, b *node) int {
		sa, sb := score(a), score(b)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	return peers
}
