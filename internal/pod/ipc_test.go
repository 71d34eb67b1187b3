package pod

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// TestIPCStreamIDs: the IPC stream id is a bijection of (port, stream)
// over every port and the whole stream range's ends and the pods' two
// streams, never negative; the channel keeps its parameters and loses its
// endpoint; what cannot be mapped is refused.
func TestIPCStreamIDs(t *testing.T) {
	seen := map[int32][2]int{}
	for port := 1; port <= 65535; port++ {
		for _, s := range []int32{0, DataStream, AckStream, 1<<15 - 1} {
			id, err := ipcStreamID(port, s)
			if err != nil {
				t.Fatalf("port %d stream %d: %v", port, s, err)
			}
			if id < 0 {
				t.Fatalf("port %d stream %d: id %d negative", port, s, id)
			}
			if o, dup := seen[id]; dup {
				t.Fatalf("port %d stream %d: id %d also for %v", port, s, id, o)
			}
			seen[id] = [2]int{port, int(s)}
		}
	}
	for _, bad := range []struct {
		port   int
		stream int32
	}{{0, DataStream}, {65536, DataStream}, {-1, DataStream}, {80, -1}, {80, 1 << 15}} {
		if _, err := ipcStreamID(bad.port, bad.stream); err == nil {
			t.Errorf("port %d stream %d accepted", bad.port, bad.stream)
		}
	}
	ch, id, err := ipcChannel("aeron:udp?endpoint=127.0.0.1:4000|term-length=65536|linger=500ms", AckStream)
	if err != nil || ch != "aeron:ipc?term-length=65536|linger=500ms" || id != 4000<<15|AckStream {
		t.Errorf("got %q %d %v", ch, id, err)
	}
	if ch, id, err := ipcChannel("aeron:udp?endpoint=[::1]:7", DataStream); err != nil || ch != "aeron:ipc" || id != 7<<15|DataStream {
		t.Errorf("got %q %d %v", ch, id, err)
	}
	for _, bad := range []string{"aeron:ipc", "aeron:udp?mtu=1408", "aeron:udp?endpoint=h:0", "aeron:udp?endpoint=h",
		"aeron:udp?endpoint=h:1|endpoint=h:2", "aeron:udp?endpoint=h:99999", "udp?endpoint=h:1"} {
		if _, _, err := ipcChannel(bad, DataStream); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestAeronIPCConfig: --aeron-ipc is refused without --aeron-dir and with
// a data endpoint whose port is 0; AERON_IPC sets it.
func TestAeronIPCConfig(t *testing.T) {
	for _, c := range []struct{ dir, endpoint string }{{"", "127.0.0.1:4000"}, {"/tmp/x", "127.0.0.1:0"}} {
		cfg := baseConfig(t, Subscriber, "sub-1", c.endpoint)
		cfg.AeronDir, cfg.AeronIPC = c.dir, true
		if err := cfg.validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "aeron-ipc") {
			t.Errorf("%+v: err %v, want a config error naming --aeron-ipc", c, err)
		}
		cfg.AeronIPC = false
		if err := cfg.validate(); err != nil {
			t.Errorf("%+v without --aeron-ipc: %v", c, err)
		}
	}
	c, err := ParseFlags(Subscriber, []string{"--insecure", "--aeron-dir", "/tmp/x", "--data-endpoint", "127.0.0.1:4000"},
		env(map[string]string{"AERON_IPC": "true"}), nil)
	if err != nil || !c.AeronIPC {
		t.Errorf("AERON_IPC=true: %v, AeronIPC %v", err, c.AeronIPC)
	}
	if err := c.validate(); err != nil {
		t.Errorf("AERON_IPC=true with a dir and a port: %v", err)
	}
}

// TestPodsOverIPC: a publisher and two subscribers on one mediadriver
// process with --aeron-ipc (and channel parameters) exchange their streams
// exactly once, and the driver only ever created IPC publications.
func TestPodsOverIPC(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	bin := buildMediaDriver(t)
	dir := t.TempDir() + "/aeron"
	_, driverOut := runMediaDriverOut(t, bin, dir, "-v")
	pc := baseConfig(t, Publisher, "pub-1", freeUDP(t))
	pc.Beats, pc.Batch, pc.MinSubscribers = 300, 50, 2
	cfgs := []*Config{&pc}
	var scs [2]Config
	for i := range scs {
		scs[i] = baseConfig(t, Subscriber, []string{"sub-1", "sub-2"}[i], freeUDP(t))
		cfgs = append(cfgs, &scs[i])
	}
	for _, c := range cfgs {
		c.AeronDir, c.AeronIPC = dir, true
		c.ChannelParams = "mtu=1408"
	}
	pub := startPod(t, nil, pc, "pub")
	var subs []*testPod
	for i := range scs {
		scs[i].Join = []string{pub.p.GossipAddr()}
		subs = append(subs, startPod(t, nil, scs[i], scs[i].NodeID))
	}
	n := pc.Beats * uint64(pc.Batch)
	for _, sub := range subs {
		sub.finished(t, 120*time.Second)
		if r := Check(readFinal(t, sub.dir).Tally["pub-1"], n, nil); !r.OK() {
			t.Fatalf("check: %+v", r)
		}
	}
	out := driverOut()
	added := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "publication added") {
			added++
			if !strings.Contains(l, "aeron:ipc") || strings.Contains(l, "aeron:udp") {
				t.Errorf("not an IPC publication: %s", l)
			}
		}
	}
	// Data to each subscriber, acks from each.
	if added < 4 {
		t.Errorf("%d publications added, want at least 4:\n%s", added, out)
	}
}

