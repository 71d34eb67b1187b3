package pod

import (
	"sync"
	"sync/atomic"

	"github.com/steadfast-pods/steadfast/cluster"
)

// view publishes the cluster's live view to the actors, which poll it
// without blocking: Load returns the members and a version that changes
// whenever the view did.
type view struct {
	clus *cluster.Cluster
	cur  atomic.Pointer[viewSnap]
	// refreshMu serialises refresh (each closes the previous snapshot's
	// changed channel exactly once).
	refreshMu sync.Mutex
	// stopped is closed by stop; run returns.
	stopped  chan struct{}
	stopOnce sync.Once
}

type viewSnap struct {
	version uint64
	members []cluster.Member
	byID    map[string]cluster.Member
	changed chan struct{} // closed when a newer view replaces this one
}

func newView(c *cluster.Cluster) *view {
	v := &view{clus: c, stopped: make(chan struct{})}
	v.cur.Store(&viewSnap{changed: make(chan struct{})})
	return v
}

// run refreshes the view on every membership change until stop.
func (v *view) run() {
	v.refresh()
	for {
		select {
		case <-v.stopped:
			return
		case <-v.clus.Changes():
			v.refresh()
		}
	}
}

func (v *view) refresh() {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	old := v.cur.Load()
	v.clus.Events() // drained: the actors diff the member list themselves
	ms := v.clus.Members()
	byID := make(map[string]cluster.Member, len(ms))
	for _, m := range ms {
		byID[m.NodeID] = m
	}
	v.cur.Store(&viewSnap{version: old.version + 1, members: ms, byID: byID, changed: make(chan struct{})})
	close(old.changed) // the actors waiting on it wake and take the new view
}

// Watch returns the current members, the view's version and a channel
// closed when the view changes: membership reaches the actors as an event
// (they wait on the channel), not by polling.
func (v *view) Watch() ([]cluster.Member, uint64, <-chan struct{}) {
	s := v.cur.Load()
	return s.members, s.version, s.changed
}

// member returns the live member with node id id.
func (v *view) member(id string) (cluster.Member, bool) {
	m, ok := v.cur.Load().byID[id]
	return m, ok
}

func (v *view) stop() { v.stopOnce.Do(func() { close(v.stopped) }) }

// Load returns the current members and the view's version.
func (v *view) Load() ([]cluster.Member, uint64) {
	s := v.cur.Load()
	return s.members, s.version
}

// count returns the number of live members (including this node).
func (v *view) count() int {
	m, _ := v.Load()
	return len(m)
}
