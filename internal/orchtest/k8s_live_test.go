package orchtest

import (
	"bytes"
	"context"
	"fmt"
	"github.com/steadfast-pods/steadfast/internal/freeport"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// freePort returns a port free for TCP and UDP on 127.0.0.1 (gossip uses
// one of each), or fails the test.
func freePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.TCPUDP()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// localPod is a real pod process started with a StatefulSet's environment,
// its container ports mapped to free ports on 127.0.0.1.
type localPod struct {
	sts   *appsv1.StatefulSet
	cmd   *exec.Cmd
	log   *bytes.Buffer
	ports map[int32]int // container port -> local port
	done  chan struct{}
}

// startLocalPod runs the StatefulSet's pod ordinal 0 as the kubelet would
// (its command, its env resolved by podEnv), except that every listening
// address moves to 127.0.0.1 on a free port, the data dir to a temp dir,
// ADVERTISE to 127.0.0.1 and JOIN to join.
// fixed gives the local port of some of the variables (BIND → 12345).
func startLocalPod(t *testing.T, s *appsv1.StatefulSet, o checkOpts, join string, extra map[string]string, fixed map[string]int) *localPod {
	t.Helper()
	role, err := roleOf(s)
	if err != nil {
		t.Fatal(err)
	}
	c := &s.Spec.Template.Spec.Containers[0]
	env, errs := podEnv(s, c, o.envVars[role], o)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	lp := &localPod{sts: s, log: &bytes.Buffer{}, ports: map[int32]int{}, done: make(chan struct{})}
	for _, k := range []string{"BIND", "DATA_ENDPOINT", "METRICS_ADDR"} {
		cp, err := portOf(env[k])
		if err != nil {
			t.Fatalf("%s %s: %v", s.Name, k, err)
		}
		if p := fixed[k]; p != 0 {
			lp.ports[cp] = p
		} else if lp.ports[cp] == 0 {
			lp.ports[cp] = freePort(t)
		}
		env[k] = net.JoinHostPort("127.0.0.1", strconv.Itoa(lp.ports[cp]))
	}
	env["ADVERTISE"] = "127.0.0.1"
	env["DATA_DIR"] = t.TempDir()
	env["JOIN"] = join
	for k, v := range extra {
		env[k] = v
	}
	lp.cmd = exec.Command(filepath.Join(binaries(t), filepath.Base(c.Command[0])))
	lp.cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		lp.cmd.Env = append(lp.cmd.Env, k+"="+v)
	}
	lp.cmd.Stdout, lp.cmd.Stderr = lp.log, lp.log
	if err := lp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = lp.cmd.Wait(); close(lp.done) }()
	t.Cleanup(func() {
		t0 := time.Now()
		defer func() { t.Logf("%s stopped in %.1fs", s.Name, time.Since(t0).Seconds()) }()
		_ = lp.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-lp.done:
		case <-time.After(20 * time.Second):
			_ = lp.cmd.Process.Kill()
			<-lp.done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", s.Name, lp.log.String())
		}
	})
	return lp
}

// gossipAddr is where peers join this pod.
func (lp *localPod) gossipAddr() string {
	p, _ := portOf(envValue(lp.sts, "BIND"))
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(lp.ports[p]))
}

