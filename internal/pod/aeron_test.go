package pod

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	dir = filepath.Join(t.TempDir(), "aeron")
	return dir, runMediaDriver(t, buildMediaDriver(t), dir)
}

func buildMediaDriver(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mediadriver")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/mediadriver").CombinedOutput(); err != nil {
		t.Fatalf("build mediadriver: %v\n%s", err, out)
	}
	return bin
}

// runMediaDriver runs the driver binary on dir until the test ends.
func runMediaDriver(t *testing.T, bin, dir string, args ...string) *exec.Cmd {
	cmd, _ := runMediaDriverOut(t, bin, dir, args...)
	return cmd
}

// runMediaDriverOut is runMediaDriver that also returns the driver's
// output so far (a file: the process writes it while the test reads).
func runMediaDriverOut(t *testing.T, bin, dir string, args ...string) (*exec.Cmd, func() string) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "mediadriver.out"))
	if err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, _ := os.ReadFile(out.Name())
		return string(b)
	}
	cmd := exec.Command(bin, append([]string{"--dir", dir, "--client-liveness-timeout", "2s"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("mediadriver (pid %d) output:\n%s", cmd.Process.Pid, read())
		}
		out.Close()
	})
	return cmd, read
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
			sub.finished(t, 60*time.Second)
			n := pc.Beats * uint64(pc.Batch)
			if r := Check(readFinal(t, sub.dir).Tally["pub-1"], n, nil); !r.OK() {
				t.Fatalf("check: %+v", r)
			}
		})
	}
}

// drivenPods is a publisher and a subscriber attached to one mediadriver
// process, with the stream under way (values applied, more to come: 6 s of
// beats at 2 ms).
type drivenPods struct {
	bin, dir  string
	timeout   time.Duration
	drv       *exec.Cmd
	driverOut func() string
	pc        Config
	pub, sub  *testPod
}

func startDrivenPods(t *testing.T, driverArgs ...string) *drivenPods {
	t.Helper()
	if testing.Short() {
		t.Skip("real processes")
	}
	d := &drivenPods{bin: buildMediaDriver(t), dir: filepath.Join(t.TempDir(), "aeron"), timeout: time.Second}
	d.drv, d.driverOut = runMediaDriverOut(t, d.bin, d.dir, append([]string{"--driver-timeout", d.timeout.String()}, driverArgs...)...)
	d.pc = baseConfig(t, Publisher, "pub-1", freeUDP(t))
	d.pc.Beats, d.pc.Batch = 3000, 20
	sc := baseConfig(t, Subscriber, "sub-1", freeUDP(t))
	for _, c := range []*Config{&d.pc, &sc} {
		c.AeronDir, c.AeronDriverTimeout = d.dir, d.timeout
	}
	d.pub = startPod(t, nil, d.pc, "pub")
	sc.Join = []string{d.pub.p.GossipAddr()}
	d.sub = startPod(t, nil, sc, "sub")
	waitFor(t, "values applied", 60*time.Second, func() bool { return d.sub.p.subSide.applied.Load() > 0 })
	return d
}

func (d *drivenPods) pods() []*testPod { return []*testPod{d.pub, d.sub} }

// waitLost waits until both pods report the driver lost, and checks they
// are still running and the stream is not over.
func (d *drivenPods) waitLost(t *testing.T) {
	t.Helper()
	waitFor(t, "both pods to report the driver lost", 60*time.Second, func() bool {
		for _, tp := range d.pods() {
			if st := tp.p.Status().MediaDriver; st == nil || st.Attached || st.Losses == 0 {
				return false
			}
		}
		return true
	})
	for _, tp := range d.pods() {
		select {
		case <-tp.done:
			t.Fatalf("%s stopped when its driver was lost: %v", tp.p.ID(), tp.err)
		default:
		}
	}
	if isClosed(d.sub.p.subSide.finished) {
		t.Fatal("the stream was complete before the driver was lost: nothing tested")
	}
}

