package pod

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/cluster"
)

func get(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func getStatus(t *testing.T, p *Pod) Status {
	t.Helper()
	code, body := get(t, "http://"+p.MetricsAddr()+"/status", "Accept", "application/json")
	if code != http.StatusOK {
		t.Fatalf("/status: %d %s", code, body)
	}
	var s Status
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("/status JSON: %v\n%s", err, body)
	}
	return s
}

func member(s Status, id string) *StatusMember {
	for i := range s.Members {
		if s.Members[i].NodeID == id {
			return &s.Members[i]
		}
	}
	return nil
}

func stream(s Status, peer string) *StatusStream {
	for i := range s.Streams {
		if s.Streams[i].Peer == peer {
			return &s.Streams[i]
		}
	}
	return nil
}

// TestStatusEndpoints runs a publisher and a subscriber (real memberlist,
// snapshots and replication, in-memory data plane) and reads their /livez,
// /readyz, /healthz and /status (JSON and text) while the stream runs.
func TestStatusEndpoints(t *testing.T) {
	mn := newMemNet()
	pc := baseConfig(t, Publisher, "pub-1", "127.0.0.1:1")
	pc.Beats, pc.Batch = 0, 8 // unbounded: the stream runs while we look
	pub := startPod(t, mn, pc, "pub")
	sc := baseConfig(t, Subscriber, "sub-1", "127.0.0.1:2")
	sc.Join = []string{pub.p.GossipAddr()}
	sub := startPod(t, mn, sc, "sub")

	for _, p := range []*Pod{pub.p, sub.p} {
		base := "http://" + p.MetricsAddr()
		if code, body := get(t, base+"/livez"); code != 200 || body != "ok\n" {
			t.Fatalf("%s /livez: %d %q", p.ID(), code, body)
		}
		waitFor(t, p.ID()+" ready", 20*time.Second, func() bool {
			code, _ := get(t, base+"/readyz")
			return code == 200
		})
		if code, _ := get(t, base+"/healthz"); code != 200 {
			t.Fatalf("%s /healthz: %d", p.ID(), code)
		}
	}

	// The subscriber applies values, snapshots them and replicates the
	// snapshot to the publisher; the publisher sees the acks.
	var ss, ps Status
	waitFor(t, "replicas and streams in /status", 20*time.Second, func() bool {
		ss, ps = getStatus(t, sub.p), getStatus(t, pub.p)
		in, out := stream(ss, "pub-1"), stream(ps, "sub-1")
		return in != nil && in.Committed > 0 && out != nil && out.Acked > 0 &&
			ss.Snapshot != nil && slices.Contains(ss.Snapshot.Holders, "pub-1") &&
			slices.ContainsFunc(ps.Replicas, func(r StatusReplica) bool { return r.NodeID == "sub-1" })
	})
	if ss.NodeID != "sub-1" || ss.Role != "subscriber" || ss.Phase != PhaseReady || !ss.Ready || ss.Epoch == 0 {
		t.Fatalf("subscriber status header: %+v", ss)
	}
	for _, s := range []Status{ss, ps} {
		if len(s.Members) != 2 {
			t.Fatalf("%s sees %d members, want 2: %+v", s.NodeID, len(s.Members), s.Members)
		}
		self := member(s, s.NodeID)
		if self == nil || !self.Self || self.State != cluster.NodeLive || self.Epoch != s.Epoch || self.GossipAddr != s.GossipAddr {
			t.Fatalf("%s: self member %+v (status epoch %d gossip %s)", s.NodeID, self, s.Epoch, s.GossipAddr)
		}
	}
	if m := member(ss, "pub-1"); m == nil || m.Epoch != ps.Epoch || m.State != cluster.NodeLive || m.Role != "publisher" || m.MetricsAddr == "" {
		t.Fatalf("subscriber's view of the publisher: %+v (publisher epoch %d)", m, ps.Epoch)
	}
	for _, r := range ps.Replicas {
		if r.NodeID == "sub-1" && (r.Epoch != ss.Epoch || r.Version == 0 || r.Bytes == 0 || r.AgeSeconds < 0 || r.AgeSeconds > 30) {
			t.Fatalf("publisher's replica of sub-1: %+v", r)
		}
	}
	if in := stream(ss, "pub-1"); in.Direction != "in" || in.Epoch != ps.Epoch || in.Applied < in.Committed || in.Count == 0 {
		t.Fatalf("subscriber stream: %+v", in)
	}
	if out := stream(ps, "sub-1"); out.Direction != "out" || out.Epoch != ss.Epoch || out.Breaker == "" {
		t.Fatalf("publisher stream: %+v", out)
	}
	if ps.Publisher == nil || ps.Publisher.LastSeq == 0 || ps.Subscriber != nil || ss.Subscriber == nil {
		t.Fatalf("role sections: publisher %+v, subscriber %+v", ps.Publisher, ss.Subscriber)
	}

	// Plain text for curl (Accept: */*) and ?format=.
	for _, q := range []struct{ url, accept string }{{"/status", "*/*"}, {"/status?format=text", "application/json"}} {
		code, body := get(t, "http://"+sub.p.MetricsAddr()+q.url, "Accept", q.accept)
		if code != 200 || !strings.Contains(body, "members (2)") || !strings.Contains(body, "pub-1") ||
			!strings.Contains(body, "held by pub-1") || strings.HasPrefix(body, "{") {
			t.Fatalf("text status (%s, Accept %s): %d\n%s", q.url, q.accept, code, body)
		}
	}
	if _, body := get(t, "http://"+pub.p.MetricsAddr()+"/status?format=json"); !strings.HasPrefix(body, "{") {
		t.Fatalf("?format=json gave %q", body)
	}
	if m := scrape(t, pub.p); !strings.Contains(m, "steadfast_build_info{") {
		t.Fatal("no steadfast_build_info in /metrics")
	}
	// Duration histograms: one restore per incarnation, snapshot saves and
	// replication round trips (the subscriber pushes to the publisher).
	m := scrape(t, sub.p)
	for _, re := range []string{`steadfast_restore_seconds_count 1\n`, `steadfast_snapshot_duration_seconds_count [1-9]`,
		`steadfast_replication_round_trip_seconds_count [1-9]`, `steadfast_replication_round_trip_seconds_bucket\{le="0.0005"\} \d+`} {
		if !regexp.MustCompile(re).MatchString(m) {
			t.Errorf("subscriber /metrics: no match for %s", re)
		}
	}
}

