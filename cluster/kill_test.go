package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The kill tests run a node in a child process: the test binary re-executed
// with childEnv set, which runs runChild instead of the tests. The child
// starts a node, saves childSaves snapshots (each durable), prints
// "DURABLE <version>" after each and "READY <gossip addr>", then waits to be
// killed.
const (
	childEnv      = "CLUSTER_TEST_CHILD"
	childSaves    = 5
	childPayloadB = 256 << 10 // bytes of state per snapshot
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// childPayload is the deterministic state the child saves in version v.
func childPayload(v uint64) string {
	return strings.Repeat(fmt.Sprintf("state-%d;", v), childPayloadB/10)
}

func runChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	cfg := DefaultLocalConfig()
	if os.Getenv("CHILD_LAN") != "" {
		cfg = lanTestConfig()
	}
	cfg.NodeID = os.Getenv("CHILD_ID")
	cfg.Role = RoleSubscriber
	cfg.DataDir = os.Getenv("CHILD_DIR")
	cfg.DataEndpoint = "127.0.0.1:9"
	cfg.Seeds = strings.Split(os.Getenv("CHILD_SEEDS"), ",")
	if k := os.Getenv("CHILD_KEY"); k != "" {
		key, err := ParseKey(k)
		if err != nil {
			return fail(err)
		}
		cfg.ClusterKey = key
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := New(cfg)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	boot, err := c.Start(ctx)
	if err != nil {
		return fail(err)
	}
	if os.Getenv("CHILD_REPLACE") != "" {
		v := uint64(0)
		if boot.Snapshot != nil {
			v = boot.Snapshot.Version
			if string(boot.Snapshot.States["worker"]) != childPayload(v) {
				return fail(fmt.Errorf("restored state of version %d differs", v))
			}
		}
		fmt.Printf("RESTORED %d %d %s\n", v, boot.Epoch, boot.Source)
		fmt.Printf("READY %s\n", c.LocalAddr())
		select {}
	}
	// Wait until both peers list us, so that there are two replica holders.
	for len(c.Members()) < 3 {
		if ctx.Err() != nil {
			return fail(fmt.Errorf("peers never listed: %v", c.Members()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for v := uint64(1); v <= childSaves; v++ {
		snap := snapshot(cfg.NodeID, boot.Epoch, v, childPayload(v))
		if _, err := c.Save(ctx, snap); err != nil {
			return fail(err)
		}
		fmt.Printf("DURABLE %d\n", v)
	}
	fmt.Printf("READY %s\n", c.LocalAddr())
	select {} // until SIGKILL
}

// lanTestConfig is DefaultConfig (memberlist's DefaultLANConfig timings) on
// 127.0.0.1 with a free port.
func lanTestConfig() Config {
	c := DefaultConfig()
	c.BindAddr = "127.0.0.1"
	c.BindPort = 0
	return c
}

// child is a node running in a child process.
type child struct {
	cmd      *exec.Cmd
	restored string    // "version epoch source" of a replacement
	restAt   time.Time // when the RESTORED line was read
	durable  uint64    // last version reported durable
	addr     string
	stderr   *strings.Builder
	waited   chan struct{}
}

func startChild(t testing.TB, id, dir string, seeds []string, lan, replace bool, key []byte) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "CHILD_ID="+id, "CHILD_DIR="+dir,
		"CHILD_SEEDS="+strings.Join(seeds, ","))
	if lan {
		cmd.Env = append(cmd.Env, "CHILD_LAN=1")
	}
	if replace {
		cmd.Env = append(cmd.Env, "CHILD_REPLACE=1")
	}
	if key != nil {
		cmd.Env = append(cmd.Env, "CHILD_KEY="+base64.StdEncoding.EncodeToString(key))
	}
	ch := &child{cmd: cmd, stderr: &strings.Builder{}, waited: make(chan struct{})}
	var mu sync.Mutex
	cmd.Stderr = lockedWriter{&mu, ch.stderr}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-ch.waited
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_ = cmd.Wait()
		close(ch.waited)
	}()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("child %s exited early: %s", id, ch.stderr.String())
			}
			if v, ok := strings.CutPrefix(l, "DURABLE "); ok {
				ch.durable, _ = strconv.ParseUint(v, 10, 64)
			}
			if r, ok := strings.CutPrefix(l, "RESTORED "); ok {
				ch.restored, ch.restAt = r, time.Now()
			}
			if a, ok := strings.CutPrefix(l, "READY "); ok {
				ch.addr = a
				go func() { // drain
					for range lines {
					}
				}()
				return ch
			}
		case <-deadline:
			t.Fatalf("child %s not ready", id)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// kill sends SIGKILL and waits until the process is gone.
func (c *child) kill(t testing.TB) time.Time {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	<-c.waited
	return at
}

// rejoinTimes are measured from the SIGKILL.
type rejoinTimes struct {
	restored time.Duration // replacement's Start returned with the snapshot
	accepted time.Duration // every survivor lists the replacement
	dead     time.Duration // every survivor has dropped the old incarnation
}

// killAndReplace runs the scenario: survivors s1, s2 in this process, node
// "x" in a child that saves snapshots; SIGKILL x; start a replacement "x"
// with an empty data dir and a new port; check it restores exactly the
// newest durable snapshot and that both survivors accept it.
// scenario selects a variant of killAndReplace.
type scenario struct {
	name     string
	lan      bool // DefaultConfig (LAN timings) instead of DefaultLocalConfig
	proc     bool // the replacement is a new process too
	samePort bool // the replacement binds the killed node's port
	key      bool // gossip encryption on every node
}

func killAndReplace(t testing.TB, sc scenario) rejoinTimes {
	lan, proc, samePort := sc.lan, sc.proc, sc.samePort
	var key []byte
	if sc.key {
		key = bytes.Repeat([]byte{7}, 32)
	}
	t.Helper()
	mk := func(id string, seeds ...string) Config {
		cfg := testConfig(t, id, seeds...)
		if lan {
			l := lanTestConfig()
			l.NodeID, l.Role, l.DataDir, l.DataEndpoint, l.Seeds, l.Logger = cfg.NodeID, cfg.Role, cfg.DataDir, cfg.DataEndpoint, cfg.Seeds, cfg.Logger
			cfg = l
		}
		cfg.ClusterKey = key
		return cfg
	}
	s1, _ := startNode(t, mk("s1"))
	s2, _ := startNode(t, mk("s2", s1.LocalAddr()))
	x := startChild(t, "x", t.TempDir(), []string{s1.LocalAddr()}, lan, false, key)
	if x.durable != childSaves {
		t.Fatalf("child reported durable version %d, want %d", x.durable, childSaves)
	}
	oldName := ""
	// x's announcement reaches s1 by push/pull or, on a loaded machine
	// where that timed out, by gossip a little later.
	waitFor(t, "s1 lists x", func() bool {
		for _, m := range s1.Members() {
			if m.NodeID == "x" {
				oldName = m.Name
			}
		}
		return oldName != ""
	})

	killed := x.kill(t)
	var times rejoinTimes
	var rName, rAddr string
	if proc {
		// The replacement is a new process too: the time includes its start.
		r := startChild(t, "x", t.TempDir(), []string{s2.LocalAddr()}, lan, true, key)
		times.restored = r.restAt.Sub(killed)
		if want := fmt.Sprintf("%d 2 peer:s", childSaves); !strings.HasPrefix(r.restored, want) {
			t.Fatalf("replacement process restored %q, want %q*", r.restored, want)
		}
		rAddr = r.addr
	} else {
		cfg := mk("x", s2.LocalAddr()) // fresh t.TempDir: empty disk; port 0: new port
		if samePort {                  // as when a pod comes back on the same IP and port
			_, port, _ := net.SplitHostPort(x.addr)
			cfg.BindPort, _ = strconv.Atoi(port)
		}
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		boot, err := r.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		times.restored = time.Since(killed)
		if boot.Snapshot == nil || boot.Snapshot.Version != childSaves || boot.Snapshot.Epoch != 1 {
			t.Fatalf("restored %+v from %s, want version %d epoch 1", boot.Snapshot, boot.Source, childSaves)
		}
		if got, want := string(boot.Snapshot.States["worker"]), childPayload(childSaves); got != want {
			t.Fatalf("restored worker state of %d bytes differs from the saved one (%d bytes)", len(got), len(want))
		}
		if boot.Epoch != 2 || !strings.HasPrefix(boot.Source, "peer:s") {
			t.Fatalf("boot epoch %d source %q, want 2 from a peer", boot.Epoch, boot.Source)
		}
		defer func() {
			// The replacement saves with its new epoch; survivors take it.
			d, err := r.Save(ctx, snapshot("x", 2, 1, "after"))
			if err != nil || len(d.Replicas) == 0 {
				t.Fatalf("replacement Save = %+v, %v", d, err)
			}
		}()
		rName, rAddr = r.Name(), r.LocalAddr()
	}
	accepted := func(s *Cluster) bool {
		for _, m := range s.Members() {
			if m.NodeID == "x" {
				return m.Epoch == 2 && m.GossipAddr == rAddr && (rName == "" || m.Name == rName)
			}
		}
		return false
	}
	waitFor(t, "survivors accept the replacement", func() bool { return accepted(s1) && accepted(s2) })
	times.accepted = time.Since(killed)
	for _, s := range []*Cluster{s1, s2} {
		for _, m := range s.Members() {
			if m.Name == oldName {
				t.Fatalf("%s still lists the killed incarnation %s", s.Name(), oldName)
			}
		}
	}
	gone := func(s *Cluster) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.nodes[oldName] == nil
	}
	waitFor(t, "memberlist declares the old incarnation dead", func() bool { return gone(s1) && gone(s2) })
	times.dead = time.Since(killed)
	return times
}

// TestKillAndReplace runs the kill/replace scenario with the test config and
// with DefaultConfig (LAN timings), once each, and logs the times. For
// medians run, e.g.:
//
//	REJOIN_RUNS=7 go test -count=1 -run TestKillAndReplace -v ./cluster
func TestKillAndReplace(t *testing.T) {
	runs := 1
	if v, err := strconv.Atoi(os.Getenv("REJOIN_RUNS")); err == nil && v > 0 {
		runs = v
	}
	for _, sc := range []scenario{
		{name: "test"}, {name: "lan", lan: true},
		{name: "test-process", proc: true}, {name: "lan-process", lan: true, proc: true},
		{name: "test-same-port", samePort: true}, {name: "test-encrypted", proc: true, key: true},
	} {
		name := sc.name
		var restored, accepted, dead []time.Duration
		for i := range runs {
			t.Run(fmt.Sprintf("%s/%d", name, i), func(t *testing.T) {
				tm := killAndReplace(t, sc)
				t.Logf("%s config: kill → restored %v, → accepted by every peer %v, → old declared dead %v",
					name, tm.restored, tm.accepted, tm.dead)
				restored = append(restored, tm.restored)
				accepted = append(accepted, tm.accepted)
				dead = append(dead, tm.dead)
			})
		}
		if len(restored) == runs {
			t.Logf("%s config, median of %d: kill → restored %v, → accepted by every peer %v, → old declared dead %v",
				name, runs, median(restored), median(accepted), median(dead))
		}
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
