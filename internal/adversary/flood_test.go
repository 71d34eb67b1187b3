package adversary

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/cluster"
	"github.com/steadfast-pods/steadfast/internal/pod"
)

// Aeron frames the flood needs (Aeron wire protocol, little-endian): a
// SETUP (40 bytes, type 5) and a heartbeat (a 32-byte DATA header, type 1,
// length 0, begin and end flags).
func setupFrame(session, stream, termLen int32) []byte {
	b := make([]byte, 40)
	binary.LittleEndian.PutUint32(b[0:], 40)
	binary.LittleEndian.PutUint16(b[6:], 5)
	for i, v := range []int32{0, session, stream, 1, 1, termLen, 1408, 0} { // term offset … ttl
		binary.LittleEndian.PutUint32(b[8+4*i:], uint32(v))
	}
	return b
}

func heartbeatFrame(session, stream int32) []byte {
	b := make([]byte, 32)
	b[5] = 0xc0 // begin | end
	binary.LittleEndian.PutUint16(b[6:], 1)
	binary.LittleEndian.PutUint32(b[12:], uint32(session))
	binary.LittleEndian.PutUint32(b[16:], uint32(stream))
	binary.LittleEndian.PutUint32(b[20:], 1)
	return b
}

// flood sends SETUPs (and once a heartbeat, so the images go live) for
// sessions fake sessions announcing termLen-byte terms to addr, every 2 ms
// until stop.
func flood(t *testing.T, addr string, stream int32, sessions int, termLen int32, stop <-chan struct{}) *sync.WaitGroup {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer c.Close()
		for round := 0; ; round++ {
			for s := range int32(sessions) {
				_, _ = c.WriteToUDP(setupFrame(0x5e7000+s, stream, termLen), to)
				if round == 1 {
					_, _ = c.WriteToUDP(heartbeatFrame(0x5e7000+s, stream), to)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return &wg
}

// TestSetupFloodAtLivePods (issue 14 §4): while 64 fake sessions announcing
// 64 MiB terms flood the subscriber's data endpoint, the publisher is
// SIGKILLed and replaced (same node id, new ports, empty disk). The
// replacement must still get an image at the subscriber, the stream must
// end exactly once, and the subscriber's memory must stay bounded (before
// the transport's fix: the image slots filled, the stream stopped, RSS grew
// past 390 MB).
func TestSetupFloodAtLivePods(t *testing.T) {
	needBinaries(t)
	pr := startPair(t, true)
	stop := make(chan struct{})
	wg := flood(t, pr.sub.data, pod.DataStream, 64, 64<<20, stop)
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(500 * time.Millisecond)

	_ = pr.pub.cmd.Process.Signal(syscall.SIGKILL)
	<-pr.pub.done
	key := base64.StdEncoding.EncodeToString(pr.key)
	pub2 := startProc(t, "publisher", "publisher-1", "--beats", strconv.Itoa(beats), "--batch", strconv.Itoa(batch),
		"--rate", "1ms", "--min-subscribers", "1", "--cluster-key", key, "--join", pr.sub.gossip)

	var maxRSS, maxPending, rejected, evicted float64
	deadline := time.After(120 * time.Second)
	for !pr.sub.exited() {
		maxRSS = max(maxRSS, pr.sub.metric(t, "process_resident_memory_bytes"))
		maxPending = max(maxPending, pr.sub.metric(t, "steadfast_transport_pending_images"))
		rejected = max(rejected, pr.sub.metric(t, "steadfast_transport_rejected_setups_total"))
		evicted = max(evicted, pr.sub.metric(t, "steadfast_transport_evicted_images_total"))
		select {
		case <-deadline:
			t.Fatalf("subscriber did not finish under the flood (replacement publisher exited: %v)", pub2.exited())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if pr.sub.exitErr != nil {
		t.Fatalf("subscriber: %v", pr.sub.exitErr)
	}
	f := readFinal(t, pr.sub)
	if r := pod.Check(f.Tally["publisher-1"], pr.total, nil); !r.OK() {
		t.Fatalf("final: %+v", r)
	}
	t.Logf("subscriber under the flood: peak RSS %.0f MiB, pending images up to %v, SETUPs rejected %v, images evicted %v",
		maxRSS/(1<<20), maxPending, rejected, evicted)
	if maxPending+rejected+evicted == 0 {
		t.Fatal("the flood never reached the subscriber's transport")
	}
	if maxRSS > 300<<20 {
		t.Fatalf("subscriber RSS reached %.0f MiB under the flood", maxRSS/(1<<20))
	}
}

// TestRogueMemberWithoutKey (issue 14 §2, with a key): a process that
// joins as "subscriber-1" without the cluster key (the cluster package as
// a program on the same host would use it) cannot join: the real
// subscriber-1 is not fenced and the stream ends exactly once. (Without a
// key, membership is unauthenticated by design: see the README.)
func TestRogueMemberWithoutKey(t *testing.T) {
	needBinaries(t)
	pr := startPair(t, true)
	for _, wrongKey := range [][]byte{nil, []byte("not-the-cluster-key-32-bytes!!!!")} {
		cfg := cluster.DefaultLocalConfig()
		cfg.NodeID, cfg.Role, cfg.DataDir = "subscriber-1", cluster.RoleSubscriber, t.TempDir()
		cfg.DataEndpoint = "127.0.0.1:9"
		cfg.BindAddr, cfg.BindPort = "127.0.0.1", 0
		cfg.Seeds = []string{pr.pub.gossip, pr.sub.gossip}
		cfg.ClusterKey = wrongKey
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		rogue, err := cluster.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = rogue.Start(ctx)
		cancel()
		members := len(rogue.Members())
		_ = rogue.Close()
		if err == nil || members > 1 {
			t.Fatalf("rogue with key %q joined (%d members): %v", wrongKey, members, err)
		}
	}
	if v := pr.sub.metric(t, "steadfast_membership_fenced_total"); v > 0 {
		t.Fatalf("fenced members: %v", v)
	}
	select {
	case <-pr.sub.done:
	case <-time.After(90 * time.Second):
		t.Fatal("subscriber did not finish")
	}
	if pr.sub.exitErr != nil {
		t.Fatalf("subscriber: %v", pr.sub.exitErr)
	}
	f := readFinal(t, pr.sub)
	if r := pod.Check(f.Tally["publisher-1"], pr.total, nil); !r.OK() || f.Epoch != 1 {
		t.Fatalf("final: %+v, epoch %d", r, f.Epoch)
	}
}

func readFinal(t *testing.T, p *proc) pod.FinalState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, pod.FinalStateFile))
	if err != nil {
		t.Fatal(err)
	}
	var f pod.FinalState
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}
