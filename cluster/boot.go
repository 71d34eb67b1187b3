package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
	"github.com/steadfast-pods/steadfast/nodeid"
)

// Start joins the cluster, chooses this incarnation's epoch and finds the
// newest snapshot of this node id. The sequence:
//
//  1. Join through the seeds (retrying with backoff until one answers or
//     ctx ends) under the boot-unique name, with epoch 0 in the metadata:
//     peers see the node but keep it out of their live view.
//  2. Gather: ask every other node (except other incarnations of this id),
//     over the reliable path and within GatherTimeout, for the highest
//     epoch it knows for this node id and the version of the snapshot of it
//     that it holds. Start waits for every answer or the timeout: a peer
//     whose host vanished without memberlist noticing yet costs up to
//     GatherTimeout. If nodes were asked and none answered, it asks again
//     (every JoinRetry) until one does, all are declared dead, or ctx ends.
//  3. Epoch = nodeid.Next(local epoch file and local snapshot, highest
//     from peers and from the metadata seen). Persist it.
//  4. Announce: publish the epoch in the metadata (UpdateNode) and push it
//     to every known peer with a push/pull (gossip alone may miss a peer
//     for seconds), waiting up to AnnounceTimeout. Peers now list this
//     node, and fence any lower incarnation of the id at once, without
//     waiting for memberlist to declare it dead.
//  5. Fetch the newest snapshot from the peer that holds it (falling back
//     to the next newest if that fails, each within ReplicaTimeout) if it
//     is newer than the local one (local wins a tie), and keep it locally.
//     Steps 3–5 happen in the order 5, 3, 4.
//
// Start is called once. On error the Cluster should be closed.
func (c *Cluster) Start(ctx context.Context) (*Boot, error) {
	t0 := time.Now()
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return nil, fmt.Errorf("cluster: Start called twice")
	}
	c.started = true
	c.mu.Unlock()

	if err := c.join(ctx); err != nil {
		return nil, err
	}
	localEpoch, err := nodeid.LoadEpoch(c.cfg.DataDir)
	if err != nil {
		c.log.Warn("cluster: ignoring local epoch file", "err", oneLine(err))
		localEpoch = 0
	}
	own := c.store.ownSnapshot()
	best, source := own.snap, "none"
	if best != nil {
		localEpoch = max(localEpoch, best.Epoch)
		if err := c.validSnapshot(best); err != nil {
			// Kept on disk (a later version may fix the validation), but
			// never restored: a peer's replica or nothing.
			c.st.restoreRefused.Add(1)
			c.log.Warn("cluster: the application refused the local snapshot; trying the peers'",
				"epoch", best.Epoch, "version", best.Version, "err", oneLine(err))
			best = nil
		} else {
			source = "local"
		}
	}
	// With other nodes around, at least one must answer: restoring nothing
	// while a peer holds a durable snapshot would undo acknowledged work.
	// Nodes that never answer drop out once memberlist declares them dead.
	var answers []gathered
	var asked int
	for {
		answers, asked = c.gather(ctx)
		if err := ctx.Err(); err != nil {
			// Without the peers' answers the epoch could repeat one in use.
			return nil, fmt.Errorf("cluster: start: gathering epochs: %w", err)
		}
		if c.isClosed() {
			return nil, ErrClosed
		}
		if asked == 0 || len(answers) > 0 {
			break
		}
		c.log.Warn("cluster: no peer answered the gather request, retrying", "asked", asked, "retry_in_seconds", c.cfg.JoinRetry.Seconds())
		t := time.NewTimer(c.cfg.JoinRetry)
		select {
		case <-ctx.Done():
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
	}
	if len(answers) < asked {
		c.log.Warn("cluster: not every peer answered the gather request", "asked", asked, "answered", len(answers))
	}
	peerEpoch := c.epochs.Highest(c.cfg.NodeID)
	for _, g := range answers {
		peerEpoch = max(peerEpoch, g.highest, g.heldEpoch)
	}
	snap, bestRaw, from := c.fetch(ctx, answers, best)
	if snap != nil {
		best, source = snap, from
		peerEpoch = max(peerEpoch, snap.Epoch)
	}
	epoch, err := nodeid.Next(localEpoch, peerEpoch)
	if err != nil {
		return nil, fmt.Errorf("cluster: start: %w", err)
	}
	if c.cfg.epochOverride != 0 {
		epoch = c.cfg.epochOverride
	}
	if err := nodeid.SaveEpoch(c.cfg.DataDir, epoch); err != nil {
		return nil, fmt.Errorf("cluster: save epoch: %w", err)
	}
	if bestRaw != nil {
		if err := c.store.saveOwn(best, bestRaw); err != nil {
			c.log.Warn("cluster: could not keep the restored snapshot locally", "err", oneLine(err))
		}
	}

	c.mu.Lock()
	c.epoch = epoch
	c.restoreSource = source
	c.mu.Unlock()
	c.epochs.Observe(c.cfg.NodeID, epoch)
	c.announce(epoch)
	c.mu.Lock()
	c.recompute()
	c.mu.Unlock()

	if c.hasSeeds() {
		c.goTracked(c.rejoin)
	}
	c.goTracked(c.keep)

	b := &Boot{Epoch: epoch, Snapshot: best, Source: source, Asked: asked, Peers: len(answers), Took: time.Since(t0)}
	args := []any{"epoch", epoch, "source", source, "asked", asked, "answered", len(answers), "took_seconds", b.Took.Seconds()}
	if best != nil {
		args = append(args, "snapshot_epoch", best.Epoch, "snapshot_version", best.Version)
	}
	c.log.Info("cluster: started", args...)
	return b, nil
}