// waitComplete waits for the subscriber to finish and checks the stream
// exactly once, and that each pod lost its driver and reattached (lower
// bounds: a loaded machine may add a false loss, a driver stalled past
// the timeout).
func (d *drivenPods) waitComplete(t *testing.T) {
	t.Helper()
	select {
	case <-d.sub.done:
	case <-time.After(120 * time.Second):
		t.Fatal("subscriber did not finish after the driver came back")
	}
	if d.sub.err != nil {
		t.Fatalf("subscriber: %v", d.sub.err)
	}
	if r := Check(readFinal(t, d.sub.dir).Tally["pub-1"], d.pc.Beats*uint64(d.pc.Batch), nil); !r.OK() {
		t.Fatalf("check: %+v", r)
	}
	for _, tp := range d.pods() {
		if st := tp.p.Status().MediaDriver; st.Losses < 1 || st.Reattaches < 1 {
			t.Errorf("%s: media driver status %+v, want a loss and a reattach", tp.p.ID(), st)
		}
	}
}

// TestPodRidesOutDriverLoss: the pods' mediadriver process is SIGKILLed in
// the middle of the stream. Both pods notice and report it (/status
// media_driver, its text form, metrics) and keep running; a new driver
// started on the same directory reclaims the dead one's files; both pods
// reattach by themselves and the stream completes exactly once. Nothing
// here is timed: the waits only bound a hang.
func TestPodRidesOutDriverLoss(t *testing.T) {
	d := startDrivenPods(t)
	if err := d.drv.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = d.drv.Wait()
	d.waitLost(t)
	for _, tp := range d.pods() {
		if m := scrape(t, tp.p); !strings.Contains(m, "steadfast_media_driver_attached 0") {
			t.Errorf("%s: metrics do not show the driver lost", tp.p.ID())
		}
		var txt bytes.Buffer
		if err := WriteStatusText(&txt, tp.p.Status()); err != nil || !strings.Contains(txt.String(), "media driver "+d.dir+"  LOST") {
			t.Errorf("%s: /status text does not show the driver lost: %v\n%s", tp.p.ID(), err, txt.String())
		}
	}
	// The same directory: the new driver reclaims the dead one's.
	drv2 := runMediaDriver(t, d.bin, d.dir, "--driver-timeout", d.timeout.String())
	d.waitComplete(t)
	for _, tp := range d.pods() {
		if pid := tp.p.Status().MediaDriver.Pid; pid != int64(drv2.Process.Pid) {
			t.Errorf("%s attached to driver pid %d, want the new one, %d", tp.p.ID(), pid, drv2.Process.Pid)
		}
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

// TestPodRidesOutDriverStall: the driver is frozen (SIGSTOP) past the
// pods' driver timeout, so they count it lost, and then resumed (SIGCONT):
// the pods reattach to the same driver and close their earlier clients on
// it (not timed out: the driver's client liveness timeout is a minute
// here), and the stream completes exactly once. This is what a loaded machine does to a live driver now
// and then.
func TestPodRidesOutDriverStall(t *testing.T) {
	d := startDrivenPods(t, "-v", "--client-liveness-timeout", "1m")
	if err := d.drv.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	d.waitLost(t)
	if err := d.drv.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	d.waitComplete(t)
	for _, tp := range d.pods() {
		if pid := tp.p.Status().MediaDriver.Pid; pid != int64(d.drv.Process.Pid) {
			t.Errorf("%s attached to driver pid %d, want the same one, %d", tp.p.ID(), pid, d.drv.Process.Pid)
		}
	}
	// Both earlier clients were closed by command, none timed out.
	out := d.driverOut()
	if closed := strings.Count(out, "client gone") - strings.Count(out, "timed_out=true"); closed < 2 || strings.Contains(out, "timed_out=true") {
		t.Errorf("the driver closed %d earlier clients by command, want 2 and no timeouts:\n%s", closed, out)
	}
}
