package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// stalledPeer is a bare memberlist node on 127.0.0.1 that announces itself
// as a live Cluster node (node id, epoch 1) and swallows every message: a
// replica peer whose snapshot handling is stalled. It never acknowledges a
// push.
type stalledPeer struct {
	ml     *memberlist.Memberlist
	meta   []byte
	pushes chan struct{} // a push arrived
}

func (p *stalledPeer) NodeMeta(int) []byte             { return p.meta }
func (p *stalledPeer) GetBroadcasts(int, int) [][]byte { return nil }
func (p *stalledPeer) LocalState(bool) []byte          { return nil }
func (p *stalledPeer) MergeRemoteState([]byte, bool)   {}
func (p *stalledPeer) NotifyMsg(b []byte) {
	if t, err := msgType(b); err == nil && t == msgPush {
		select {
		case p.pushes <- struct{}{}:
		default:
		}
	}
}

func startStalledPeer(t *testing.T, id, seed string) *stalledPeer {
	t.Helper()
	p := &stalledPeer{
		meta:   meta{role: RoleSubscriber, epoch: 1, nodeID: id, dataEndpoint: "127.0.0.1:9"}.encode(),
		pushes: make(chan struct{}, 16),
	}
	mlc := *DefaultLocalConfig().Memberlist
	mlc.Name = id + "#stalled"
	mlc.BindAddr, mlc.BindPort = "127.0.0.1", 0
	mlc.AdvertiseAddr, mlc.AdvertisePort = "", 0
	mlc.Label = DefaultLabel
	mlc.LogOutput, mlc.Logger = nil, log.New(io.Discard, "", 0)
	mlc.Delegate = p
	ml, err := memberlist.Create(&mlc)
	if err != nil {
		t.Fatal(err)
	}
	p.ml = ml
	t.Cleanup(func() { _ = ml.Shutdown() })
	if _, err := ml.Join([]string{seed}); err != nil {
		t.Fatal(err)
	}
	return p
}

// rendezvousScore is rankedPeers' score of peer for owner.
func rendezvousScore(owner, peer string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(owner))
	h.Write([]byte{0})
	h.Write([]byte(peer))
	return h.Sum64()
}

// TestSaveFailsOverFromDeadPeer: Save pushes its snapshot to a peer that
// never acknowledges (its snapshot handling is stalled), and that peer
// then leaves the live view while the push is in flight: killed (declared
// dead), left gracefully, or superseded by a replacement with a higher
// epoch. Save must not wait for ReplicaTimeout: the push fails as soon as
// membership drops the peer, and Save pushes to another live peer instead,
// or, with none left, returns ErrNoReplica at once. Durations are logged
// (before the fix Save returned ErrNoReplica only after ReplicaTimeout,
// 10 s here).
func TestSaveFailsOverFromDeadPeer(t *testing.T) {
	// The stalled peer must be the one Save picks first (Replicas = 1).
	stalledID := ""
	for i := range 100 {
		id := fmt.Sprintf("x%d", i)
		if rendezvousScore("s", id) > rendezvousScore("s", "g") {
			stalledID = id
			break
		}
	}
	if stalledID == "" {
		t.Fatal("no node id outranks g")
	}
	for _, tc := range []struct {
		name     string
		goodPeer bool // a live peer to fail over to
		remove   func(t *testing.T, p *stalledPeer, s *Cluster)
	}{
		{"killed", true, func(t *testing.T, p *stalledPeer, _ *Cluster) { _ = p.ml.Shutdown() }},
		{"left", true, func(t *testing.T, p *stalledPeer, _ *Cluster) {
			_ = p.ml.Leave(time.Second)
			_ = p.ml.Shutdown()
		}},
		{"superseded", true, func(t *testing.T, _ *stalledPeer, s *Cluster) {
			// The zombie keeps running; its replacement fences it.
			startNode(t, testConfig(t, stalledID, s.LocalAddr()))
		}},
		{"killed-no-other-peer", false, func(t *testing.T, p *stalledPeer, _ *Cluster) { _ = p.ml.Shutdown() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scfg := testConfig(t, "s")
			scfg.Replicas, scfg.MinAcks = 1, 1
			scfg.ReplicaTimeout = 10 * time.Second
			s, sb := startNode(t, scfg)
			if tc.goodPeer {
				startNode(t, testConfig(t, "g", s.LocalAddr()))
				waitFor(t, "g listed", func() bool { return hasMember(s, "g", 1) })
			}
			p := startStalledPeer(t, stalledID, s.LocalAddr())
			waitFor(t, "stalled peer listed", func() bool { return hasMember(s, stalledID, 1) })

			type saved struct {
				d   Durable
				err error
				at  time.Time
			}
			done := make(chan saved, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			t0 := time.Now()
			go func() {
				d, err := s.Save(ctx, snapshot("s", sb.Epoch, 1, "state"))
				done <- saved{d, err, time.Now()}
			}()
			select {
			case <-p.pushes:
			case r := <-done:
				t.Fatalf("Save returned before the stalled peer got the push: %+v, %v", r.d, r.err)
			case <-time.After(15 * time.Second):
				t.Fatal("the push never reached the stalled peer")
			}
			tRemove := time.Now()
			tc.remove(t, p, s)
			r := <-done
			t.Logf("%s: Save took %v (push reached the stalled peer after %v; peer removed → Save returned %v later); "+
				"replicas %v, err %v", tc.name, r.at.Sub(t0).Round(time.Millisecond),
				tRemove.Sub(t0).Round(time.Millisecond), r.at.Sub(tRemove).Round(time.Millisecond), r.d.Replicas, r.err)
			if !tc.goodPeer {
				if !errors.Is(r.err, ErrNoReplica) || !errors.Is(r.err, errPeerGone) {
					t.Fatalf("Save = %v, want ErrNoReplica for a peer that left the view", r.err)
				}
				return
			}
			if r.err != nil || len(r.d.Replicas) != 1 {
				t.Fatalf("Save = %+v, %v; want one replica on a live peer", r.d, r.err)
			}
			holder := r.d.Replicas[0]
			if holder != "g" && holder != stalledID {
				t.Fatalf("replica acknowledged by %q", holder)
			}
			if tc.name != "superseded" && holder != "g" {
				t.Fatalf("replica acknowledged by %q, want g", holder)
			}
		})
	}
}
