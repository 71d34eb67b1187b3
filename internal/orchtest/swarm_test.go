package orchtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/internal/pod"
)

// swarm drives one test stack on the local engine with the docker CLI.
type swarm struct {
	t     *testing.T
	stack string
	image string
	env   []string // the environment `docker stack deploy` interpolates
}

// docker runs the docker CLI with a timeout and returns its combined output.
func docker(timeout time.Duration, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", timeout)
	}
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// requireSwarm skips the test where no Docker engine answers, and puts the
// engine in swarm mode when it is not; the cleanup leaves the swarm only if
// this test joined it.
func requireSwarm(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("skipped: no docker CLI on PATH (the swarm scenario needs a Docker engine)")
	}
	state, err := docker(20*time.Second, nil, "info", "--format", "{{.Swarm.LocalNodeState}}")
	if err != nil {
		t.Skipf("skipped: the Docker engine does not answer: %v", err)
	}
	switch state {
	case "active":
		return
	case "inactive":
	default:
		t.Fatalf("the engine's swarm state is %q: want active or inactive", state)
	}
	if _, err := docker(60*time.Second, nil, "swarm", "init"); err != nil {
		// Several addresses and no obvious one: advertise the source
		// address of the default route (a UDP "connect" sends nothing).
		addr := "127.0.0.1"
		if c, derr := netDialUDP("192.0.2.1:9"); derr == nil {
			addr = c
		}
		if _, err2 := docker(60*time.Second, nil, "swarm", "init", "--advertise-addr", addr); err2 != nil {
			t.Fatalf("docker swarm init: %v; with --advertise-addr %s: %v", err, addr, err2)
		}
	}
	t.Logf("initialised a single-node swarm (left again at the end)")
	t.Cleanup(func() {
		if out, err := docker(60*time.Second, nil, "swarm", "leave", "--force"); err != nil {
			t.Errorf("docker swarm leave: %v %s", err, out)
		}
	})
}

// buildImage builds the test image FROM scratch with the host-built static
// pods (as the Dockerfile's runtime stage lays them out: /usr/local/bin,
// /data owned by 65532, user 65532) plus the probe the test runs inside the
// containers. Nothing is pulled.
func buildImage(t *testing.T, tag string) {
	t.Helper()
	dir := t.TempDir()
	bin := binaries(t)
	for _, b := range []string{"publisher", "subscriber", "sfprobe"} {
		data, err := os.ReadFile(filepath.Join(bin, b))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, b), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	dockerfile := `FROM scratch
COPY publisher subscriber sfprobe /usr/local/bin/
COPY --chown=65532:65532 data /data
USER 65532:65532
ENV DATA_DIR=/data BIND=0.0.0.0:7946 DATA_ENDPOINT=0.0.0.0:40123 METRICS_ADDR=:9090 LOG_LEVEL=info
EXPOSE 7946/tcp 7946/udp 40123/udp 9090/tcp
HEALTHCHECK --interval=5s --timeout=3s --start-period=15s --retries=3 CMD ["/usr/local/bin/subscriber", "--healthcheck"]
CMD ["/usr/local/bin/subscriber"]
`
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := docker(3*time.Minute, env, "build", "-q", "-t", tag, dir); err != nil {
		t.Fatalf("build the test image: %v %s", err, out)
	}
	t.Cleanup(func() { _, _ = docker(time.Minute, nil, "image", "rm", "-f", tag) })
}

// task is one running container of a service.
type task struct {
	id   string // container id
	slot int
}

