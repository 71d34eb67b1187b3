package deploytest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Without a Docker engine, replace-node.sh and chaos.sh run against a fake
// `docker` on PATH: it keeps each service's container id in a state dir,
// logs every call, reports "starting" then "healthy" for a new container,
// and maps each service's metrics port to an httptest server that serves
// what the test wants that pod to report.
const fakeDocker = `#!/usr/bin/env bash
set -euo pipefail
state=${FAKE_DOCKER_STATE:?}
echo "$*" >>"$state/calls"
if [[ $1 == inspect && $3 == '{{.State.StartedAt}}' ]]; then
  date -u +%Y-%m-%dT%H:%M:%S.%NZ
  exit 0
fi
if [[ $1 == kill || $1 == rm ]]; then
  id=${*: -1}
  for f in "$state"/id-*; do
    [[ $(cat "$f") == "$id" ]] || continue
    [[ $1 == rm ]] && rm -f "$f"
    exit 0
  done
  echo "fake docker: no container $id" >&2
  exit 1
fi
if [[ $1 == inspect ]]; then
  id=${*: -1}
  n=$(cat "$state/inspect-$id" 2>/dev/null || echo 0)
  echo $((n + 1)) >"$state/inspect-$id"
  if ((n < 2)); then echo starting; else echo healthy; fi
  exit 0
fi
[[ $1 == compose ]] || { echo "fake docker: $1 unsupported" >&2; exit 1; }
shift
case $1 in
  config) printf '%s\n' publisher subscriber-1 subscriber-2 ;;
  ps) cat "$state/id-${*: -1}" 2>/dev/null || true ;;
  kill) [[ -s "$state/id-${*: -1}" ]] || { echo "no container" >&2; exit 1; } ;;
  rm) ;; # compose rm without -s: no stopped containers here
  up)
    svc=${*: -1}
    n=$(cat "$state/seq" 2>/dev/null || echo 0)
    echo $((n + 1)) >"$state/seq"
    printf 'c0ffee%06d%s\n' $((n + 1)) "$svc" >"$state/id-$svc"
    ;;
  port) cat "$state/port-$2" ;;
  *) echo "fake docker: compose $1 unsupported" >&2; exit 1 ;;
esac
`

// fakePod serves /metrics for one service; the body can be changed.
type fakePod struct {
	mu   sync.Mutex
	body string
	srv  *httptest.Server
}

func (p *fakePod) set(body string) {
	p.mu.Lock()
	p.body = body
	p.mu.Unlock()
}

type fakeCluster struct {
	state string
	env   []string
	pods  map[string]*fakePod
}

func newFakeCluster(t *testing.T) *fakeCluster {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("skipped: the scripts read /metrics with curl, which is not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	state := filepath.Join(dir, "state")
	for _, d := range []string{bin, state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(fakeDocker), 0o755); err != nil {
		t.Fatal(err)
	}
	fc := &fakeCluster{state: state, pods: map[string]*fakePod{}}
	for _, svc := range []string{"publisher", "subscriber-1", "subscriber-2"} {
		p := &fakePod{}
		p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.mu.Lock()
			defer p.mu.Unlock()
			fmt.Fprint(w, p.body)
		}))
		t.Cleanup(p.srv.Close)
		fc.pods[svc] = p
		host, port, _ := net.SplitHostPort(p.srv.Listener.Addr().String())
		if err := os.WriteFile(filepath.Join(state, "port-"+svc), []byte(host+":"+port+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// A running container to start with.
		if err := os.WriteFile(filepath.Join(state, "id-"+svc), []byte("0ld"+svc+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fc.env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FAKE_DOCKER_STATE="+state, "TIMEOUT=20")
	return fc
}

func (fc *fakeCluster) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fc.state, "calls"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (fc *fakeCluster) run(t *testing.T, script string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot(t), "scripts", script)}, args...)...)
	cmd.Env = fc.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// podMetrics renders the metrics of a pod: its node id and restore source,
// and for a subscriber a tally of the values 1..last from publisher-1 (with
// extra values applied once more), for the publisher its last seq.
func podMetrics(nodeID, source string, last uint64, extra ...uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "steadfast_info{node_id=%q,role=\"x\"} 1\n", nodeID)
	fmt.Fprintf(&b, "steadfast_restore_source{source=%q} 1\n", source)
	if strings.HasPrefix(nodeID, "publisher") {
		fmt.Fprintf(&b, "steadfast_publisher_last_seq %d\nsteadfast_acks_received_total 3\n", last)
		return b.String()
	}
	var values []uint64
	for v := uint64(1); v <= last; v++ {
		values = append(values, v)
	}
	b.WriteString(expoTally("publisher-1", append(values, extra...)))
	fmt.Fprintf(&b, "steadfast_duplicates_dropped_total 12\nsteadfast_values_processed_total 5\n")
	return b.String()
}

