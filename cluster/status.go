package cluster

import (
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Node states reported by Nodes.
const (
	NodeLive     = "live"     // in the live view
	NodeSuspect  = "suspect"  // in the live view, but memberlist suspects it failed
	NodeFenced   = "fenced"   // an older incarnation of a live node id
	NodeStarting = "starting" // joined but has not announced an epoch yet
	NodeInvalid  = "invalid"  // its metadata did not decode; ignored
)

// NodeState is one memberlist node as this Cluster sees it: every live
// member, and the incarnations not in the view (fenced, starting, invalid).
type NodeState struct {
	Member
	State string
}

// Nodes returns every memberlist node this Cluster knows (itself included),
// by node id, then epoch, highest first. It is meant for status pages:
// Members is the view the pods act on.
func (c *Cluster) Nodes() []NodeState {
	// memberlist's own health view (suspect), read without c.mu: memberlist
	// calls the delegates, which take c.mu, with its own lock held.
	suspect := map[string]bool{}
	if c.ml != nil {
		for _, n := range c.ml.Members() {
			if n.State == memberlist.StateSuspect {
				suspect[n.Name] = true
			}
		}
	}
	c.mu.Lock()
	out := make([]NodeState, 0, len(c.nodes))
	for name, n := range c.nodes {
		ns := NodeState{Member: c.member(n)}
		_, live := c.view[name]
		switch {
		case !n.valid:
			ns.State = NodeInvalid
		case live && suspect[name]:
			ns.State = NodeSuspect
		case live:
			ns.State = NodeLive
		case n.meta.epoch == 0:
			ns.State = NodeStarting
		default:
			ns.State = NodeFenced
		}
		out = append(out, ns)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b NodeState) int {
		if d := strings.Compare(a.NodeID, b.NodeID); d != 0 {
			return d
		}
		switch {
		case a.Epoch > b.Epoch:
			return -1
		case a.Epoch < b.Epoch:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// SnapshotInfo describes a snapshot held on this node: its own newest, or
// a replica held for a peer.
type SnapshotInfo struct {
	NodeID         string
	Epoch, Version uint64
	Bytes          int       // encoded size
	Taken          time.Time // when its owner took it (the owner's clock)
}

func info(h held) (SnapshotInfo, bool) {
	if h.snap == nil {
		return SnapshotInfo{}, false
	}
	return SnapshotInfo{NodeID: h.snap.NodeID, Epoch: h.snap.Epoch, Version: h.snap.Version,
		Bytes: len(h.raw), Taken: time.Unix(0, h.snap.TakenUnixNano)}, true
}

// Replicas describes the replicas this node holds for its peers, by node id.
func (c *Cluster) Replicas() []SnapshotInfo {
	c.store.mu.Lock()
	out := make([]SnapshotInfo, 0, len(c.store.replicas))
	for _, h := range c.store.replicas {
		if i, ok := info(h); ok {
			out = append(out, i)
		}
	}
	c.store.mu.Unlock()
	slices.SortFunc(out, func(a, b SnapshotInfo) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out
}

// OwnSnapshot describes this node's newest saved snapshot (false if none).
func (c *Cluster) OwnSnapshot() (SnapshotInfo, bool) {
	return info(c.store.ownSnapshot())
}

// durationBuckets are the upper bounds (seconds) of the Cluster's duration
// histograms.
var durationBuckets = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// durHist is a lock-free duration histogram.
type durHist struct {
	counts [len(durationBuckets) + 1]atomic.Uint64 // per bucket, the last for +Inf
	count  atomic.Uint64
	sumNS  atomic.Int64
}

func (h *durHist) observe(d time.Duration) {
	s := d.Seconds()
	i := sort.SearchFloat64s(durationBuckets[:], s) // first bound >= s
	h.counts[i].Add(1)
	h.sumNS.Add(int64(d))
	h.count.Add(1)
}

// Histogram is a snapshot of a duration histogram in seconds.
type Histogram struct {
	Buckets map[float64]uint64 // upper bound -> cumulative count (+Inf left out)
	Count   uint64
	Sum     float64
}

func (h *durHist) snapshot() Histogram {
	out := Histogram{Buckets: make(map[float64]uint64, len(durationBuckets))}
	var cum uint64
	for i, le := range durationBuckets {
		cum += h.counts[i].Load()
		out.Buckets[le] = cum
	}
	// Count is at least the buckets' total (they are read one by one).
	out.Count = max(h.count.Load(), cum+h.counts[len(durationBuckets)].Load())
	out.Sum = time.Duration(h.sumNS.Load()).Seconds()
	return out
}

// ReplicationRoundTrips is the histogram of snapshot pushes from request
// to a peer's acknowledgement (acknowledged pushes only).
func (c *Cluster) ReplicationRoundTrips() Histogram { return c.st.rtt.snapshot() }

// Holders returns the newest version of this node's snapshot that a peer
// acknowledged (by push or re-replication) and the node ids of the live
// peers holding it, sorted (0 and none before any acknowledgement).
func (c *Cluster) Holders() (epoch, version uint64, nodeIDs []string) {
	c.holdMu.Lock()
	epoch, version = c.holders.epoch, c.holders.version
	names := make([]string, 0, len(c.holders.names))
	for n := range c.holders.names {
		names = append(names, n)
	}
	c.holdMu.Unlock()
	c.mu.Lock()
	for _, name := range names {
		if m, ok := c.view[name]; ok {
			nodeIDs = append(nodeIDs, m.NodeID)
		}
	}
	c.mu.Unlock()
	slices.Sort(nodeIDs)
	return epoch, version, nodeIDs
}
