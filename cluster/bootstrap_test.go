package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bootstrapping under an orchestrator (issue 12): seeds are DNS names that
// resolve only to tasks that run (or are ready), so at first nobody
// resolves. The nodes here bind distinct loopback addresses (127.0.0.x) on
// one port, as pods on one network do, and resolve their seeds through
// fakeDNS, which publishes a node only once its Start returned.

// fakeDNS maps names to addresses that can appear and go.
type fakeDNS struct {
	mu    sync.Mutex
	names map[string][]string // guarded by mu
	calls int                 // guarded by mu
}

func (d *fakeDNS) set(name string, ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.names == nil {
		d.names = map[string][]string{}
	}
	d.names[name] = ips
}

func (d *fakeDNS) add(name, ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.names == nil {
		d.names = map[string][]string{}
	}
	d.names[name] = append(d.names[name], ip)
}

func (d *fakeDNS) lookup(_ context.Context, host string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	ips := d.names[host]
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return append([]string(nil), ips...), nil
}

// syncBuf is a log sink safe for memberlist's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func podConfig(t testing.TB, id, ip string, port int, dns *fakeDNS, seeds ...string) Config {
	cfg := testConfig(t, id, seeds...)
	cfg.BindAddr, cfg.BindPort = ip, port
	cfg.LookupHost = dns.lookup
	cfg.JoinRetry, cfg.JoinRetryMax = 50*time.Millisecond, 200*time.Millisecond
	return cfg
}

// startAsync starts a node in the background; the result arrives on the
// returned channel. On success the node's IP is published under name.
func startAsync(t *testing.T, cfg Config, dns *fakeDNS, name string) (*Cluster, <-chan error) {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := c.Start(ctx)
		if err == nil && name != "" {
			dns.add(name, cfg.BindAddr)
		}
		done <- err
	}()
	return c, done
}

// TestJoinSeedResolvesLate: the only seed does not resolve for 600 ms. The
// node keeps retrying (re-resolving every time), logs each failure at info
// level with the seed and the reason, and joins once the name resolves.
func TestJoinSeedResolvesLate(t *testing.T) {
	port := freePort(t)
	dns := &fakeDNS{}
	a, _ := startNode(t, podConfig(t, "a", "127.0.0.1", port, dns))
	var logs syncBuf
	seed := fmt.Sprintf("seed.test:%d", port)
	bcfg := podConfig(t, "b", "127.0.0.2", port, dns, seed)
	bcfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node_id", "b")
	b, done := startAsync(t, bcfg, dns, "")
	time.Sleep(600 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Start returned before the seed resolved: %v", err)
	default:
	}
	dns.set("seed.test", "127.0.0.1")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a lists b", func() bool { return hasMember(a, "b", 1) })
	out := logs.String()
	if !strings.Contains(out, `"msg":"cluster: seed gives no address yet","node_id":"b","seed":"`+seed+`","reason":"lookup seed.test: no such host"`) {
		t.Errorf("no info line naming the seed and the reason:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if n := strings.Count(line, `"node_id"`); n > 1 {
			t.Errorf("node_id %d times in %s", n, line)
		}
		if strings.Contains(line, `\n\t*`) {
			t.Errorf("multi-line error in %s", line)
		}
	}
	if b.Stats().JoinAttempts < 3 {
		t.Errorf("join attempts %d, want several", b.Stats().JoinAttempts)
	}
}

// TestJoinErrorOnOneLine: a join that fails on every address reports one
// line, not memberlist's multierror list.
func TestJoinErrorOnOneLine(t *testing.T) {
	port := freePort(t)
	cfg := podConfig(t, "a", "127.0.0.1", 0, &fakeDNS{}, fmt.Sprintf("127.0.0.5:%d", port), fmt.Sprintf("127.0.0.6:%d", port))
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c.Start(ctx)
	if !errors.Is(err, ErrJoin) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Start = %q, want ErrJoin on one line", err)
	}
}

// TestAllStartAtOnceNoResolvableSeed: three pods start together; their seed
// name resolves to nobody until a pod is running. pod-0 may start alone
// after StartAloneAfter; the others join it as soon as it is published.
// One cluster of three forms.
func TestAllStartAtOnceNoResolvableSeed(t *testing.T) {
	port := freePort(t)
	dns := &fakeDNS{}
	seed := fmt.Sprintf("pods.test:%d", port)
	var nodes []*Cluster
	var dones []<-chan error
	for i := 0; i < 3; i++ {
		cfg := podConfig(t, fmt.Sprintf("pod-%d", i), fmt.Sprintf("127.0.0.%d", 11+i), port, dns, seed)
		if i == 0 {
			cfg.StartAloneAfter = 400 * time.Millisecond
		}
		c, done := startAsync(t, cfg, dns, "pods.test")
		nodes, dones = append(nodes, c), append(dones, done)
	}
	for i, d := range dones {
		if err := <-d; err != nil {
			t.Fatalf("pod-%d: %v", i, err)
		}
	}
	for _, c := range nodes {
		waitFor(t, c.Name()+" sees three", func() bool { return len(c.Members()) == 3 })
	}
}