// TestReadyzWhileJoining: a pod whose seed does not answer is alive but
// not ready, and says why.
func TestReadyzWhileJoining(t *testing.T) {
	mn := newMemNet()
	dead, err := net.ListenPacket("udp", "127.0.0.1:0") // bound, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	sc := baseConfig(t, Subscriber, "sub-1", "127.0.0.1:2")
	sc.Join = []string{dead.LocalAddr().String()}
	sub := startPod(t, mn, sc, "sub")
	base := "http://" + sub.p.MetricsAddr()
	waitFor(t, "/livez", 5*time.Second, func() bool { c, _ := get(t, base+"/livez"); return c == 200 })
	for range 3 {
		code, body := get(t, base+"/readyz")
		if code != http.StatusServiceUnavailable || body != "not ready: joining\n" {
			t.Fatalf("/readyz while joining: %d %q", code, body)
		}
		if s := getStatus(t, sub.p); s.Phase != PhaseJoining || s.Ready || s.Snapshot != nil {
			t.Fatalf("/status while joining: %+v", s)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestHelperPodProcess is not a test: run by TestHTTPIdleConnections as a
// child process (the real transport, memberlist and HTTP server), it runs
// a subscriber pod with a low file descriptor limit.
func TestHelperPodProcess(t *testing.T) {
	args := os.Getenv("STEADFAST_HELPER_POD_ARGS")
	if args == "" {
		t.Skip("helper process for TestHTTPIdleConnections")
	}
	lim := syscall.Rlimit{Cur: 256, Max: 256}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		os.Exit(3)
	}
	os.Exit(Main(Subscriber, strings.Fields(args), func(string) string { return "" }, os.Stdout, os.Stderr))
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func openFDs(t *testing.T, pid int) int {
	t.Helper()
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestHTTPIdleConnections opens 3,000 keep-alive connections to a real
// pod process limited to 256 file descriptors, makes one request on each
// and leaves them idle: the pod keeps its descriptors bounded, a new
// request is still answered at once, and the pod keeps running.
func TestHTTPIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("real process and 3,000 connections; skipped with -short")
	}
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc")
	}
	dir := t.TempDir()
	mport := freeTCPPort(t)
	metrics := "127.0.0.1:" + strconv.Itoa(mport)
	args := fmt.Sprintf("--node-id sub-1 --data-dir %s --bind 127.0.0.1:%d --data-endpoint 127.0.0.1:%d --metrics-addr %s --membership local --insecure",
		filepath.Join(dir, "data"), freeTCPPort(t), freeTCPPort(t), metrics)
	if !flagKnown("insecure") {
		args = strings.TrimSuffix(args, " --insecure")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPodProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "STEADFAST_HELPER_POD_ARGS="+args)
	logf, err := os.Create(filepath.Join(dir, "pod.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("pod log:\n%s", b)
		}
	}()
	base := "http://" + metrics
	client := &http.Client{Timeout: 2 * time.Second}
	waitFor(t, "pod ready", 30*time.Second, func() bool {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	baseFDs := openFDs(t, cmd.Process.Pid)

	const conns = 3000
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	maxFDs, answered := 0, 0
	for i := range conns {
		c, err := net.DialTimeout("tcp", metrics, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		open = append(open, c)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /livez HTTP/1.1\r\nHost: pod\r\n\r\n"); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("request %d on a fresh connection: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 && !resp.Close {
			answered++ // kept alive: now idle on the server
		}
		if i%250 == 0 {
			maxFDs = max(maxFDs, openFDs(t, cmd.Process.Pid))
		}
	}
	maxFDs = max(maxFDs, openFDs(t, cmd.Process.Pid))
	if answered != conns {
		t.Fatalf("%d of %d keep-alive requests answered", answered, conns)
	}
	// A probe and a scrape on new connections are answered at once.
	for _, path := range []string{"/readyz", "/metrics", "/status"} {
		t0 := time.Now()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("%s with %d client connections open: %v", path, conns, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		t.Logf("%s answered in %v", path, time.Since(t0))
	}
	t.Logf("pod fds: %d at rest, at most %d seen with %d client connections (limit 256, cap %d)", baseFDs, maxFDs, conns, maxHTTPConns)
	if maxFDs > baseFDs+maxHTTPConns+8 {
		t.Fatalf("pod held %d fds (base %d): the connection cap did not hold", maxFDs, baseFDs)
	}
	b, _ := os.ReadFile(logf.Name())
	if strings.Contains(string(b), "too many open files") {
		t.Fatalf("pod ran out of file descriptors:\n%s", b)
	}
	select {
	case err := <-exited:
		t.Fatalf("pod exited: %v", err)
	default:
	}
}

// flagKnown reports whether the subscriber has flag name (flags land in
// parallel).
func flagKnown(name string) bool {
	_, err := ParseFlags(Subscriber, []string{"--" + name}, func(string) string { return "" }, io.Discard)
	return err == nil || !strings.Contains(err.Error(), "not defined")
}

// TestStatusStreamNamesLostValues: /status calls values the publisher no
// longer had "lost", as its text form (LOST) and the metric
// (steadfast_logger_lost_values) do; the JSON said "skipped".
func TestStatusStreamNamesLostValues(t *testing.T) {
	b, err := json.Marshal(StatusStream{Peer: "pub-1", Direction: "in", Dead: 2, Lost: 3})
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.Contains(s, `"dead_lettered":2`) || !strings.Contains(s, `"lost":3`) || strings.Contains(s, "skipped") {
		t.Fatalf("status stream JSON %s, want dead_lettered 2 and lost 3", s)
	}
}
