package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/steadfast-pods/steadfast/codec"
)

// The attacks of issue 14 §2 against the gossip layer, sent by a process
// that is not a member (a bare memberlist instance that never joined, as a
// program on the same host would use) or that claims a member's name. Each
// test fails on the code before the fix (recorded in the commit message).

// attacker is a memberlist instance that never joins: it can only send.
type attacker struct {
	t  testing.TB
	ml *memberlist.Memberlist
}

func newAttacker(t testing.TB, key []byte) *attacker {
	t.Helper()
	cfg := memberlist.DefaultLocalConfig()
	cfg.Name = "evil#00000000"
	cfg.BindAddr, cfg.BindPort = "127.0.0.1", 0
	cfg.Label = DefaultLabel
	cfg.SecretKey = key
	cfg.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	return &attacker{t: t, ml: ml}
}

// send delivers msg to c over the reliable path.
func (a *attacker) send(c *Cluster, msg []byte) {
	a.t.Helper()
	host, port, _ := net.SplitHostPort(c.LocalAddr())
	p, _ := strconv.Atoi(port)
	if err := a.ml.SendReliable(&memberlist.Node{Name: c.Name(), Addr: net.ParseIP(host), Port: uint16(p)}, msg); err != nil {
		a.t.Fatal(err)
	}
}