func TestReplaceNodeScript(t *testing.T) {
	fc := newFakeCluster(t)
	fc.pods["subscriber-1"].set(podMetrics("subscriber-1", "peer:subscriber-2", 100))
	out, err := fc.run(t, "replace-node.sh", "subscriber-1")
	if err != nil {
		t.Fatalf("replace-node.sh: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`replace-node: subscriber-1 replaced in \d+\.\d{3}s \(ready after \d+\.\d{3}s, delivering after \d+\.\d{3}s, healthy after \d+\.\d{3}s\), restore source peer:subscriber-2`).MatchString(out) {
		t.Errorf("no summary line:\n%s", out)
	}
	// kill -9, remove, fresh container for the same service, then health.
	var seq []string
	for _, c := range fc.calls(t) {
		for _, verb := range []string{"kill -s SIGKILL 0ldsubscriber-1", "rm -f 0ldsubscriber-1", "compose up -d --no-deps --no-build subscriber-1", "inspect"} {
			if strings.HasPrefix(c, verb) && (len(seq) == 0 || seq[len(seq)-1] != verb) {
				seq = append(seq, verb)
			}
		}
	}
	want := []string{"inspect", "kill -s SIGKILL 0ldsubscriber-1", "rm -f 0ldsubscriber-1", "compose up -d --no-deps --no-build subscriber-1", "inspect"}
	if strings.Join(seq, "|") != strings.Join(want, "|") {
		t.Errorf("docker calls in order %q, want %q", seq, want)
	}

	// A replacement that did not get its state from a peer is a failure.
	fc.pods["subscriber-2"].set(podMetrics("subscriber-2", "none", 0))
	out, err = fc.run(t, "replace-node.sh", "subscriber-2")
	if err == nil || !strings.Contains(out, "restored from 'none', not from a peer") {
		t.Errorf("replace-node.sh accepted a restore from none (err %v):\n%s", err, out)
	}
	if out, err := fc.run(t, "replace-node.sh", "nosuch"); err == nil || !strings.Contains(out, "no service nosuch") {
		t.Errorf("replace-node.sh accepted an unknown service (err %v):\n%s", err, out)
	}
}

func TestChaosScript(t *testing.T) {
	fc := newFakeCluster(t)
	set := func(extra ...uint64) {
		fc.pods["publisher"].set(podMetrics("publisher-1", "peer:subscriber-1", 3000))
		fc.pods["subscriber-1"].set(podMetrics("subscriber-1", "peer:subscriber-2", 3000, extra...))
		fc.pods["subscriber-2"].set(podMetrics("subscriber-2", "peer:publisher-1", 3016))
	}
	set()
	start := time.Now()
	out, err := fc.run(t, "chaos.sh", "2s")
	if err != nil {
		t.Fatalf("chaos.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		"chaos: publisher (publisher-1) had generated 3000 values",
		"chaos: subscriber-1: publisher publisher-1: values 1..3000 each applied exactly once",
		"chaos: subscriber-2: publisher publisher-1: values 1..3016 each applied exactly once",
		"chaos: ok: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`chaos: [1-9]\d* replacements, 0 failed`).MatchString(out) {
		t.Errorf("no replacement was made:\n%s", out)
	}
	t.Logf("chaos.sh 2s took %v", time.Since(start).Round(time.Millisecond))

	// A value applied twice at subscriber-1 must fail the run.
	set(1234)
	out, err = fc.run(t, "chaos.sh", "1s")
	if err == nil || !strings.Contains(out, "subscriber-1: publisher publisher-1: BROKEN") {
		t.Errorf("chaos.sh passed with a duplicated value (err %v):\n%s", err, out)
	}
}

// TestScriptsUsage: --help prints the script's documentation and exits 0;
// bad arguments print the usage and exit 2, before docker is called at all.
func TestScriptsUsage(t *testing.T) {
	fc := newFakeCluster(t)
	for _, tc := range []struct {
		script string
		args   []string
		code   int
		want   string
	}{
		{"chaos.sh", []string{"--help"}, 0, "replace random steadfast nodes for DURATION"},
		{"chaos.sh", []string{"-h"}, 0, "Exit 2 on bad usage"},
		{"chaos.sh", []string{"5x"}, 2, "chaos: bad duration '5x'"},
		{"chaos.sh", []string{"0s"}, 2, "chaos: bad duration '0s'"},
		{"chaos.sh", []string{"1.5m"}, 2, "chaos: bad duration"},
		{"chaos.sh", []string{"-3"}, 2, "chaos: bad duration"},
		{"chaos.sh", []string{"1m", "2m"}, 2, "usage: "},
		{"replace-node.sh", []string{"--help"}, 0, "kill a steadfast node container and replace it"},
		{"replace-node.sh", nil, 2, "usage: "},
		{"replace-node.sh", []string{"a", "b"}, 2, "usage: "},
		{"replace-node.sh", []string{"-x"}, 2, "usage: "},
		{"install-compose.sh", []string{"--help"}, 0, "make `docker compose` (Compose v2) available"},
		{"install-compose.sh", []string{"bogus"}, 2, "usage: "},
	} {
		out, err := fc.run(t, tc.script, tc.args...)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%s %q: exit %d, want %d with %q; output:\n%s", tc.script, tc.args, code, tc.code, tc.want, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(fc.state, "calls")); err == nil {
		t.Errorf("docker was called on --help or bad usage: %s", b)
	}
	// A bad TIMEOUT is refused before anything is done too.
	fc.env = append(fc.env, "TIMEOUT=soon")
	if out, err := fc.run(t, "chaos.sh", "1m"); err == nil || !strings.Contains(out, "TIMEOUT must be a whole number") {
		t.Errorf("chaos.sh accepted TIMEOUT=soon (%v):\n%s", err, out)
	}
}
