package cluster

import (
	"bytes"
	"testing"
	"time"
)

// TestLargeSnapshot replicates and restores a 12 MiB snapshot (near the
// 16 MiB default cap) and logs the times.
func TestLargeSnapshot(t *testing.T) {
	a, _ := startNode(t, testConfig(t, "a"))
	xcfg := testConfig(t, "x", a.LocalAddr())
	x, xb := startNode(t, xcfg)
	waitFor(t, "x listed", func() bool { return hasMember(a, "x", 1) })
	state := bytes.Repeat([]byte("0123456789abcdef"), 12<<20/16)
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
	t.Logf("12 MiB snapshot: Save (local + 1 replica) %v, restore from a peer %v; sender stats %+v", saved, restored, x.Stats())
}