// announce publishes epoch in this node's metadata. memberlist gossips the
// update to only RetransmitMult × log10(N+1) random nodes, so a peer can
// miss it until the next push/pull (seconds); announce therefore also does a
// push/pull with every known peer, waiting up to AnnounceTimeout for those
// of other node ids. Other incarnations of this id are told in the
// background (a killed one may not answer until TCPTimeout); a live one
// learns from it that it is fenced.
func (c *Cluster) announce(epoch uint64) {
	c.setMeta(epoch)
	// UpdateNode applies the new metadata at once and then waits for the
	// broadcast to use up its retransmits; the push/pulls below make that
	// wait unnecessary.
	if err := c.ml.UpdateNode(time.Millisecond); err != nil {
		c.log.Debug("cluster: update broadcast still queued", "err", oneLine(err))
	}
	c.mu.Lock()
	type target struct {
		addr   string
		sameID bool
	}
	var targets []target
	for _, n := range c.nodes {
		if n.name != c.name {
			targets = append(targets, target{n.addr(), n.valid && n.meta.nodeID == c.cfg.NodeID})
		}
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, tg := range targets {
		if !tg.sameID {
			wg.Add(1)
		}
		ok := c.goTracked(func() {
			if !tg.sameID {
				defer wg.Done()
			}
			if _, err := c.ml.Join([]string{tg.addr}); err != nil {
				c.log.Debug("cluster: announce push/pull", "peer", tg.addr, "err", oneLine(err))
			}
		})
		if !ok && !tg.sameID {
			wg.Done()
		}
	}
	all := make(chan struct{})
	if !c.goTracked(func() { wg.Wait(); close(all) }) {
		return
	}
	t := time.NewTimer(c.cfg.AnnounceTimeout)
	defer t.Stop()
	select {
	case <-all:
	case <-t.C:
		c.log.Warn("cluster: some peers did not confirm the epoch announcement in time", "timeout_seconds", c.cfg.AnnounceTimeout.Seconds())
	case <-c.done:
	}
}

// gathered is one peer's answer to the gather request.
type gathered struct {
	peer                   *node
	highest                uint64 // highest epoch it knows for this id
	heldEpoch, heldVersion uint64 // the snapshot of this id it holds
	has                    bool
}

// gather asks every other node (except other incarnations of this id) what
// it knows of this node id: the highest epoch and the version of the
// snapshot it holds, not the bytes. It returns the answers that came back
// within GatherTimeout and how many nodes were asked.
func (c *Cluster) gather(ctx context.Context) ([]gathered, int) {
	c.mu.Lock()
	var targets []*node
	for _, n := range c.nodes {
		// Other incarnations of this id are skipped: their epoch is in the
		// tracker already (from their metadata), their durable snapshots
		// are on replicas, and a killed one would only hold us up until
		// GatherTimeout when its host no longer answers.
		if n.name != c.name && n.valid && n.meta.nodeID != c.cfg.NodeID {
			cp := *n
			targets = append(targets, &cp)
		}
	}
	c.mu.Unlock()
	if len(targets) == 0 {
		return nil, 0
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.GatherTimeout)
	defer cancel()
	results := make(chan *gathered, len(targets))
	for _, n := range targets {
		ok := c.goTracked(func() {
			// A peer serves only members it knows (see rpc.go); a push/pull
			// first makes it know this node now rather than after gossip
			// reached it (up to a few GossipIntervals).
			if _, err := c.ml.Join([]string{n.addr()}); err != nil {
				c.log.Debug("cluster: push/pull before gather", "peer", n.name, "err", oneLine(err))
			}
			rep, err := c.askSnapshot(ctx, n, false)
			if err != nil {
				c.log.Debug("cluster: gather", "peer", n.name, "err", oneLine(err))
				results <- nil
				return
			}
			results <- &gathered{peer: n, highest: rep.highest, heldEpoch: rep.heldEpoch, heldVersion: rep.heldVersion, has: rep.has}
		})
		if !ok {
			results <- nil
		}
	}
	var out []gathered
	for range targets {
		if g := <-results; g != nil {
			out = append(out, *g)
		}
	}
	return out, len(targets)
}

// askSnapshot sends a gather request for this node id to n.
func (c *Cluster) askSnapshot(ctx context.Context, n *node, want bool) (gatherRep, error) {
	raw, err := c.request(ctx, n, func(req uint64) []byte {
		return (&gatherMsg{req: req, from: c.replyTo(), nodeID: c.cfg.NodeID, want: want}).encode()
	})
	if err != nil {
		return gatherRep{}, err
	}
	return decodeGatherRep(raw, c.cfg.MaxSnapshotBytes)
}

// fetch downloads the snapshot from the peers that announced one newer
// than local, newest first, each within ReplicaTimeout, and returns the
// first that verifies and is at least as new as announced.
func (c *Cluster) fetch(ctx context.Context, answers []gathered, local *codec.Snapshot) (*codec.Snapshot, []byte, string) {
	var cands []gathered
	for _, g := range answers {
		if g.has && codec.Newer(&codec.Snapshot{Epoch: g.heldEpoch, Version: g.heldVersion}, local) {
			cands = append(cands, g)
		}
	}
	slices.SortFunc(cands, func(a, b gathered) int {
		x := &codec.Snapshot{Epoch: a.heldEpoch, Version: a.heldVersion}
		y := &codec.Snapshot{Epoch: b.heldEpoch, Version: b.heldVersion}
		switch {
		case codec.Newer(x, y):
			return -1
		case codec.Newer(y, x):
			return 1
		}
		return 0
	})
	for _, g := range cands {
		fctx, cancel := context.WithTimeout(ctx, c.cfg.ReplicaTimeout)
		rep, err := c.askSnapshot(fctx, g.peer, true)
		cancel()
		var snap *codec.Snapshot
		if err == nil {
			snap, err = codec.DecodeSnapshot(rep.snapshot, c.cfg.MaxSnapshotBytes)
		}
		if err == nil && snap.NodeID != c.cfg.NodeID {
			err = fmt.Errorf("snapshot of node %q", snap.NodeID)
		}
		if err == nil && codec.Newer(&codec.Snapshot{Epoch: g.heldEpoch, Version: g.heldVersion}, snap) {
			err = fmt.Errorf("got version (%d, %d), announced (%d, %d)", snap.Epoch, snap.Version, g.heldEpoch, g.heldVersion)
		}
		if err == nil && nodeid.ValidateEpoch(snap.Epoch) != nil {
			err = nodeid.ValidateEpoch(snap.Epoch)
		}
		if err == nil {
			if err = c.validSnapshot(snap); err != nil {
				c.st.restoreRefused.Add(1)
			}
		}
		if err != nil {
			c.log.Warn("cluster: fetching snapshot from peer failed, trying the next", "peer", g.peer.name,
				"epoch", g.heldEpoch, "version", g.heldVersion, "err", oneLine(err))
			continue
		}
		return snap, rep.snapshot, "peer:" + g.peer.meta.nodeID
	}
	if len(cands) > 0 {
		c.log.Error("cluster: no peer delivered its newer snapshot; restoring an older one", "candidates", len(cands))
	}
	return nil, nil, ""
}
