package cluster

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWrongKeyCannotJoin(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	cfg := testConfig(t, "enc-a")
	cfg.ClusterKey = key
	a, _ := startNode(t, cfg)

	cfg = testConfig(t, "enc-b", a.LocalAddr())
	cfg.ClusterKey = key
	b, _ := startNode(t, cfg)
	waitFor(t, "keyed node joins", func() bool { return hasMember(a, "enc-b", 1) })

	for name, k := range map[string][]byte{"wrong key": bytes.Repeat([]byte{2}, 32), "no key": nil, "short key": key[:16], "other label": key} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, "intruder", a.LocalAddr())
			cfg.ClusterKey = k
			if name == "other label" {
				cfg.Label = "other-cluster"
			}
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			_, err = c.Start(ctx)
			if !errors.Is(err, ErrJoin) {
				t.Fatalf("Start = %v, want ErrJoin", err)
			}
			if c.Stats().JoinAttempts < 1 {
				t.Errorf("join was never tried")
			}
			for _, n := range []*Cluster{a, b} {
				n.mu.Lock()
				for name := range n.nodes {
					if strings.HasPrefix(name, "intruder#") {
						t.Errorf("%s knows the intruder %s", n.Name(), name)
					}
				}
				n.mu.Unlock()
			}
		})
	}
}

func TestEventsAndLeave(t *testing.T) {
	a, _ := startNode(t, testConfig(t, "a"))
	if got := a.Events(); len(got) != 1 || got[0].Kind != EventJoined || !got[0].Member.Self {
		t.Fatalf("a's own events = %+v, want itself joined", got)
	}
	cfg := testConfig(t, "b", a.LocalAddr())
	cfg.Role, cfg.MetricsAddr = RolePublisher, "127.0.0.1:9100"
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var seen []Event
	collect := func(want EventKind) {
		waitFor(t, "event "+want.String(), func() bool {
			select {
			case <-a.Changes():
				seen = append(seen, a.Events()...)
			default:
			}
			for _, e := range seen {
				if e.Kind == want && e.Member.NodeID == "b" {
					return true
				}
			}
			return false
		})
	}
	collect(EventJoined)
	var m Member
	for _, x := range a.Members() {
		if x.NodeID == "b" {
			m = x
		}
	}
	want := Member{NodeID: "b", Epoch: 1, Role: RolePublisher, DataEndpoint: cfg.DataEndpoint,
		MetricsAddr: "127.0.0.1:9100", Name: b.Name(), GossipAddr: b.LocalAddr()}
	if m != want {
		t.Fatalf("a lists b as %+v, want %+v", m, want)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	collect(EventLeft)
	if hasMember(a, "b", 1) {
		t.Fatal("b still listed after leaving")
	}
	if s := a.Stats(); s.Members != 1 || s.Events < 3 {
		t.Fatalf("stats after leave: %+v", s)
	}
}

// TestReplacementFencesLiveIncarnation: a replacement starts while the old
// incarnation still runs (a zombie, e.g. partitioned). The higher epoch
// wins at once: peers list only the new one, the old one is told it is
// fenced, and a stale incarnation coming back later is fenced too.
func TestReplacementFencesLiveIncarnation(t *testing.T) {
	a, _ := startNode(t, testConfig(t, "a"))
	b, _ := startNode(t, testConfig(t, "b", a.LocalAddr()))
	old, ob := startNode(t, testConfig(t, "x", a.LocalAddr()))
	waitFor(t, "x listed", func() bool { return hasMember(a, "x", 1) && hasMember(b, "x", 1) })
	if _, err := old.Save(ctxT(t), snapshot("x", ob.Epoch, 4, "old state")); err != nil {
		t.Fatal(err)
	}

	nx, nb := startNode(t, testConfig(t, "x", b.LocalAddr()))
	if nb.Epoch != 2 || nb.Snapshot == nil || nb.Snapshot.Version != 4 {
		t.Fatalf("replacement boot: epoch %d snapshot %+v", nb.Epoch, nb.Snapshot)
	}
	waitFor(t, "old incarnation fenced", func() bool {
		select {
		case <-old.Fenced():
			return true
		default:
			return false
		}
	})
	if err := old.Err(); !errors.Is(err, ErrFenced) {
		t.Fatalf("old Err = %v", err)
	}
	if _, err := old.Save(ctxT(t), snapshot("x", 1, 5, "zombie")); !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced Save = %v, want ErrFenced", err)
	}
	for _, n := range []*Cluster{a, b} {
		waitFor(t, n.Name()+" lists the new x only", func() bool {
			return hasMember(n, "x", 2) && !hasMember(n, "x", 1)
		})
	}
	fencedEvent := false
	for _, e := range a.Events() {
		if e.Kind == EventFenced && e.Member.Name == old.Name() {
			fencedEvent = true
		}
	}
	if !fencedEvent {
		t.Error("a emitted no EventFenced for the old incarnation")
	}

	// A stale incarnation (epoch 1) comes back later.
	cfg := testConfig(t, "x", a.LocalAddr())
	cfg.epochOverride = 1
	stale, _ := startNode(t, cfg)
	waitFor(t, "stale incarnation fences itself", func() bool { return stale.Err() != nil })
	waitFor(t, "peers see the stale one", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.nodes[stale.Name()] != nil && a.nodes[stale.Name()].fencedReported
	})
	if !hasMember(a, "x", 2) || hasMember(a, "x", 1) {
		t.Fatalf("a's view after the stale one came back: %+v", a.Members())
	}
	// Its messages are rejected and counted: push an epoch-1 snapshot as
	// the stale incarnation would.
	raw, _ := codec.EncodeSnapshot(snapshot("x", 1, 9, "stale"))
	before := a.Stats().SnapshotRejects["fenced"]
	err := stale.push(ctxT(t), nodeFor(t, a), &codec.Snapshot{NodeID: "x", Epoch: 1}, raw)
	if err == nil || !strings.Contains(err.Error(), "fenced") {
		t.Fatalf("stale push = %v, want rejected as fenced", err)
	}
	if got := a.Stats().SnapshotRejects["fenced"]; got != before+1 {
		t.Fatalf("fenced rejects %d, want %d", got, before+1)
	}
	if a.Epochs().Accept("x", 1) || a.Stats().EpochRejects == 0 {
		t.Fatal("a's tracker accepts epoch 1 of x")
	}
	if hold := a.store.replica("x"); hold.snap != nil && hold.snap.Epoch < 2 && hold.snap.Version == 9 {
		t.Fatal("stale snapshot stored")
	}
	_ = nx
}