func encSnap(t testing.TB, s *codec.Snapshot) []byte {
	t.Helper()
	b, err := codec.EncodeSnapshot(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func forgedPush(t testing.TB, from replyTo, id string, epoch, version uint64) []byte {
	return (&pushMsg{req: 7, from: from, nodeID: id, epoch: epoch,
		snapshot: encSnap(t, snapshot(id, epoch, version, "forged"))}).encode()
}

// waitIn waits until c has received n more messages than before.
func waitIn(t testing.TB, c *Cluster, before uint64, n uint64) {
	t.Helper()
	waitFor(t, "messages received", func() bool { return c.Stats().MessagesIn >= before+n })
	time.Sleep(200 * time.Millisecond) // handled by the worker, and any fencing gossiped
}

// TestAttackForgedPushDoesNotFence: a push naming node v with epoch 1000,
// from a non-member and from a sender claiming a member's name, neither
// fences v (before: v logged "fenced" and its pod exited) nor changes what
// any node believes v's epoch is.
func TestAttackForgedPushDoesNotFence(t *testing.T) {
	a, _ := startNode(t, testConfig(t, "a"))
	v, vb := startNode(t, testConfig(t, "v", a.LocalAddr()))
	waitFor(t, "v listed", func() bool { return hasMember(a, "v", vb.Epoch) })
	evil := newAttacker(t, nil)
	sink := replyTo{name: "evil#00000000", addr: evil.ml.LocalNode().Address()}
	claimA := replyTo{name: a.Name(), addr: sink.addr}

	inA, inV := a.Stats().MessagesIn, v.Stats().MessagesIn
	evil.send(a, forgedPush(t, sink, "v", 1000, 1))
	evil.send(v, forgedPush(t, sink, "v", 1000, 1))
	evil.send(v, forgedPush(t, claimA, "v", 1001, 1))
	evil.send(a, forgedPush(t, replyTo{name: v.Name(), addr: sink.addr}, "v", 1002, 1))
	waitIn(t, a, inA, 2)
	waitIn(t, v, inV, 2)

	if err := v.Err(); err != nil {
		t.Fatalf("v fenced by a forged push: %v", err)
	}
	for _, c := range []*Cluster{a, v} {
		if h := c.HighestEpoch("v"); h != vb.Epoch {
			t.Errorf("%s believes v's epoch is %d, want %d", c.Name(), h, vb.Epoch)
		}
	}
	if !hasMember(a, "v", vb.Epoch) {
		t.Errorf("a no longer lists v: %+v", a.Members())
	}
	if h := a.store.replica("v"); h.snap != nil {
		t.Errorf("a stored a forged replica of v: epoch %d version %d", h.snap.Epoch, h.snap.Version)
	}
}

// TestAttackPushCannotWriteOutsideDataDir: a push whose node id climbs out
// with "../" is never written (before: "../snapshot" overwrote the node's
// own snapshot file, and "../../x" wrote next to the data dir).
func TestAttackPushCannotWriteOutsideDataDir(t *testing.T) {
	root := t.TempDir()
	acfg := testConfig(t, "a")
	acfg.DataDir = filepath.Join(root, "a")
	a, ab := startNode(t, acfg)
	v, vb := startNode(t, testConfig(t, "v", a.LocalAddr()))
	waitFor(t, "v listed", func() bool { return hasMember(a, "v", vb.Epoch) })
	if _, err := a.Save(ctxT(t), snapshot("a", ab.Epoch, 3, "own")); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(acfg.DataDir, snapshotFile)
	ownRaw, err := os.ReadFile(own)
	if err != nil {
		t.Fatal(err)
	}
	evil := newAttacker(t, nil)
	sink := replyTo{name: "evil#00000000", addr: evil.ml.LocalNode().Address()}
	in := a.Stats().MessagesIn
	n := uint64(0)
	for _, from := range []replyTo{sink, {name: v.Name(), addr: sink.addr}} {
		for _, id := range []string{"../snapshot", "../../escape", "..", "."} {
			evil.send(a, forgedPush(t, from, id, 1, 99))
			n++
		}
	}
	waitIn(t, a, in, n)
	if got, err := os.ReadFile(own); err != nil || !bytes.Equal(got, ownRaw) {
		t.Errorf("own snapshot file changed by a push (%v)", err)
	}
	if h := a.store.ownSnapshot(); h.snap == nil || h.snap.Version != 3 {
		t.Errorf("own snapshot in memory changed: %+v", h.snap)
	}
	if _, err := os.Stat(filepath.Join(root, "escape.snap")); err == nil {
		t.Errorf("a push wrote %s outside the data dir", filepath.Join(root, "escape.snap"))
	}
	entries, _ := os.ReadDir(filepath.Join(acfg.DataDir, replicaDir))
	for _, e := range entries {
		if e.Name() != "v"+snapExt {
			t.Errorf("unexpected replica file %q", e.Name())
		}
	}
}

// TestAttackEpochCannotWrap: a push with epoch 2^64-1 for v, then v is
// replaced: the replacement takes epoch 2 (before: the epoch wrapped to 0
// and every Save failed with "not started" for ever).
func TestAttackEpochCannotWrap(t *testing.T) {
	a, _ := startNode(t, testConfig(t, "a"))
	vcfg := testConfig(t, "v", a.LocalAddr())
	v, vb := startNode(t, vcfg)
	waitFor(t, "v listed", func() bool { return hasMember(a, "v", vb.Epoch) })
	if _, err := v.Save(ctxT(t), snapshot("v", vb.Epoch, 4, "real")); err != nil {
		t.Fatal(err)
	}
	evil := newAttacker(t, nil)
	sink := replyTo{name: "evil#00000000", addr: evil.ml.LocalNode().Address()}
	in := a.Stats().MessagesIn
	evil.send(a, forgedPush(t, sink, "v", math.MaxUint64, 1))
	evil.send(a, forgedPush(t, replyTo{name: v.Name(), addr: sink.addr}, "v", math.MaxUint64, 1))
	waitIn(t, a, in, 2)
	_ = v.Close()

	v2cfg := testConfig(t, "v", a.LocalAddr())
	v2, b2 := startNode(t, v2cfg)
	if b2.Epoch != vb.Epoch+1 {
		t.Fatalf("replacement epoch %d, want %d", b2.Epoch, vb.Epoch+1)
	}
	if b2.Snapshot == nil || b2.Snapshot.Version != 4 {
		t.Fatalf("replacement restored %+v, want the real version 4", b2.Snapshot)
	}
	if _, err := v2.Save(ctxT(t), snapshot("v", b2.Epoch, 5, "next")); err != nil {
		t.Fatalf("replacement cannot save: %v", err)
	}
}

// TestAttackGatherNoReflectionNoLeak: a gather request with a reply address
// of the attacker's choosing gets nothing sent there (before: the node
// connected to any host:port given and sent the snapshot, up to 16 MiB),
// and a member asking for another node's snapshot gets none.
func TestAttackGatherNoReflectionNoLeak(t *testing.T) {
	a, _ := startNode(t, testConfig(t, "a"))
	v, vb := startNode(t, testConfig(t, "v", a.LocalAddr()))
	m, mb := startNode(t, testConfig(t, "m", a.LocalAddr()))
	waitFor(t, "all listed", func() bool { return hasMember(a, "v", vb.Epoch) && hasMember(a, "m", mb.Epoch) })
	if _, err := v.Save(ctxT(t), snapshot("v", vb.Epoch, 2, "secret")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a holds v", func() bool { return a.store.replica("v").snap != nil })

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	var conns atomic.Int64
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			_ = c.Close()
		}
	}()
	evil := newAttacker(t, nil)
	in := a.Stats().MessagesIn
	for _, name := range []string{"x#1", m.Name(), v.Name()} {
		evil.send(a, (&gatherMsg{req: 9, from: replyTo{name: name, addr: lis.Addr().String()}, nodeID: "v", want: true}).encode())
	}
	waitIn(t, a, in, 3)
	time.Sleep(300 * time.Millisecond)
	if n := conns.Load(); n != 0 {
		t.Errorf("the node connected %d times to the address a gather request named", n)
	}

	// A real member asking for another node's snapshot gets no bytes.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	raw, err := m.request(ctx, nodeFor(t, a), func(req uint64) []byte {
		return (&gatherMsg{req: req, from: m.replyTo(), nodeID: "v", want: true}).encode()
	})
	if err == nil {
		rep, derr := decodeGatherRep(raw, 1<<20)
		if derr == nil && len(rep.snapshot) > 0 {
			t.Errorf("member m read v's snapshot (%d bytes) from a", len(rep.snapshot))
		}
	}
}

