package pod

import (
	"bytes"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestChannelParams(t *testing.T) {
	for _, ok := range []string{"", "mtu=1408", "term-length=64k", "mtu=1408|term-length=16m", "term-length=1g|mtu=65504"} {
		if err := parseChannelParams(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"mtu", "mtu=", "=1408", "mtu=1400", "mtu=32", "mtu=99999", "term-length=100k", "term-length=32k",
		"term-length=2g", "mtu=1408|mtu=1408", "endpoint=1.2.3.4:5", "mtu=1408|", "|", "mtu=x", "mtu=-32", "term-length=9999999999g"} {
		if err := parseChannelParams(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, tc := range [][3]string{
		{"aeron:udp?endpoint=h:1", "mtu=1408|term-length=16m", "aeron:udp?endpoint=h:1|mtu=1408|term-length=16m"},
		{"aeron:udp?endpoint=h:1|term-length=65536", "mtu=1408|term-length=16m", "aeron:udp?endpoint=h:1|term-length=65536|mtu=1408"},
		{"aeron:ipc", "mtu=1408", "aeron:ipc?mtu=1408"},
	} {
		if got := withParams(tc[0], tc[1]); got != tc[2] {
			t.Errorf("withParams(%q, %q) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
	c := DefaultConfig(Subscriber)
	c.Insecure = true
	c.ChannelParams = "mtu=7"
	if err := c.validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("validate: %v", err)
	}
	if _, err := ParseFlags(Subscriber, []string{"--insecure", "--channel-params", "rcv-wnd=1m"}, func(string) string { return "" }, nil); err == nil {
		t.Error("--channel-params rcv-wnd=1m accepted")
	}
}

// startMediaDriver builds cmd/mediadriver into the test's temp dir (the
// build cache makes it a link) and runs it as a separate process on a
// fresh directory.
func startMediaDriver(t *testing.T) (dir string, cmd *exec.Cmd) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mediadriver")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/mediadriver").CombinedOutput(); err != nil {
		t.Fatalf("build mediadriver: %v\n%s", err, out)
	}
	dir = filepath.Join(t.TempDir(), "aeron")
	var out bytes.Buffer
	cmd = exec.Command(bin, "--dir", dir, "--client-liveness-timeout", "2s")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("mediadriver output:\n%s", out.String())
		}
	})
	return dir, cmd
}

// TestPodOnMediaDriver: a pod attached to a mediadriver process and a pod
// with its embedded driver exchange a stream (batches one way, acks and
// hellos the other), exactly once, with channel parameters on every
// channel; both ways round, with small and big messages.
func TestPodOnMediaDriver(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	// Big messages: 4096-value batches (about 12 KiB, more than the 8 KiB
	// a 64 KiB term holds) are what a publisher sends once it has fallen
	// behind on a loaded machine; a driver that laid out the subscriber's
	// image with the subscription's 64 KiB terms instead of the
	// publisher's dropped them, and the stream stalled for good.
	for _, tc := range []struct {
		name         string
		pubOnDrvr    bool
		beats, batch int
	}{{"subscriber-on-driver", false, 200, 50}, {"publisher-on-driver", true, 200, 50},
		{"subscriber-on-driver-big-messages", false, 5, 4096}, {"publisher-on-driver-big-messages", true, 5, 4096}} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := startMediaDriver(t)
			pc := baseConfig(t, Publisher, "pub-1", freeUDP(t))
			pc.Beats, pc.Batch = uint64(tc.beats), tc.batch
			pc.ChannelParams = "mtu=1408|term-length=64k"
			sc := baseConfig(t, Subscriber, "sub-1", freeUDP(t))
			sc.ChannelParams = pc.ChannelParams
			if tc.pubOnDrvr {
				pc.AeronDir = dir
			} else {
				sc.AeronDir = dir
			}
			pub := startPod(t, nil, pc, "pub")
			sc.Join = []string{pub.p.GossipAddr()}
			sub := startPod(t, nil, sc, "sub")
			select {
			case <-sub.done:
			case <-time.After(60 * time.Second):
				t.Fatal("subscriber did not finish")
			}
			if sub.err != nil {
				t.Fatalf("subscriber: %v", sub.err)
			}
			n := pc.Beats * uint64(pc.Batch)
			if r := Check(readFinal(t, sub.dir).Tally["pub-1"], n, nil); !r.OK() {
				t.Fatalf("check: %+v", r)
			}
		})
	}
}

// TestPodNoticesDriverLoss: SIGKILL the media driver under a running pod:
// Run returns ErrDriverLost within the driver timeout (plus a margin).
func TestPodNoticesDriverLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	dir, drv := startMediaDriver(t)
	sc := baseConfig(t, Subscriber, "sub-1", freeUDP(t))
	sc.AeronDir = dir
	sub := startPod(t, nil, sc, "sub")
	waitFor(t, "pod ready", 20*time.Second, func() bool { return sub.p.ready.Load() })
	if err := drv.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.done:
	case <-time.After(aeronDriverTimeout + 10*time.Second):
		t.Fatal("pod did not notice the dead driver")
	}
	if !errors.Is(sub.err, ErrDriverLost) {
		t.Fatalf("Run: %v, want ErrDriverLost", sub.err)
	}
	// No driver: a new pod fails to start with a clear error, no hang.
	sc2 := baseConfig(t, Subscriber, "sub-2", freeUDP(t))
	sc2.AeronDir = filepath.Join(t.TempDir(), "none")
	if _, err := newPod(sc2, nil, nil); err == nil {
		t.Fatal("pod started without a driver")
	}
}

// freeUDP returns a loopback UDP address that was free a moment ago.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}