// nodeFor addresses c for push/request from another Cluster.
func nodeFor(t testing.TB, c *Cluster) *node {
	host, port, err := net.SplitHostPort(c.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return &node{name: c.Name(), ip: net.ParseIP(host), port: uint16(p), meta: meta{nodeID: c.cfg.NodeID}}
}

// TestCorruptLocalFallsBackToPeer: the node's own snapshot file is damaged
// while it is down; on restart it ignores the file (moved aside, never
// loaded) and restores the replica from a peer. The peer's replica also
// survives the peer's own restart.
func TestCorruptLocalFallsBackToPeer(t *testing.T) {
	a, _ := startNode(t, testConfig(t, "a"))
	xcfg := testConfig(t, "x", a.LocalAddr())
	x, xb := startNode(t, xcfg)
	waitFor(t, "x listed", func() bool { return hasMember(a, "x", 1) })
	for v := uint64(1); v <= 3; v++ {
		if _, err := x.Save(ctxT(t), snapshot("x", xb.Epoch, v, "state "+strconv.Itoa(int(v)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	// Restart a on the same data dir: it keeps the replica.
	acfg := a.cfg
	acfg.BindPort = 0
	acfg.Seeds = nil
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a2, _ := startNode(t, acfg)
	if s := a2.Stats(); s.ReplicasHeld != 1 {
		t.Fatalf("restarted a holds %d replicas", s.ReplicasHeld)
	}

	path := filepath.Join(xcfg.DataDir, snapshotFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	xcfg.Seeds = []string{a2.LocalAddr()}
	x2, boot := startNode(t, xcfg)
	if boot.Source != "peer:a" || boot.Snapshot == nil || boot.Snapshot.Version != 3 ||
		string(boot.Snapshot.States["worker"]) != "state 3" {
		t.Fatalf("boot %+v snapshot %+v", boot, boot.Snapshot)
	}
	if boot.Epoch != 2 || x2.Stats().RestoreSource != "peer:a" {
		t.Fatalf("epoch %d, stats source %q", boot.Epoch, x2.Stats().RestoreSource)
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt file not moved aside: %v", aside)
	}
	// The restored snapshot is now the local one again, and it verifies.
	if h := x2.store.ownSnapshot(); h.snap == nil || h.snap.Version != 3 {
		t.Fatalf("local snapshot after restore: %+v", h.snap)
	}
}

// TestBadPushesRejected sends garbled, oversized, corrupt, stale,
// mismatched and fenced snapshot pushes; each is rejected and counted, and
// the replica held (in memory and on disk) stays the good one.
func TestBadPushesRejected(t *testing.T) {
	acfg := testConfig(t, "a")
	acfg.MaxSnapshotBytes = 64 << 10
	a, _ := startNode(t, acfg)
	p, pb := startNode(t, testConfig(t, "p", a.LocalAddr()))
	waitFor(t, "p listed", func() bool { return hasMember(a, "p", 1) })
	good := snapshot("p", pb.Epoch, 5, "good")
	if _, err := p.Save(ctxT(t), good); err != nil {
		t.Fatal(err)
	}
	replicaPath := filepath.Join(acfg.DataDir, replicaDir, "p"+snapExt)
	goodRaw, err := os.ReadFile(replicaPath)
	if err != nil {
		t.Fatal(err)
	}
	to := nodeFor(t, a)
	enc := func(s *codec.Snapshot) []byte {
		b, err := codec.EncodeSnapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	corrupt := enc(snapshot("p", 1, 6, "corrupt"))
	corrupt[20] ^= 0x55
	big := snapshot("p", 1, 7, strings.Repeat("z", 100<<10))
	cases := []struct {
		reason string
		hdr    *codec.Snapshot
		raw    []byte
	}{
		{"too_large", big, enc(big)},
		{"checksum", &codec.Snapshot{NodeID: "p", Epoch: 1}, corrupt},
		{"malformed", &codec.Snapshot{NodeID: "p", Epoch: 1}, []byte("SFS1 not a snapshot")},
		{"stale", &codec.Snapshot{NodeID: "p", Epoch: 1}, enc(snapshot("p", 1, 4, "older"))},
		{"mismatch", &codec.Snapshot{NodeID: "q", Epoch: 1}, enc(snapshot("p", 1, 8, "claims q"))},
		{"fenced", &codec.Snapshot{NodeID: "p", Epoch: 0}, enc(snapshot("p", 0, 9, "epoch 0"))},
	}
	for _, c := range cases {
		before := a.Stats().SnapshotRejects[c.reason]
		err := p.push(ctxT(t), to, c.hdr, c.raw)
		switch {
		case c.reason == "stale":
			// Rejected, but the peer holds a newer version of the same
			// epoch, which makes this one durable too.
			if err != nil {
				t.Errorf("stale push = %v, want superseded (nil)", err)
			}
		case err == nil || !strings.Contains(err.Error(), c.reason):
			t.Errorf("%s: push = %v", c.reason, err)
		}
		if got := a.Stats().SnapshotRejects[c.reason]; got != before+1 {
			t.Errorf("%s: counter %d, want %d", c.reason, got, before+1)
		}
	}
	// Garbage that is not even a readable push: no reply possible, counted.
	send := func(b []byte) {
		n := nodeFor(t, a)
		if err := p.ml.SendReliable(nodeToML(n), b); err != nil {
			t.Fatal(err)
		}
	}
	badBefore, malBefore := a.Stats().BadMessages, a.Stats().SnapshotRejects["malformed"]
	send([]byte("hello, not ours"))
	send([]byte{protoMagic, protoVersion, msgPush, 0xff})
	send([]byte{protoMagic, protoVersion, 99})
	waitFor(t, "garbage counted", func() bool {
		s := a.Stats()
		return s.BadMessages >= badBefore+2 && s.SnapshotRejects["malformed"] >= malBefore+1
	})
	h := a.store.replica("p")
	if h.snap == nil || h.snap.Version != 5 || h.snap.Epoch != pb.Epoch {
		t.Fatalf("held replica changed: %+v", h.snap)
	}
	if disk, err := os.ReadFile(replicaPath); err != nil || !bytes.Equal(disk, goodRaw) {
		t.Fatalf("replica on disk changed (%v)", err)
	}
	t.Logf("a stats: %+v", a.Stats())
}