// tasks returns the running containers of a service by slot.
func (s *swarm) tasks(role string) []task {
	out, err := docker(20*time.Second, nil, "ps", "--no-trunc",
		"--filter", "label=com.docker.swarm.service.name="+s.stack+"_"+role,
		"--format", `{{.ID}} {{.Label "com.docker.swarm.task.name"}}`)
	if err != nil {
		s.t.Fatal(err)
	}
	var ts []task
	for _, line := range strings.Split(out, "\n") {
		id, name, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		// <stack>_<role>.<slot>.<task id>
		parts := strings.Split(name, ".")
		if len(parts) < 2 {
			continue
		}
		slot, err := strconv.Atoi(parts[1])
		if err != nil {
			continue
		}
		ts = append(ts, task{id: id, slot: slot})
	}
	slices.SortFunc(ts, func(a, b task) int { return a.slot - b.slot })
	return ts
}

// get runs the probe inside a container: GET on the pod's own HTTP server.
func (s *swarm) get(container, path string) (string, error) {
	return docker(15*time.Second, nil, "exec", container, "/usr/local/bin/sfprobe", "get", "http://127.0.0.1:9090"+path)
}

func (s *swarm) status(container string) (pod.Status, error) {
	var st pod.Status
	out, err := s.get(container, "/status?format=json")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("/status: %v: %s", err, out)
	}
	return st, nil
}

func (s *swarm) metrics(container string) (metrics, error) {
	out, err := s.get(container, "/metrics")
	if err != nil {
		return nil, err
	}
	return parseMetrics(out), nil
}

// overlayIP returns the container's address on the stack's network.
func (s *swarm) overlayIP(container string) string {
	out, _ := docker(20*time.Second, nil, "inspect", "--format",
		`{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}`, container)
	for _, kv := range strings.Fields(out) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == s.stack+"_steadfast" {
			return v
		}
	}
	return ""
}

// settled is the cluster as the test last saw it.
type settled struct {
	byID map[string]task       // node id → container
	st   map[string]pod.Status // node id → its /status
}

// waitSettledWithout is waitSettled once the container gone is no longer
// among the running tasks.
func (s *swarm) waitSettledWithout(gone string, pubs, subs int, within time.Duration) settled {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		res := s.waitSettled(pubs, subs, time.Until(deadline))
		if !slices.ContainsFunc(s.tasks("subscriber"), func(tk task) bool { return tk.id == gone }) &&
			!slices.ContainsFunc(s.tasks("publisher"), func(tk task) bool { return tk.id == gone }) {
			return res
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("container %s still runs", gone)
		}
		time.Sleep(time.Second)
	}
}

// waitSettled waits until exactly the given number of publisher and
// subscriber tasks run, each ready, with node id <role>-<slot>, advertising
// its overlay address, each seeing every other as a live member, and every
// subscriber applying the publisher's stream.
func (s *swarm) waitSettled(pubs, subs int, within time.Duration) settled {
	s.t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for {
		res, why := s.check(pubs, subs)
		if why == "" {
			return res
		}
		if why != last {
			s.t.Logf("waiting: %s", why)
			last = why
		}
		if time.Now().After(deadline) {
			s.dumpLogs()
			s.t.Fatalf("not settled within %v (%d publishers, %d subscribers): %s", within, pubs, subs, why)
		}
		time.Sleep(time.Second)
	}
}