// TestIPCTornAppend: why ipcNet's publications are exclusive. Publisher A
// claims room in its log and dies before writing it (simulated: its tail
// moves on, the frame stays unwritten, as when a SIGKILL lands between
// the claim and the length store). Then publisher B (A's replacement, or
// another pod) publishes on the same IPC stream. With exclusive
// publications B has a log of its own and the subscriber gets its message;
// with a shared one B's message sits behind A's hole, already in the log
// the subscriber reads, and a thousand polls do not deliver it.
func TestIPCTornAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	dir, _ := startMediaDriver(t)
	var nets [3]*aeronNet
	for i := range nets {
		n, err := newAeronNet(dir, fmt.Sprintf("torn-%d", i), 0, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		nets[i] = n
	}
	for i, exclusive := range []bool{true, false} {
		udp := channelURI(fmt.Sprintf("127.0.0.1:%d", 4000+i)) + dataTerm
		ipcCh, id, err := ipcChannel(udp, DataStream)
		if err != nil {
			t.Fatal(err)
		}
		add := func(n *aeronNet) *aeronPub {
			var p publication
			var err error
			if exclusive {
				p, err = ipcNet{n}.AddPublication(udp, DataStream)
			} else {
				p, err = n.addPublication(ipcCh, id, false)
			}
			if err != nil {
				t.Fatal(err)
			}
			return p.(*aeronPub)
		}
		sub, err := ipcNet{nets[2]}.AddSubscription(udp, DataStream)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		poll := func() {
			sub.Poll(func(m []byte, _ transport.Header) { got = append(got, string(m)) }, 10)
		}
		offer := func(p *aeronPub, msg string) {
			waitFor(t, "an offer to be taken", 30*time.Second, func() bool { _, err := p.Offer([]byte(msg)); return err == nil })
		}
		a := add(nets[0])
		offer(a, "a")
		waitFor(t, "a delivered", 30*time.Second, func() bool { poll(); return slices.Contains(got, "a") })

		m, err := cnc.MapFile(filepath.Join(dir, "publications", fmt.Sprintf("%d.logbuffer", a.p.OriginalRegistrationID())))
		if err != nil {
			t.Fatal(err)
		}
		l, err := cnc.OpenLog(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		cnc.AddInt64(l.Meta, cnc.LogOffTailCounters+8*int(l.ActiveTermCount()%cnc.PartitionCount), 64)
		_ = m.Close()

		b := add(nets[1])
		if shared := b.p.OriginalRegistrationID() == a.p.OriginalRegistrationID(); shared == exclusive {
			t.Fatalf("exclusive %v: B shares A's log: %v", exclusive, shared)
		}
		offer(b, "b")
		if exclusive {
			waitFor(t, "b delivered past A's torn log", 30*time.Second, func() bool { poll(); return slices.Contains(got, "b") })
		} else {
			for range 1000 {
				poll()
			}
			if slices.Contains(got, "b") {
				t.Error("shared log: b delivered past A's hole; the driver pads holes now, and exclusive publications may no longer be needed")
			}
		}
		_ = a.Close()
		_ = b.Close()
	}
}