func envValue(s *appsv1.StatefulSet, name string) string {
	for _, e := range s.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// probe runs one of the container's HTTP probes against the local pod the
// way the kubelet does: GET on the probe's port (resolved to the container
// port, then to its local port) and path; success is a status in 200..399.
func (lp *localPod) probe(p *corev1.Probe) (int, error) {
	c := &lp.sts.Spec.Template.Spec.Containers[0]
	cp, ok := containerPort(c, p.HTTPGet.Port)
	if !ok {
		return 0, fmt.Errorf("probe port %s is no container port", p.HTTPGet.Port.String())
	}
	local, ok := lp.ports[cp.ContainerPort]
	if !ok {
		return 0, fmt.Errorf("probe port %d: the pod listens on nothing there", cp.ContainerPort)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(max(p.TimeoutSeconds, 1))*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", local, p.HTTPGet.Path), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func probeOK(code int) bool { return code >= 200 && code < 400 }

// mustProbe runs a probe and returns its status (0 on a transport error).
func mustProbe(t *testing.T, lp *localPod, p *corev1.Probe) int {
	t.Helper()
	code, _ := lp.probe(p)
	return code
}

// waitProbe polls a probe until ok(code) or the deadline.
func (lp *localPod) waitProbe(t *testing.T, p *corev1.Probe, ok func(int) bool, within time.Duration) (int, error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, err := lp.probe(p)
		if err == nil && ok(code) || time.Now().After(deadline) {
			return code, err
		}
		select {
		case <-lp.done:
			return code, fmt.Errorf("pod exited: %v", lp.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var hwmRE = regexp.MustCompile(`VmHWM:\s+(\d+) kB`)

// peakRSS returns the process's peak resident set (VmHWM) in bytes.
func (lp *localPod) peakRSS(t *testing.T) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", lp.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := hwmRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", lp.cmd.Process.Pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// productionStatefulSets renders the production overlay and returns its
// check options and its publisher and subscriber StatefulSets.
func productionStatefulSets(t *testing.T) (o checkOpts, pub, sub *appsv1.StatefulSet) {
	t.Helper()
	m, err := decodeManifest(render(t, k8sProduction))
	if err != nil {
		t.Fatal(err)
	}
	byRole := map[string]*appsv1.StatefulSet{}
	for _, s := range m.statefulSets {
		r, err := roleOf(s)
		if err != nil {
			t.Fatal(err)
		}
		byRole[r] = s
	}
	if byRole["publisher"] == nil || byRole["subscriber"] == nil {
		t.Fatal("the rendering lacks a publisher or subscriber StatefulSet")
	}
	return renderings(t)[k8sProduction], byRole["publisher"], byRole["subscriber"]
}

// TestK8sProbesOnRealPods starts the real pods with the production
// StatefulSets' environment and runs their probes as the kubelet would:
// while a pod cannot join yet, liveness passes and readiness fails; once
// both pods have joined, both pass and the stream flows; each pod's peak
// RSS fits its memory request.
func TestK8sProbesOnRealPods(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: starts two pod processes")
	}
	o, pubS, subS := productionStatefulSets(t)
	// The subscriber's seed is the publisher's gossip port, not open yet:
	// it keeps retrying the join.
	pubGossip := freePort(t)
	fast := map[string]string{"MEMBERSHIP": "local", "LOG_LEVEL": "info"}
	sub := startLocalPod(t, subS, o, net.JoinHostPort("127.0.0.1", strconv.Itoa(pubGossip)), fast, nil)
	subC := &subS.Spec.Template.Spec.Containers[0]
	t0 := time.Now()

	if code, err := sub.waitProbe(t, subC.LivenessProbe, probeOK, 10*time.Second); err != nil || !probeOK(code) {
		t.Fatalf("subscriber liveness %s while joining: %d %v", subC.LivenessProbe.HTTPGet.Path, code, err)
	}
	time.Sleep(time.Second)
	if code, err := sub.probe(subC.ReadinessProbe); err != nil || probeOK(code) {
		t.Fatalf("subscriber readiness %s while it cannot join: %d %v, want a failure", subC.ReadinessProbe.HTTPGet.Path, code, err)
	}
	if code, err := sub.probe(subC.LivenessProbe); err != nil || !probeOK(code) {
		t.Fatalf("subscriber liveness %s while joining: %d %v", subC.LivenessProbe.HTTPGet.Path, code, err)
	}
	// The check can fail: a readiness probe on the liveness endpoint
	// would pass while the pod cannot join.
	if code, err := sub.probe(subC.LivenessProbe); err == nil && probeOK(code) == probeOK(mustProbe(t, sub, subC.ReadinessProbe)) {
		t.Fatal("liveness and readiness answer alike while joining: the readiness check cannot tell them apart")
	}

	t.Logf("liveness passes, readiness fails while joining: %.1fs", time.Since(t0).Seconds())
	pubExtra := map[string]string{"MIN_SUBSCRIBERS": "1", "MEMBERSHIP": "local", "RATE": "10ms"}
	// The publisher gossips on the port the subscriber is waiting on.
	pub := startLocalPod(t, pubS, o, sub.gossipAddr(), pubExtra, map[string]int{"BIND": pubGossip})
	pubC := &pubS.Spec.Template.Spec.Containers[0]
	for _, lp := range []struct {
		p *localPod
		c *corev1.Container
	}{{pub, pubC}, {sub, subC}} {
		for _, pr := range []*corev1.Probe{lp.c.LivenessProbe, lp.c.ReadinessProbe} {
			if code, err := lp.p.waitProbe(t, pr, probeOK, 30*time.Second); err != nil || !probeOK(code) {
				t.Fatalf("%s probe %s: %d %v", lp.p.sts.Name, pr.HTTPGet.Path, code, err)
			}
		}
	}
	t.Logf("both pods ready after %.1fs", time.Since(t0).Seconds())
	// The checks can fail: a misspelt path, or a probe on another port.
	bad := subC.ReadinessProbe.DeepCopy()
	bad.HTTPGet.Path = "/readyzz"
	if code, err := sub.probe(bad); err == nil && probeOK(code) {
		t.Errorf("probe %s passed (%d): the probe check cannot fail", bad.HTTPGet.Path, code)
	}
	bad = subC.LivenessProbe.DeepCopy()
	bad.HTTPGet.Port = intstr.FromString("gossip-tcp")
	if code, err := sub.probe(bad); err == nil && probeOK(code) {
		t.Errorf("liveness probe on the gossip port passed (%d): the probe check cannot fail", code)
	}
	// The stream flows: the subscriber's logger applies values.
	metricsPort, _ := portOf(envValue(subS, "METRICS_ADDR"))
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", sub.ports[metricsPort])
	deadline := time.Now().Add(30 * time.Second)
	applied := 0.0
	for applied < 1000 {
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber applied %v values in 30 s", applied)
		}
		time.Sleep(200 * time.Millisecond)
		mt, err := scrape(url)
		if err == nil {
			applied = mt.sum("steadfast_logger_applied_values")
		}
	}
	t.Logf("the subscriber applied %v values after %.1fs", applied, time.Since(t0).Seconds())
	for _, lp := range []*localPod{pub, sub} {
		req := lp.sts.Spec.Template.Spec.Containers[0].Resources.Requests.Memory()
		rss := lp.peakRSS(t)
		t.Logf("%s: peak RSS %.1f MiB (memory request %s)", lp.sts.Name, float64(rss)/(1<<20), req)
		if rss > req.Value() {
			t.Errorf("%s: peak RSS %d bytes above its memory request %s", lp.sts.Name, rss, req)
		}
	}
}

// metrics is a scraped /metrics page: sample name (without labels) → values.
type metrics map[string][]float64

func (m metrics) sum(name string) float64 {
	s := 0.0
	for _, v := range m[name] {
		s += v
	}
	return s
}

// scrape GETs a Prometheus text page and parses its samples.
func scrape(url string) (metrics, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	return parseMetrics(string(b)), nil
}

func parseMetrics(text string) metrics {
	m := metrics{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[name] = append(m[name], v)
		}
	}
	return m
}