func (s *swarm) check(pubs, subs int) (settled, string) {
	res := settled{byID: map[string]task{}, st: map[string]pod.Status{}}
	for role, n := range map[string]int{"publisher": pubs, "subscriber": subs} {
		ts := s.tasks(role)
		if len(ts) != n {
			return res, fmt.Sprintf("%d %s containers running, want %d", len(ts), role, n)
		}
		for _, tk := range ts {
			if _, err := s.get(tk.id, "/readyz"); err != nil {
				return res, fmt.Sprintf("%s slot %d not ready", role, tk.slot)
			}
			st, err := s.status(tk.id)
			if err != nil {
				return res, fmt.Sprintf("%s slot %d: %v", role, tk.slot, err)
			}
			want := fmt.Sprintf("%s-%d", role, tk.slot)
			if st.NodeID != want {
				s.t.Fatalf("%s slot %d runs node id %q, want %q", role, tk.slot, st.NodeID, want)
			}
			if ip := s.overlayIP(tk.id); !strings.HasPrefix(st.GossipAddr, ip+":") || !strings.HasPrefix(st.DataEndpoint, ip+":") {
				s.t.Fatalf("%s advertises gossip %s and data %s, not its overlay address %s", want, st.GossipAddr, st.DataEndpoint, ip)
			}
			res.byID[want], res.st[want] = tk, st
		}
	}
	for id, st := range res.st {
		live := 0
		for _, m := range st.Members {
			if _, ok := res.st[m.NodeID]; ok && m.State == "live" && m.Epoch == res.st[m.NodeID].Epoch {
				live++
			}
		}
		if live != len(res.st) {
			return res, fmt.Sprintf("%s sees %d of %d current incarnations live", id, live, len(res.st))
		}
		if st.Role == "subscriber" {
			in := 0
			for _, sm := range st.Streams {
				if sm.Direction == "in" && sm.Applied > 0 {
					in++
				}
			}
			if in != pubs {
				return res, fmt.Sprintf("%s applies the stream of %d publishers, want %d", id, in, pubs)
			}
		}
	}
	return res, ""
}

// exactlyOnce checks a subscriber's tally from its /metrics: the values of
// each publisher's stream applied are exactly 1..last, each once, by the
// closed-form FizzBuzz sum, with none lost. A subscriber that joined after
// the stream had started (late) gets it from the publisher's oldest
// unacknowledged value on: the values before that count as lost, and what
// it applied must be exactly from..last. It returns the last seq per
// publisher.
func (s *swarm) exactlyOnce(id, container string) map[string]uint64 {
	return s.checkTally(id, container, false)
}

func (s *swarm) checkTally(id, container string, late bool) map[string]uint64 {
	s.t.Helper()
	out, err := s.get(container, "/metrics")
	if err != nil {
		s.t.Fatalf("%s: %v", id, err)
	}
	tallies := loggerTallies(out)
	if len(tallies) == 0 {
		s.t.Fatalf("%s: no steadfast_logger_* samples per publisher in /metrics", id)
	}
	last := map[string]uint64{}
	for pubID, tl := range tallies {
		if err := tl.check(late); err != nil {
			s.t.Errorf("%s from %s: %v", id, pubID, err)
		}
		if tl.lost > 0 {
			s.t.Logf("%s joined late: values %d..%d, each once (1..%d were released before it joined)", id, tl.lost+1, tl.last, tl.lost)
		}
		last[pubID] = tl.last
	}
	return last
}

func (s *swarm) dumpLogs() {
	for _, role := range []string{"publisher", "subscriber"} {
		out, _ := docker(30*time.Second, nil, "service", "logs", "--raw", "--tail", "40", s.stack+"_"+role)
		s.t.Logf("%s logs (last 40 lines per task):\n%s", role, out)
		ps, _ := docker(30*time.Second, nil, "service", "ps", "--no-trunc", "--format", "{{.Name}} {{.CurrentState}} {{.Error}}", s.stack+"_"+role)
		s.t.Logf("%s tasks:\n%s", role, ps)
	}
}

// remove removes the stack and waits until its containers and network are
// gone.
func (s *swarm) remove() {
	if out, err := docker(time.Minute, nil, "stack", "rm", s.stack); err != nil {
		s.t.Errorf("docker stack rm: %v %s", err, out)
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		c, _ := docker(20*time.Second, nil, "ps", "-aq", "--filter", "label=com.docker.stack.namespace="+s.stack)
		n, _ := docker(20*time.Second, nil, "network", "ls", "-q", "--filter", "label=com.docker.stack.namespace="+s.stack)
		if c == "" && n == "" {
			return
		}
		time.Sleep(time.Second)
	}
	s.t.Errorf("stack %s: containers or network still there 90 s after docker stack rm", s.stack)
}