// refusePoison is an application validator: a snapshot with a "poison"
// state does not decode (as a nil tally entry did in issue 14 §2).
func refusePoison(s *codec.Snapshot) error {
	if _, ok := s.States["poison"]; ok {
		return errors.New("state poison does not decode")
	}
	return nil
}

// TestRestoreFallsBackWhenValidationFails: the newest replica of v (on a)
// is poisoned; the replacement refuses it, restores the next-best one
// (from b), and never writes the poisoned one to its disk. A holder with
// the validator refuses the poisoned push and keeps the good replica.
func TestRestoreFallsBackWhenValidationFails(t *testing.T) {
	a, _ := startNode(t, testConfig(t, "a"))
	bcfg := testConfig(t, "b", a.LocalAddr())
	bcfg.ValidateSnapshot = refusePoison
	b, _ := startNode(t, bcfg)
	v, vb := startNode(t, testConfig(t, "v", a.LocalAddr()))
	waitFor(t, "v listed", func() bool { return hasMember(a, "v", vb.Epoch) && hasMember(b, "v", vb.Epoch) })
	if _, err := v.Save(ctxT(t), snapshot("v", vb.Epoch, 3, "good")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both hold v/3", func() bool {
		ha, hb := a.store.replica("v"), b.store.replica("v")
		return ha.snap != nil && ha.snap.Version == 3 && hb.snap != nil && hb.snap.Version == 3
	})
	poison := snapshot("v", vb.Epoch, 5, "bad")
	poison.States["poison"] = nil
	raw := encSnap(t, poison)
	if err := v.push(ctxT(t), nodeFor(t, a), poison, raw); err != nil {
		t.Fatalf("push to a (no validator): %v", err)
	}
	before := b.Stats().SnapshotRejects["invalid"]
	if err := v.push(ctxT(t), nodeFor(t, b), poison, raw); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Fatalf("push to b (validator) = %v, want rejected as invalid", err)
	}
	if got := b.Stats().SnapshotRejects["invalid"]; got != before+1 {
		t.Errorf("b counted %d invalid pushes, want %d", got, before+1)
	}
	if h := b.store.replica("v"); h.snap == nil || h.snap.Version != 3 {
		t.Fatalf("b's replica after a refused push: %+v", h.snap)
	}
	_ = v.Close()

	v2cfg := testConfig(t, "v", a.LocalAddr())
	v2cfg.ValidateSnapshot = refusePoison
	v2, boot := startNode(t, v2cfg)
	if boot.Snapshot == nil || boot.Snapshot.Version != 3 || boot.Source != "peer:b" {
		t.Fatalf("restored %+v from %q, want version 3 from peer:b", boot.Snapshot, boot.Source)
	}
	if n := v2.Stats().RestoreRefused; n != 1 {
		t.Errorf("RestoreRefused = %d, want 1", n)
	}
	disk, err := codec.DecodeSnapshot(mustRead(t, filepath.Join(v2cfg.DataDir, snapshotFile)), 1<<20)
	if err != nil || disk.Version != 3 {
		t.Fatalf("replacement's local snapshot: %+v, %v; want version 3", disk, err)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
