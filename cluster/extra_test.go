package cluster

import (
	"errors"
	"github.com/steadfast-pods/steadfast/internal/freeport"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/codec"
)

// freePort returns a port free for TCP and UDP on 127.0.0.1 (gossip uses
// one of each), or fails the test.
func freePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.TCPUDP()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestJoinAnyOrder: b starts first with a seed that is not up yet and keeps
// retrying; a comes up later, listing b as its seed; both end up joined.
func TestJoinAnyOrder(t *testing.T) {
	portA := freePort(t)
	addrA := "127.0.0.1:" + strconv.Itoa(portA)
	bcfg := testConfig(t, "b", addrA)
	b, err := New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	started := make(chan error, 1)
	go func() {
		_, err := b.Start(ctxT(t))
		started <- err
	}()
	waitFor(t, "b retries", func() bool { return b.Stats().JoinAttempts >= 3 })

	acfg := testConfig(t, "a", b.LocalAddr(), addrA) // its own address is ignored
	acfg.BindPort = portA
	a, _ := startNode(t, acfg)
	if err := <-started; err != nil {
		t.Fatalf("b.Start: %v", err)
	}
	for _, n := range []*Cluster{a, b} {
		waitFor(t, n.Name()+" sees both", func() bool { return hasMember(n, "a", 1) && hasMember(n, "b", 1) })
	}
}

