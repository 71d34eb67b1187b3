package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
)

// Durability between snapshots: Save makes a snapshot durable on MinAcks
// peers, but a holder can leave before the next Save. The keeper (one
// goroutine per started Cluster) closes that window: whenever the live view
// changes, it counts the live holders of this node's newest snapshot and,
// with fewer than Replicas (and more live peers), pushes the snapshot to
// the next ranked peers that do not hold it. It also drops the replicas of
// node ids that no incarnation has announced for ReplicaRetention (retired
// nodes).

// holders tracks which incarnations acknowledged this node's newest
// snapshot.
type holders struct {
	epoch, version uint64
	names          map[string]bool
}

// noteHolder records that the incarnation name holds snap (this node's).
func (c *Cluster) noteHolder(snap *codec.Snapshot, name string) {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	h := &c.holders
	cur := &codec.Snapshot{Epoch: h.epoch, Version: h.version}
	switch {
	case codec.Newer(snap, cur) || h.names == nil:
		c.holders = holders{epoch: snap.Epoch, version: snap.Version, names: map[string]bool{name: true}}
	case !codec.Newer(cur, snap):
		h.names[name] = true
	}
}

// holderNames returns the holders of the snapshot (epoch, version).
func (c *Cluster) holderNames(epoch, version uint64) map[string]bool {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	out := make(map[string]bool)
	if c.holders.epoch == epoch && c.holders.version == version {
		for n := range c.holders.names {
			out[n] = true
		}
	}
	return out
}

// keeperRecheck is how often the keeper re-checks the holders without a
// change of the view.
const keeperRecheck = 500 * time.Millisecond

// keeperGC is how often the keeper looks for replicas of retired nodes.
func (c *Cluster) keeperGC() time.Duration {
	return min(max(c.cfg.ReplicaRetention/10, 10*time.Millisecond), time.Minute)
}

// keep runs after Start until Close (see above).
func (c *Cluster) keep() {
	_, changed := c.viewChanged()
	// Also re-check every keeperRecheck: a re-replication push that failed
	// (a peer too slow to answer) is retried without waiting for the view
	// to change again.
	recheck := time.NewTicker(keeperRecheck)
	defer recheck.Stop()
	var gcC <-chan time.Time
	if c.cfg.ReplicaRetention > 0 {
		t := time.NewTicker(c.keeperGC())
		defer t.Stop()
		gcC = t.C
	}
	for {
		select {
		case <-c.done:
			return
		case <-changed:
			_, changed = c.viewChanged()
			c.rereplicate()
			c.relay()
		case <-recheck.C:
			c.rereplicate()
			c.relay()
		case <-gcC:
			c.collectReplicas(time.Now())
		}
	}
}

// rereplicate pushes this node's newest snapshot to peers that do not hold
// it while fewer than Replicas live peers do.
func (c *Cluster) rereplicate() {
	if c.isClosed() || c.Err() != nil {
		return
	}
	own := c.store.ownSnapshot()
	if own.snap == nil || own.snap.Epoch != c.Epoch() {
		return // nothing saved in this incarnation yet: Save's job
	}
	have := c.holderNames(own.snap.Epoch, own.snap.Version)
	if len(have) == 0 {
		return // Save has not made it durable (yet)
	}
	ranked := c.rankedPeers()
	want := min(c.cfg.Replicas, len(ranked))
	live := 0
	for _, p := range ranked {
		if have[p.name] {
			live++
		}
	}
	for _, p := range ranked {
		if live >= want || c.isClosed() {
			return
		}
		if have[p.name] {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ReplicaTimeout)
		err := c.push(ctx, p, own.snap, own.raw)
		cancel()
		if err != nil {
			c.log.Info("cluster: re-replication push failed", "peer", p.name, "version", own.snap.Version, "reason", oneLine(err))
			continue
		}
		live++
		c.st.rereplicated.Add(1)
		c.log.Info("cluster: re-replicated the snapshot to replace a holder that left", "peer", p.name,
			"epoch", own.snap.Epoch, "version", own.snap.Version, "live_holders", live)
	}
}

