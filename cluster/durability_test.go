package cluster

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// holdersOf returns the nodes among ns whose store holds version of id.
func holdersOf(id string, version uint64, ns ...*Cluster) []*Cluster {
	var out []*Cluster
	for _, n := range ns {
		if h := n.store.replica(id); h.snap != nil && h.snap.Version == version {
			out = append(out, n)
		}
	}
	return out
}

// TestHolderThenOwnerReplaced (issue 14, durability): the owner's snapshot
// is on two holders; both are replaced one after the other (new
// incarnation, new address, empty disk), then the owner is. Each time a
// holder leaves, the owner pushes its snapshot to another peer, so the
// owner's replacement still restores it. Without re-replication nobody
// holds it by then and the replacement starts empty.
func TestHolderThenOwnerReplaced(t *testing.T) {
	o, ob := startNode(t, testConfig(t, "o"))
	peers := map[string]*Cluster{}
	for _, id := range []string{"h1", "h2", "h3"} {
		peers[id], _ = startNode(t, testConfig(t, id, o.LocalAddr()))
	}
	waitFor(t, "4 members", func() bool { return len(o.Members()) == 4 })
	if _, err := o.Save(ctxT(t), snapshot("o", ob.Epoch, 5, "acked")); err != nil {
		t.Fatal(err)
	}
	all := func() []*Cluster {
		var out []*Cluster
		for _, p := range peers {
			out = append(out, p)
		}
		return out
	}
	waitFor(t, "two holders", func() bool { return len(holdersOf("o", 5, all()...)) == 2 })

	// Relays are counted by the node that relays; a victim's counter goes
	// with it, so it is added up before the victim is replaced.
	var relayed uint64
	for round := 0; round < 2; round++ {
		victim := holdersOf("o", 5, all()...)[0]
		id := victim.cfg.NodeID
		relayed += victim.Stats().Relayed
		_ = victim.Close()
		peers[id], _ = startNode(t, testConfig(t, id, o.LocalAddr()))
		waitFor(t, "two live holders again", func() bool { return len(holdersOf("o", 5, all()...)) >= 2 })
		t.Logf("holder %s replaced; holders now %d, re-replicated %d", id, len(holdersOf("o", 5, all()...)), o.Stats().Rereplicated)
	}
	_ = o.Close()
	var seed string
	for _, p := range peers {
		seed = p.LocalAddr()
	}
	_, b := startNode(t, testConfig(t, "o", seed))
	if b.Snapshot == nil || b.Snapshot.Version != 5 {
		t.Fatalf("owner's replacement restored %+v from %q, want version 5", b.Snapshot, b.Source)
	}
}

// TestRetiredReplicasCollected: the replica of a node id that no node
// carries for ReplicaRetention is deleted (memory and disk); the replica of
// a live node is kept.
func TestRetiredReplicasCollected(t *testing.T) {
	acfg := testConfig(t, "a")
	acfg.ReplicaRetention = 300 * time.Millisecond
	a, _ := startNode(t, acfg)
	live, lb := startNode(t, testConfig(t, "live", a.LocalAddr()))
	gone, gb := startNode(t, testConfig(t, "gone", a.LocalAddr()))
	for _, s := range []struct {
		c     *Cluster
		epoch uint64
	}{{live, lb.Epoch}, {gone, gb.Epoch}} {
		if _, err := s.c.Save(ctxT(t), snapshot(s.c.cfg.NodeID, s.epoch, 1, "x")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a holds both", func() bool { return len(holdersOf("live", 1, a)) == 1 && len(holdersOf("gone", 1, a)) == 1 })
	_ = gone.Close()
	path := filepath.Join(acfg.DataDir, replicaDir, "gone"+snapExt)
	took := waitFor(t, "the retired replica dropped", func() bool {
		_, err := os.Stat(path)
		return os.IsNotExist(err) && a.store.replica("gone").snap == nil
	})
	if took < acfg.ReplicaRetention/2 {
		t.Errorf("dropped after %v, before the retention of %v", took, acfg.ReplicaRetention)
	}
	if a.Stats().ReplicasCollected != 1 || len(holdersOf("live", 1, a)) != 1 {
		t.Fatalf("collected %d; live replica held: %d", a.Stats().ReplicasCollected, len(holdersOf("live", 1, a)))
	}
}

// TestHolderLeavesWhileOwnerDown: the owner is down (being replaced) when
// its holders are replaced one after the other with empty disks. The
// remaining holder relays the replica to the owner's next ranked peers, so
// the owner's replacement still restores it; without relays nobody holds
// it by then.
func TestHolderLeavesWhileOwnerDown(t *testing.T) {
	cfg := func(id string, seeds ...string) Config {
		c := testConfig(t, id, seeds...)
		c.relayGrace = 100 * time.Millisecond
		return c
	}
	h0, _ := startNode(t, cfg("h0"))
	peers := map[string]*Cluster{"h0": h0}
	for _, id := range []string{"h1", "h2", "h3"} {
		peers[id], _ = startNode(t, cfg(id, h0.LocalAddr()))
	}
	o, ob := startNode(t, testConfig(t, "o", h0.LocalAddr()))
	waitFor(t, "5 members", func() bool { return len(o.Members()) == 5 })
	if _, err := o.Save(ctxT(t), snapshot("o", ob.Epoch, 5, "acked")); err != nil {
		t.Fatal(err)
	}
	all := func() []*Cluster {
		var out []*Cluster
		for _, p := range peers {
			out = append(out, p)
		}
		return out
	}
	waitFor(t, "two holders", func() bool { return len(holdersOf("o", 5, all()...)) == 2 })
	_ = o.Close()
	waitFor(t, "o gone", func() bool { return !h0.liveID("o") && !peers["h1"].liveID("o") })

	// Relays are counted by the node that relays; a victim's counter goes
	// with it, so it is added up before the victim is replaced.
	var relayed uint64
	for round := 0; round < 2; round++ {
		victim := holdersOf("o", 5, all()...)[0]
		id := victim.cfg.NodeID
		relayed += victim.Stats().Relayed
		_ = victim.Close()
		var seed string
		for pid, p := range peers {
			if pid != id {
				seed = p.LocalAddr()
			}
		}
		peers[id], _ = startNode(t, cfg(id, seed))
		waitFor(t, "two live holders again", func() bool { return len(holdersOf("o", 5, all()...)) >= 2 })
	}
	for _, p := range all() {
		relayed += p.Stats().Relayed
	}
	if relayed == 0 {
		t.Errorf("no relay counted")
	}
	var seed string
	for _, p := range peers {
		seed = p.LocalAddr()
	}
	_, b := startNode(t, testConfig(t, "o", seed))
	if b.Snapshot == nil || b.Snapshot.Version != 5 {
		t.Fatalf("owner's replacement restored %+v from %q, want version 5", b.Snapshot, b.Source)
	}
}