func TestSaveRules(t *testing.T) {
	cfg := testConfig(t, "solo")
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Save(ctxT(t), snapshot("solo", 1, 1, "x")); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Save before Start = %v", err)
	}
	if _, err := c.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	d, err := c.Save(ctxT(t), snapshot("solo", 1, 3, "x"))
	if err != nil || !d.Alone || d.Version != 3 {
		t.Fatalf("alone Save = %+v, %v", d, err)
	}
	for name, s := range map[string]*codec.Snapshot{
		"older":       snapshot("solo", 1, 2, "x"),
		"other id":    snapshot("other", 1, 4, "x"),
		"other epoch": snapshot("solo", 2, 4, "x"),
		"nil":         nil,
	} {
		if _, err := c.Save(ctxT(t), s); !errors.Is(err, ErrSnapshot) {
			t.Errorf("%s: Save = %v, want ErrSnapshot", name, err)
		}
	}
	big := snapshot("solo", 1, 5, strings.Repeat("b", cfg.MaxSnapshotBytes))
	if _, err := c.Save(ctxT(t), big); !errors.Is(err, codec.ErrTooLarge) {
		t.Errorf("big Save = %v, want codec.ErrTooLarge", err)
	}
	if h := c.store.ownSnapshot(); h.snap.Version != 3 {
		t.Fatalf("saved version %d, want 3", h.snap.Version)
	}

	strict := testConfig(t, "strict")
	strict.DurableAlone = false
	s, _ := startNode(t, strict)
	if _, err := s.Save(ctxT(t), snapshot("strict", 1, 1, "x")); !errors.Is(err, ErrNoReplica) {
		t.Fatalf("strict alone Save = %v, want ErrNoReplica", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Save(ctxT(t), snapshot("solo", 1, 9, "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Save after Close = %v", err)
	}
	// Restart on the same dir: epoch goes up, the local snapshot is used.
	cfg.BindPort = 0
	_, boot := startNode(t, cfg)
	if boot.Epoch != 2 || boot.Source != "local" || boot.Snapshot.Version != 3 {
		t.Fatalf("restart boot %+v", boot)
	}
}

// TestReplicaCount: with 4 nodes and Replicas = 2, exactly two peers hold
// the snapshot, and Save with MinAcks 2 waits for both.
func TestReplicaCount(t *testing.T) {
	acfg := testConfig(t, "a")
	acfg.MinAcks = 2
	a, _ := startNode(t, acfg)
	nodes := []*Cluster{a}
	for _, id := range []string{"b", "c", "d"} {
		n, _ := startNode(t, testConfig(t, id, a.LocalAddr()))
		nodes = append(nodes, n)
	}
	waitFor(t, "4 members", func() bool { return len(a.Members()) == 4 })
	d, err := a.Save(ctxT(t), snapshot("a", 1, 1, "x"))
	if err != nil || len(d.Replicas) != 2 || a.Stats().SnapshotsAcked != 2 {
		t.Fatalf("Save with MinAcks 2 = %+v, %v", d, err)
	}
	held := 0
	for _, n := range nodes[1:] {
		if n.store.replica("a").snap != nil {
			held++
		}
	}
	if held != 2 || a.Stats().SnapshotsSent != 2 {
		t.Fatalf("%d peers hold a replica, %d pushes sent; want 2", held, a.Stats().SnapshotsSent)
	}
}

// TestStoreIgnoresBadFiles: torn, corrupt and misnamed snapshot files are
// ignored (and moved aside), good ones load.
func TestStoreIgnoresBadFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, replicaDir), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path string, s *codec.Snapshot, damage func([]byte) []byte) {
		b, err := codec.EncodeSnapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, damage(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keep := func(b []byte) []byte { return b }
	write(filepath.Join(dir, snapshotFile), snapshot("me", 1, 1, "x"), func(b []byte) []byte { return b[:len(b)/2] })
	write(filepath.Join(dir, replicaDir, "good.snap"), snapshot("good", 2, 7, "x"), keep)
	write(filepath.Join(dir, replicaDir, "liar.snap"), snapshot("other", 1, 1, "x"), keep)
	write(filepath.Join(dir, replicaDir, "flip.snap"), snapshot("flip", 1, 1, "x"), func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	s, err := openStore(dir, "me", codec.DefaultMaxSnapshot, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.ownSnapshot().snap != nil {
		t.Fatal("torn own snapshot loaded")
	}
	// A data dir holding another node's snapshot is not restored either.
	write(filepath.Join(dir, snapshotFile), snapshot("someone-else", 1, 1, "x"), keep)
	if s2, err := openStore(dir, "me", codec.DefaultMaxSnapshot, testLogger(t)); err != nil || s2.ownSnapshot().snap != nil {
		t.Fatalf("foreign own snapshot loaded (%v)", err)
	}
	if n, _ := s.replicaStats(); n != 1 || s.replica("good").snap.Version != 7 {
		t.Fatalf("replicas loaded: %d", n)
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "*", "*.corrupt-*"))
	aside2, _ := filepath.Glob(filepath.Join(dir, "*.corrupt-*"))
	if len(aside)+len(aside2) != 4 {
		t.Fatalf("moved aside: %v %v", aside, aside2)
	}
}

// TestCloseStopsGoroutines: after Close no goroutine of this package is
// left (memberlist's own may linger briefly after Shutdown).
func TestCloseStopsGoroutines(t *testing.T) {
	a, _ := startNode(t, testConfig(t, "a"))
	b, _ := startNode(t, testConfig(t, "b", a.LocalAddr()))
	waitFor(t, "joined", func() bool { return hasMember(a, "b", 1) })
	if _, err := b.Save(ctxT(t), snapshot("b", 1, 1, "x")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Cluster{a, b} {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	ours := func() string {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "steadfast/cluster.(*Cluster)") && !strings.Contains(g, "TestCloseStopsGoroutines") {
				return g
			}
		}
		return ""
	}
	deadline := time.Now().Add(10 * time.Second)
	for g := ours(); g != ""; g = ours() {
		if time.Now().After(deadline) {
			t.Fatalf("goroutine left after Close:\n%s", g)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFetchFallsBack: the peer announcing the newest snapshot delivers a
// corrupt one; the starting node logs it and restores the next newest from
// another peer instead of nothing.
func TestFetchFallsBack(t *testing.T) {
	a, _ := startNode(t, testConfig(t, "a"))
	b, _ := startNode(t, testConfig(t, "b", a.LocalAddr()))
	xcfg := testConfig(t, "x", a.LocalAddr())
	x, xb := startNode(t, xcfg)
	waitFor(t, "x listed", func() bool { return hasMember(a, "x", 1) && hasMember(b, "x", 1) })
	if _, err := x.Save(ctxT(t), snapshot("x", xb.Epoch, 3, "three")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both replicas", func() bool { return a.store.replica("x").snap != nil && b.store.replica("x").snap != nil })
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	// b now claims version 9 but holds garbage.
	b.store.mu.Lock()
	b.store.replicas["x"] = held{snap: &codec.Snapshot{NodeID: "x", Epoch: 1, Version: 9}, raw: []byte("garbage")}
	b.store.mu.Unlock()

	xcfg.DataDir = t.TempDir()
	xcfg.BindPort = 0
	_, boot := startNode(t, xcfg)
	if boot.Source != "peer:a" || boot.Snapshot == nil || boot.Snapshot.Version != 3 || boot.Epoch != 2 {
		t.Fatalf("boot %+v, snapshot %+v", boot, boot.Snapshot)
	}
}