// TestSwarmStack deploys deploy/swarm/stack.yml for real on a single-node
// swarm: every task running and ready with node id <role>-<slot>, the
// stream flowing; `docker service update --force` replaces each subscriber
// (same slot and node id, new container on a new IP, empty disk) and each
// restores from a peer with nothing lost; a subscriber's container is
// SIGKILLed and its new task restores from a peer; subscribers scale
// 2 → 3 → 2; then everything is removed.
func TestSwarmStack(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: deploys a swarm stack")
	}
	requireSwarm(t)
	id := fmt.Sprintf("%d%d", os.Getpid(), time.Now().UnixNano()%1e6)
	s := &swarm{t: t, stack: "sfo" + id, image: "steadfast-orchtest:" + id}
	buildImage(t, s.image)
	// The cluster key: a swarm secret of the test's own, created before
	// the deploy (the stack names it in CLUSTER_KEY_SECRET) and removed
	// after the stack (cleanups run last registered first).
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keyFile := filepath.Join(t.TempDir(), "cluster-key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := s.stack + "_cluster_key"
	if out, err := docker(time.Minute, nil, "secret", "create", secret, keyFile); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := docker(time.Minute, nil, "secret", "rm", secret); err != nil {
			t.Errorf("%v %s", err, out)
		}
	})
	s.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"STEADFAST_IMAGE=" + s.image, "CLUSTER_KEY_SECRET=" + secret}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		s.env = append(s.env, "DOCKER_HOST="+h)
	}
	stackFile := filepath.Join(repoRoot(t), "deploy", "swarm", "stack.yml")
	t0 := time.Now()
	if out, err := docker(2*time.Minute, s.env, "stack", "deploy", "-c", stackFile, s.stack); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(s.remove)

	// 1. Every task running and ready, one cluster, the stream flowing.
	c := s.waitSettled(1, 2, 90*time.Second)
	t.Logf("deployed: 3 tasks ready in one cluster after %.1fs", time.Since(t0).Seconds())
	before := map[string]uint64{}
	for _, sid := range []string{"subscriber-1", "subscriber-2"} {
		before[sid] = s.exactlyOnce(sid, c.byID[sid].id)["publisher-1"]
	}
	time.Sleep(2 * time.Second)
	for _, sid := range []string{"subscriber-1", "subscriber-2"} {
		if now := s.exactlyOnce(sid, c.byID[sid].id)["publisher-1"]; now <= before[sid] {
			t.Fatalf("%s: the stream does not flow (last seq %d, 2 s earlier %d)", sid, now, before[sid])
		}
	}

	// 2. Replace every subscriber task, one slot at a time.
	t1 := time.Now()
	if out, err := docker(3*time.Minute, s.env, "service", "update", "--force", "--detach=false", s.stack+"_subscriber"); err != nil {
		s.dumpLogs()
		t.Fatalf("%v %s", err, out)
	}
	r := s.waitSettled(1, 2, 60*time.Second)
	t.Logf("docker service update --force: both subscribers replaced in %.1fs", time.Since(t1).Seconds())
	for _, sid := range []string{"subscriber-1", "subscriber-2"} {
		old, now := c.st[sid], r.st[sid]
		if r.byID[sid].id == c.byID[sid].id {
			t.Fatalf("%s: still container %s after the forced update", sid, now.NodeID)
		}
		if now.GossipAddr == old.GossipAddr {
			t.Logf("%s: the replacement got the same address %s", sid, now.GossipAddr)
		}
		if now.Epoch <= old.Epoch || !strings.HasPrefix(now.RestoreSource, "peer:") {
			t.Errorf("%s replaced: epoch %d (was %d), restore source %q: want a higher epoch, restored from a peer",
				sid, now.Epoch, old.Epoch, now.RestoreSource)
		}
		last := s.exactlyOnce(sid, r.byID[sid].id)["publisher-1"]
		if last <= before[sid] {
			t.Errorf("%s replaced: last seq %d, it had %d before: state lost", sid, last, before[sid])
		}
		t.Logf("%s: epoch %d → %d, restored from %s, last seq %d", sid, old.Epoch, now.Epoch, now.RestoreSource, last)
	}

	// 3. SIGKILL one subscriber's container (a crash, no final snapshot):
	// swarm starts a new task in its slot, which restores from a peer.
	victim := r.byID["subscriber-1"]
	killedAt := s.exactlyOnce("subscriber-1", victim.id)["publisher-1"]
	t2 := time.Now()
	if out, err := docker(time.Minute, nil, "kill", "--signal", "KILL", victim.id); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	k := s.waitSettledWithout(victim.id, 1, 2, 60*time.Second)
	old, now := r.st["subscriber-1"], k.st["subscriber-1"]
	if now.Epoch <= old.Epoch || !strings.HasPrefix(now.RestoreSource, "peer:") {
		t.Errorf("subscriber-1 after SIGKILL: epoch %d (was %d), restore source %q: want a higher epoch, restored from a peer",
			now.Epoch, old.Epoch, now.RestoreSource)
	}
	last := s.exactlyOnce("subscriber-1", k.byID["subscriber-1"].id)["publisher-1"]
	t.Logf("subscriber-1 SIGKILLed at last seq %d: new task ready in %.1fs, epoch %d → %d, restored from %s, last seq %d",
		killedAt, time.Since(t2).Seconds(), old.Epoch, now.Epoch, now.RestoreSource, last)

	// 4. Scale subscribers 2 → 3 → 2.
	if out, err := docker(2*time.Minute, s.env, "service", "scale", "--detach=false", s.stack+"_subscriber=3"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	up := s.waitSettled(1, 3, 60*time.Second)
	for sid, tk := range up.byID {
		if strings.HasPrefix(sid, "subscriber-") {
			s.checkTally(sid, tk.id, sid == "subscriber-3")
		}
	}
	if out, err := docker(2*time.Minute, s.env, "service", "scale", "--detach=false", s.stack+"_subscriber=2"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	down := s.waitSettled(1, 2, 60*time.Second)
	mark := map[string]uint64{}
	for sid, tk := range down.byID {
		if strings.HasPrefix(sid, "subscriber-") {
			mark[sid] = s.exactlyOnce(sid, tk.id)["publisher-1"]
		}
	}
	time.Sleep(3 * time.Second)
	for sid, tk := range down.byID {
		if !strings.HasPrefix(sid, "subscriber-") {
			continue
		}
		if now := s.exactlyOnce(sid, tk.id)["publisher-1"]; now <= mark[sid] {
			t.Errorf("%s: the stream stopped after scaling down (last seq %d, 3 s earlier %d)", sid, now, mark[sid])
		}
	}
	// The publisher keeps the scaled-away subscriber's values until its
	// outbox is full and the subscriber has been gone SUBSCRIBER_GRACE,
	// then retires it (TestK8sScaleDownOnRealPods proves the stream goes
	// on past the outbox): the outbox's fill is reported.
	if pst, err := s.status(down.byID["publisher-1"].id); err == nil && pst.Publisher != nil {
		var to []string
		for _, sm := range pst.Streams {
			to = append(to, fmt.Sprintf("%s(acked %d, %s)", sm.Peer, sm.Acked, sm.Breaker))
		}
		t.Logf("publisher after scaling down: outbox %d/%d values, streams to %v",
			pst.Publisher.OutboxValues, pst.Publisher.OutboxCapacity, to)
	}
	t.Logf("swarm scenario: %.1fs before removal", time.Since(t0).Seconds())
}

// netDialUDP returns the local address the kernel would send from to addr
// (a UDP "connect" sends no packet).
func netDialUDP(addr string) (string, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	h, _, err := net.SplitHostPort(c.LocalAddr().String())
	return h, err
}
