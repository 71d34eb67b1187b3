package cluster

import (
	"bytes"
	"testing"
	"time"
)

// TestLargeSnapshot replicates and restores an 8 MiB snapshot and logs the
// times. memberlist's receiver must read a whole stream message within
// TCPTimeout, raised here because -race on a loaded machine is slow.
func TestLargeSnapshot(t *testing.T) {
	slow := func(c Config) Config {
		ml := *c.Memberlist
		ml.TCPTimeout = 10 * time.Second
		c.Memberlist = &ml
		c.ReplicaTimeout = 20 * time.Second
		c.GatherTimeout = 10 * time.Second
		return c
	}
	a, _ := startNode(t, slow(testConfig(t, "a")))
	xcfg := slow(testConfig(t, "x", a.LocalAddr()))
	x, xb := startNode(t, xcfg)
	waitFor(t, "x listed", func() bool { return hasMember(a, "x", 1) })
	state := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)
	snap := snapshot("x", xb.Epoch, 1, "")
	snap.States["worker"] = state
	t0 := time.Now()
	if _, err := x.Save(ctxT(t), snap); err != nil {
		t.Fatal(err)
	}
	saved := time.Since(t0)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	xcfg.DataDir = t.TempDir() // empty disk
	t0 = time.Now()
	_, boot := startNode(t, xcfg)
	restored := time.Since(t0)
	if boot.Source != "peer:a" || !bytes.Equal(boot.Snapshot.States["worker"], state) {
		t.Fatalf("restored from %s, %d bytes", boot.Source, len(boot.Snapshot.States["worker"]))
	}
	t.Logf("8 MiB snapshot: Save (local + 1 replica) %v, restore from a peer %v; sender stats %+v", saved, restored, x.Stats())
}
