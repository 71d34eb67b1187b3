package pod

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// --pprof is off by default, takes only a loopback address, and serves
// the runtime's profiles there (and only there).
func TestPprof(t *testing.T) {
	for _, bad := range []string{"0.0.0.0:6060", ":6060", "10.1.2.3:6060", "example.com:6060", "127.0.0.1"} {
		if _, err := ParseFlags(Subscriber, []string{"--pprof", bad}, env(nil), nil); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "pprof") {
			t.Errorf("--pprof %s: %v", bad, err)
		}
	}
	for _, good := range []string{"127.0.0.1:6060", "[::1]:0", "localhost:6060", ""} {
		if c, err := ParseFlags(Subscriber, nil, env(map[string]string{"PPROF": good}), nil); err != nil || c.Pprof != good {
			t.Errorf("PPROF=%s: %q %v", good, c.Pprof, err)
		}
	}
	c := baseConfig(t, Subscriber, "sub-1", "127.0.0.1:2")
	c.Pprof = "0.0.0.0:0"
	if _, err := newPod(c, testLogger(t, "bad"), newMemNet().node()); !errors.Is(err, ErrConfig) {
		t.Fatalf("New with a non-loopback pprof address: %v", err)
	}

	dead, err := net.ListenPacket("udp", "127.0.0.1:0") // a seed that never answers: Run serves HTTP while it joins
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	mn := newMemNet()
	c = baseConfig(t, Subscriber, "sub-1", "127.0.0.1:2")
	c.Join = []string{dead.LocalAddr().String()}
	c.Pprof = "127.0.0.1:0"
	sub := startPod(t, mn, c, "sub")
	base := "http://" + sub.p.prof.lis.Addr().String()
	waitFor(t, "/debug/pprof/", 5*time.Second, func() bool { code, _ := get(t, base+"/debug/pprof/"); return code == http.StatusOK })
	if code, body := get(t, base+"/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Fatalf("heap profile: %d %.80q", code, body)
	}
	if code, _ := get(t, "http://"+sub.p.MetricsAddr()+"/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("profiles on the metrics address: %d", code)
	}

	c = baseConfig(t, Subscriber, "sub-2", "127.0.0.1:3")
	c.Join = []string{dead.LocalAddr().String()}
	other := startPod(t, mn, c, "sub-2")
	if other.p.prof.lis != nil {
		t.Fatal("pprof served by default")
	}
}

// --memory-limit [GOMEMLIMIT]: Go's syntax, 48 MiB by default, off allowed,
// nonsense refused; the flag wins over the variable.
func TestMemoryLimitFlag(t *testing.T) {
	c, err := ParseFlags(Publisher, nil, env(nil), nil)
	if err != nil || c.MemoryLimit != DefaultMemoryLimit || DefaultMemoryLimit != 48<<20 {
		t.Fatalf("default: %d %v", c.MemoryLimit, err)
	}
	for in, want := range map[string]int64{"off": 0, "64MiB": 64 << 20, "1GiB": 1 << 30, "1048576": 1 << 20, "2048KiB": 2 << 20, "3145728B": 3 << 20} {
		c, err := ParseFlags(Subscriber, nil, env(map[string]string{"GOMEMLIMIT": in}), nil)
		if err != nil || c.MemoryLimit != want {
			t.Errorf("GOMEMLIMIT=%s: %d %v, want %d", in, c.MemoryLimit, err, want)
		}
		if got, _ := parseMemoryLimit(formatMemoryLimit(want)); got != want {
			t.Errorf("%d formats as %q, which reads as %d", want, formatMemoryLimit(want), got)
		}
	}
	if c, err := ParseFlags(Subscriber, []string{"--memory-limit", "32MiB"}, env(map[string]string{"GOMEMLIMIT": "off"}), nil); err != nil || c.MemoryLimit != 32<<20 {
		t.Errorf("flag over variable: %d %v", c.MemoryLimit, err)
	}
	for _, bad := range []string{"48MB", "-1", "1KiB", "0", "1.5GiB", "MiB", "9999999999TiB"} {
		if _, err := ParseFlags(Subscriber, []string{"--memory-limit", bad}, env(nil), nil); !errors.Is(err, ErrUsage) {
			t.Errorf("--memory-limit %s: %v", bad, err)
		}
	}
	c = DefaultConfig(Publisher)
	c.MemoryLimit = 1000
	if err := c.validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("validate accepted a 1000-byte limit: %v", err)
	}
}
