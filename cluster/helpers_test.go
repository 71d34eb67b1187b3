package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/steadfast-pods/steadfast/codec"
)

// testLogger logs to the test at warn level (or debug with CLUSTER_DEBUG=1).
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("CLUSTER_DEBUG") != "" {
		level = slog.LevelDebug
	}
	w := &tWriter{t: t}
	t.Cleanup(func() { // memberlist's goroutines may log after Shutdown
		w.mu.Lock()
		w.off = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type tWriter struct {
	t   testing.TB
	mu  sync.Mutex
	off bool // guarded by mu
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.off {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func testConfig(t testing.TB, id string, seeds ...string) Config {
	cfg := DefaultLocalConfig()
	cfg.NodeID = id
	cfg.Role = RoleSubscriber
	cfg.DataDir = t.TempDir()
	cfg.DataEndpoint = "127.0.0.1:4" + fmt.Sprint(len(id))
	cfg.Seeds = seeds
	cfg.Logger = testLogger(t)
	return cfg
}

// startNode creates and starts a node and closes it at the end of the test.
func startNode(t testing.TB, cfg Config) (*Cluster, *Boot) {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := c.Start(ctx)
	if err != nil {
		t.Fatalf("Start(%s): %v", cfg.NodeID, err)
	}
	return c, b
}

// waitFor polls cond until it holds or the generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	deadline := t0.Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(t0)
}

// hasMember reports whether c's live view lists id at epoch.
func hasMember(c *Cluster, id string, epoch uint64) bool {
	for _, m := range c.Members() {
		if m.NodeID == id && m.Epoch == epoch {
			return true
		}
	}
	return false
}

func snapshot(id string, epoch, version uint64, payload string) *codec.Snapshot {
	return &codec.Snapshot{
		NodeID: id, Epoch: epoch, Version: version, TakenUnixNano: time.Now().UnixNano(),
		States: map[string][]byte{"worker": []byte(payload), "logger": []byte("v" + fmt.Sprint(version))},
	}
}

func nodeToML(n *node) *memberlist.Node {
	return &memberlist.Node{Name: n.name, Addr: n.ip, Port: n.port}
}