// relay re-replicates the replicas of node ids with no live incarnation
// (the owner is down, e.g. being replaced): the first Replicas live members
// in the owner's rendezvous order (this node included) should hold the
// newest replica this node has, so this node pushes it to those of them
// it has not pushed that version to yet. A peer already holding it answers
// without a write; a newer one is never replaced. Once the owner is back,
// its own keeper takes over.
func (c *Cluster) relay() {
	if c.isClosed() || c.Err() != nil {
		return
	}
	now := time.Now()
	for id, h := range c.store.replicaList() {
		if !c.absentFor(id, now) {
			continue
		}
		ranked := c.rankedFor(id, true)
		for _, p := range ranked[:min(c.cfg.Replicas, len(ranked))] {
			key := fmt.Sprintf("%s/%d/%d/%s", id, h.snap.Epoch, h.snap.Version, p.name)
			if p.name == c.name || c.relayedTo(key, false) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ReplicaTimeout)
			err := c.push(ctx, p, h.snap, h.raw)
			cancel()
			if err != nil {
				c.log.Info("cluster: relay push failed", "snapshot_of", id, "peer", p.name, "reason", oneLine(err))
				continue
			}
			c.relayedTo(key, true)
			c.st.relayed.Add(1)
			c.log.Info("cluster: relayed the replica of a node that is down", "snapshot_of", id, "peer", p.name,
				"epoch", h.snap.Epoch, "version", h.snap.Version)
		}
	}
}

// relayGrace is how long a node id must have had no live incarnation
// before its holders relay its replica: a replacement usually takes over
// within that time (and needs the holders' attention for its restore),
// whereas replacing a holder takes longer.
const relayGrace = 2 * time.Second

// absentFor reports whether node id has had no live incarnation for
// relayGrace, as seen by the keeper's calls (now is the call's time).
func (c *Cluster) absentFor(id string, now time.Time) bool {
	live := c.liveID(id)
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	if c.absent == nil {
		c.absent = make(map[string]time.Time)
	}
	if live {
		delete(c.absent, id)
		return false
	}
	since, ok := c.absent[id]
	if !ok {
		c.absent[id] = now
		return false
	}
	grace := relayGrace
	if c.cfg.relayGrace > 0 {
		grace = c.cfg.relayGrace
	}
	return now.Sub(since) >= grace
}

// maxRelayed bounds the memory of relay pushes done.
const maxRelayed = 4096

// relayedTo reports whether the relay key was done, marking it if mark.
func (c *Cluster) relayedTo(key string, mark bool) bool {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	if c.relayed == nil || len(c.relayed) >= maxRelayed {
		c.relayed = make(map[string]bool) // forgetting only costs a repeated push
	}
	done := c.relayed[key]
	if mark {
		c.relayed[key] = true
	}
	return done
}

// collectReplicas drops the replicas of node ids that no known node has
// carried for ReplicaRetention.
func (c *Cluster) collectReplicas(now time.Time) {
	c.mu.Lock()
	seen := make(map[string]bool, len(c.nodes))
	for _, n := range c.nodes {
		if n.valid {
			seen[n.meta.nodeID] = true
		}
	}
	c.mu.Unlock()
	for _, id := range c.store.collect(seen, now, c.cfg.ReplicaRetention) {
		c.st.collected.Add(1)
		c.log.Info("cluster: dropped the replica of a retired node", "snapshot_of", id,
			"retention_seconds", c.cfg.ReplicaRetention.Seconds())
	}
}

// collect marks the ids in seen as seen at now and removes (from memory and
// disk) the replicas of ids not seen for retention. It returns their ids.
func (s *store) collect(seen map[string]bool, now time.Time, retention time.Duration) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.replicas {
		if seen[id] {
			s.lastSeen[id] = now
			continue
		}
		if t, ok := s.lastSeen[id]; !ok {
			s.lastSeen[id] = now
			continue
		} else if now.Sub(t) < retention {
			continue
		}
		err := os.Remove(filepath.Join(s.dir, replicaDir, id+snapExt))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("cluster: could not remove a retired replica", "snapshot_of", id, "err", oneLine(err))
			continue
		}
		delete(s.replicas, id)
		delete(s.lastSeen, id)
		out = append(out, id)
	}
	return out
}