// TestSplitStartMerges: two clusters form apart (each seed name resolves
// only to its own half) and both run an incarnation of node id "n" at
// epoch 1 that saved snapshots there. When the names resolve to everyone,
// the halves merge; exactly one "n" stays live, the other is fenced, its
// pushes are refused, and every holder ends with the survivor's snapshot.
func TestSplitStartMerges(t *testing.T) {
	port := freePort(t)
	dns := &fakeDNS{}
	seed := fmt.Sprintf("pods.test:%d", port)
	// Each half resolves the seed through its own view of DNS first.
	left, right := &fakeDNS{}, &fakeDNS{}
	merged := make(chan struct{})
	view := func(half *fakeDNS) func(context.Context, string) ([]string, error) {
		return func(ctx context.Context, host string) ([]string, error) {
			select {
			case <-merged:
				return dns.lookup(ctx, host)
			default:
				return half.lookup(ctx, host)
			}
		}
	}
	start := func(id, ip string, half *fakeDNS, alone bool) *Cluster {
		cfg := podConfig(t, id, ip, port, dns, seed)
		cfg.LookupHost = view(half)
		if alone {
			cfg.StartAloneAfter = 100 * time.Millisecond
		}
		c, done := startAsync(t, cfg, dns, "")
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		half.add("pods.test", ip)
		dns.add("pods.test", ip)
		return c
	}
	x := start("x-0", "127.0.0.21", left, true)
	nl := start("n", "127.0.0.22", left, false)
	y := start("y-0", "127.0.0.23", right, true)
	nr := start("n", "127.0.0.24", right, false)
	if nl.Epoch() != 1 || nr.Epoch() != 1 {
		t.Fatalf("epochs %d and %d, want both 1 (formed apart)", nl.Epoch(), nr.Epoch())
	}
	if len(x.Members()) != 2 || len(y.Members()) != 2 {
		t.Fatalf("halves: %d and %d members, want 2 and 2", len(x.Members()), len(y.Members()))
	}
	// Equal epochs: the higher name wins (see higher). The loser-to-be
	// saves a higher version in its half than the winner-to-be does.
	win, lose := nl, nr
	if nr.Name() > nl.Name() {
		win, lose = nr, nl
	}
	if _, err := win.Save(ctxT(t), snapshot("n", 1, 3, "winner")); err != nil {
		t.Fatal(err)
	}
	if _, err := lose.Save(ctxT(t), snapshot("n", 1, 9, "loser")); err != nil {
		t.Fatal(err)
	}

	close(merged)
	waitFor(t, "the loser fenced", func() bool { return lose.Err() != nil })
	if !errors.Is(lose.Err(), ErrFenced) || win.Err() != nil {
		t.Fatalf("loser's error %v, winner's %v", lose.Err(), win.Err())
	}
	for _, c := range []*Cluster{x, y, win} {
		waitFor(t, c.Name()+" sees the merged cluster", func() bool {
			ms := c.Members()
			return len(ms) == 3 && slicesContainsName(ms, win.Name())
		})
	}
	// The loser can no longer save; the survivor can, and its snapshot
	// replaces the rival's on every holder, whatever the versions.
	if _, err := lose.Save(ctxT(t), snapshot("n", 1, 20, "loser")); !errors.Is(err, ErrFenced) {
		t.Fatalf("loser Save = %v, want ErrFenced", err)
	}
	if err := lose.push(ctxT(t), nodeFor(t, x), snapshot("n", 1, 21, "loser"), encSnap(t, snapshot("n", 1, 21, "loser"))); err == nil {
		t.Fatal("a push from the fenced incarnation was accepted")
	}
	if _, err := win.Save(ctxT(t), snapshot("n", 1, 4, "winner")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "holders keep the winner's snapshot", func() bool {
		for _, c := range []*Cluster{x, y} {
			h := c.store.replica("n")
			if h.snap == nil || h.snap.Version != 4 || string(h.snap.States["worker"]) != "winner" {
				return false
			}
		}
		return true
	})
}

func slicesContainsName(ms []Member, name string) bool {
	for _, m := range ms {
		if m.Name == name {
			return true
		}
	}
	return false
}

// TestJoinNoAnswerLogged: a seed address nobody answers on. Every attempt
// is an info line naming the address, the reason (memberlist's multierror
// on one line) and the retry delay in seconds; after StartAloneAfter the
// node starts alone and says so.
func TestJoinNoAnswerLogged(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens there
	cfg := podConfig(t, "b", "127.0.0.1", freePort(t), &fakeDNS{}, dead)
	cfg.StartAloneAfter = 400 * time.Millisecond
	var logs syncBuf
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	_, done := startAsync(t, cfg, &fakeDNS{}, "")
	if err := <-done; err != nil {
		t.Fatalf("start alone after the wait: %v", err)
	}
	var tries, alone int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		switch m["msg"] {
		case "cluster: no seed answered":
			tries++
			reason, _ := m["reason"].(string)
			if m["level"] != "INFO" || fmt.Sprint(m["addresses"]) != "["+dead+"]" || !strings.Contains(reason, dead) ||
				strings.ContainsAny(reason, "\n\t") || m["attempt"] != float64(tries) || m["retry_in_seconds"] == nil {
				t.Errorf("retry line %s: want INFO, the address, a one-line reason naming it, attempt %d, retry_in_seconds", line, tries)
			}
		case "cluster: no seed answered within the start-alone wait, starting a new cluster":
			alone++
		}
	}
	if tries < 2 || alone != 1 {
		t.Fatalf("%d retry lines (want at least 2) and %d start-alone lines (want 1):\n%s", tries, alone, logs.String())
	}
}
