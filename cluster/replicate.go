package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
)

// errPeerGone fails a push whose peer left the live view (declared dead,
// left, fenced, or superseded by a higher epoch of its node id) before it
// acknowledged. Save wraps it in its ErrNoReplica error.
var errPeerGone = errors.New("cluster: peer left the live view before acknowledging")

// viewWatch is a wake-up (capacity 1) that recompute sends on after every
// change of the live view; the receiver reads the view afresh.
type viewWatch struct{ ch chan struct{} }

// watchView registers a wake-up for changes of the live view; call the
// returned function to unregister it.
func (c *Cluster) watchView() (<-chan struct{}, func()) {
	w := &viewWatch{ch: make(chan struct{}, 1)}
	c.mu.Lock()
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	return w.ch, func() {
		c.mu.Lock()
		delete(c.watchers, w)
		c.mu.Unlock()
	}
}

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
	// Watch before choosing the peers: a peer that leaves after being
	// chosen always wakes this Save up.
	changes, unwatch := c.watchView()
	defer unwatch()
	peers := c.rankedPeers(nil)
	if len(peers) > c.cfg.Replicas {
		peers = peers[:c.cfg.Replicas]
	}
	if len(peers) == 0 {
		if c.cfg.DurableAlone {
			d.Alone = true
			return d, nil
		}
		return d, fmt.Errorf("%w: no live peer", ErrNoReplica)
	}
	need := min(c.cfg.MinAcks, len(peers))

	type attempt struct {
		peer   *node
		cancel context.CancelCauseFunc
		done   bool
	}
	type result struct {
		i   int // index in attempts
		err error
	}
	var (
		attempts []*attempt
		tried    = make(map[string]bool) // incarnation names pushed to
		pending  int
		errs     []error
		results  = make(chan result)
		saveDone = make(chan struct{})
	)
	defer close(saveDone) // pushes still running report to nobody
	start := func(p *node) {
		i := len(attempts)
		pctx, cancel := context.WithCancelCause(context.Background())
		a := &attempt{peer: p, cancel: cancel}
		attempts = append(attempts, a)
		tried[p.name] = true
		pending++
		ok := c.goTracked(func() {
			tctx, tcancel := context.WithTimeout(pctx, c.cfg.ReplicaTimeout)
			err := c.push(tctx, p, snap, raw)
			tcancel()
			cancel(nil)
			select {
			case results <- result{i, err}:
			case <-saveDone:
			}
		})
		if !ok {
			cancel(nil)
			a.done = true
			pending--
			errs = append(errs, fmt.Errorf("%s: %w", p.meta.nodeID, ErrClosed))
		}
	}
	fail := func(a *attempt, err error) {
		a.done = true
		pending--
		errs = append(errs, fmt.Errorf("%s: %w", a.peer.meta.nodeID, err))
	}
	// refill replaces failed pushes while acknowledgements are missing.
	refill := func() {
		if len(d.Replicas) >= need || pending+len(d.Replicas) >= c.cfg.Replicas {
			return
		}
		for _, p := range c.rankedPeers(tried) {
			if pending+len(d.Replicas) >= c.cfg.Replicas {
				return
			}
			c.log.Info("cluster: pushing the snapshot to another peer", "peer", p.name,
				"version", snap.Version, "acks", len(d.Replicas), "failed", len(errs))
			start(p)
		}
	}
	for _, p := range peers {
		start(p)
	}
	refill() // a push that could not start
	for pending > 0 {
		select {
		case r := <-results:
			a := attempts[r.i]
			if a.done {
				continue // already failed when its peer left the view
			}
			if r.err == nil {
				a.done = true
				pending--
				d.Replicas = append(d.Replicas, a.peer.meta.nodeID)
				if len(d.Replicas) >= need {
					return d, nil
				}
				continue
			}
			fail(a, r.err)
			refill()
		case <-changes:
			if err := c.Err(); err != nil {
				return d, err
			}
			gone := false
			for _, a := range attempts {
				if !a.done && !c.inView(a.peer.name) {
					a.cancel(errPeerGone) // its goroutine stops waiting for the ack
					fail(a, errPeerGone)
					gone = true
					c.log.Info("cluster: replica peer left the live view during a push", "peer", a.peer.name,
						"version", snap.Version, "after_seconds", time.Since(t0).Seconds())
				}
			}
			if gone {
				refill()
			}
		case <-ctx.Done():
			return d, ctx.Err()
		case <-c.done:
			return d, ErrClosed
		}
	}
	if len(d.Replicas) > 0 {
		return d, nil // fewer than MinAcks, but every live candidate answered
	}
	return d, fmt.Errorf("%w: %w", ErrNoReplica, errors.Join(errs...))
}

// push sends one snapshot to one peer and waits for its acknowledgement.
func (c *Cluster) push(ctx context.Context, p *node, snap *codec.Snapshot, raw []byte) error {
	c.st.sent.Add(1)
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
	return nil
}

// rankedPeers returns the live peers not in skip (incarnation names),
// ordered by rendezvous hashing on (this node id, peer node id): Save
// pushes to the first Replicas of them, so that a node keeps its replicas
// on the same peers while membership is stable, and falls back to the next
// ones.
func (c *Cluster) rankedPeers(skip map[string]bool) []*node {
	c.mu.Lock()
	var peers []*node
	for name, m := range c.view {
		if m.Self || skip[name] {
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
		h.Write([]byte(c.cfg.NodeID))
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
		return 0
	})
	return peers
}
