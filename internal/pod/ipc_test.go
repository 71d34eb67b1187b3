package pod

import (
	"errors"
	"strings"
	"testing"
	"time"
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
		select {
		case <-sub.done:
		case <-time.After(120 * time.Second):
			t.Fatal("subscriber did not finish")
		}
		if sub.err != nil {
			t.Fatalf("subscriber: %v", sub.err)
		}
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
