package pod

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
)

// TestPoisonedLocalSnapshotRefused (issue 14 §2 and §3, at the pods): each
// pod's own snapshot file holds one of the poisoned states that crashed
// the restore (the subscriber's logger: a nil tally entry; the publisher's
// outbox: "\x90"). The pods' snapshot check, wired into the cluster, must
// refuse them at start (counted, restored from nothing instead) and the
// stream must end exactly once. Without the check wired in, the restore
// fails (the pod does not start); before the typed decode, it panicked.
func TestPoisonedLocalSnapshotRefused(t *testing.T) {
	mn := newMemNet()
	pc := baseConfig(t, Publisher, "pub-1", "127.0.0.1:1")
	pc.Beats, pc.Batch = 100, 10
	sc := baseConfig(t, Subscriber, "sub-1", "127.0.0.1:2")
	for _, v := range []struct {
		cfg   Config
		actor string
		state string
	}{
		{pc, actorPublish, "\x90"},
		{sc, actorLogger, "\x81\xa5tally\x81\xa4pubs\x81\xa5pub-1\xc0"},
	} {
		raw, err := codec.EncodeSnapshot(&codec.Snapshot{NodeID: v.cfg.NodeID, Epoch: 1, Version: 5,
			States: map[string][]byte{v.actor: []byte(v.state)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(v.cfg.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(v.cfg.DataDir, "snapshot.snap"), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pub := startPod(t, mn, pc, "pub")
	sc.Join = []string{pub.p.GossipAddr()}
	sub := startPod(t, mn, sc, "sub")
	sub.finished(t, 60*time.Second)
	f := readFinal(t, sub.dir)
	if r := Check(f.Tally["pub-1"], 1000, nil); !r.OK() || f.RestoreSource != "none" {
		t.Fatalf("check: %+v, restored from %q", r, f.RestoreSource)
	}
	for _, p := range []*testPod{pub, sub} {
		if n := p.p.clus.Stats().RestoreRefused; n != 1 {
			t.Errorf("%s: %d snapshots refused at start, want 1", p.p.ID(), n)
		}
	}
}
