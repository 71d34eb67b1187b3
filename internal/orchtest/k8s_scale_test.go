package orchtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/internal/pod"
)

// get GETs a path on the pod's metrics port (the container port of
// METRICS_ADDR, mapped to its local port).
func (lp *localPod) get(path string) (string, error) {
	p, err := portOf(envValue(lp.sts, "METRICS_ADDR"))
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", lp.ports[p], path), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), err
}

// metric returns the sum of a metric's samples on the pod's /metrics (-1
// when the pod does not answer).
func (lp *localPod) metric(name string) float64 {
	out, err := lp.get("/metrics")
	if err != nil {
		return -1
	}
	return parseMetrics(out).sum(name)
}

// stop signals the pod and waits until it exited.
func (lp *localPod) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	_ = lp.cmd.Process.Signal(sig)
	select {
	case <-lp.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30 s of %v", lp.sts.Name, sig)
	}
}

// waitMetric polls a pod's metric until ok holds, or fails the test
// after within, saying what.
func waitMetric(t *testing.T, lp *localPod, name string, within time.Duration, ok func(float64) bool, what string) float64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v := lp.metric(name)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s = %v after %v: %s", lp.sts.Name, name, v, within, what)
		}
		select {
		case <-lp.done:
			t.Fatalf("%s exited (%v) while waiting: %s", lp.sts.Name, lp.cmd.ProcessState, what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestK8sScaleDownOnRealPods runs the real pods with the production
// StatefulSets' environment (a small outbox and a short grace, so it is
// quick): publisher-0 and subscriber-0..2. subscriber-2 is stopped the way
// `kubectl scale statefulset subscriber --replicas=2` stops it (SIGTERM,
// never back): the stream goes on to ten times the outbox's capacity
// beyond that point (before subscribers were retired early it stalled once
// the outbox was full, until the 5-minute retention), and the publisher
// counts and logs the early retirement with the values subscriber-2 will
// not get. Then subscriber-1 is SIGKILLed and replaced within the grace
// (same node id, new ports, empty data dir): it restores from a peer, is
// not retired, and loses nothing. Every remaining subscriber applied every
// value exactly once.
func TestK8sScaleDownOnRealPods(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: starts five pod processes")
	}
	const outbox = 4096
	o, pubS, subS := productionStatefulSets(t)
	fast := map[string]string{"MEMBERSHIP": "local"}
	pub := startLocalPod(t, pubS, o, "", map[string]string{"MEMBERSHIP": "local", "NODE_ID": "publisher-0",
		"RATE": "5ms", "BATCH": "64", "OUTBOX": fmt.Sprint(outbox), "MIN_SUBSCRIBERS": "3", "SUBSCRIBER_GRACE": "5s"}, nil)
	subs := map[string]*localPod{}
	startSub := func(id string) *localPod {
		extra := map[string]string{"NODE_ID": id}
		for k, v := range fast {
			extra[k] = v
		}
		return startLocalPod(t, subS, o, pub.gossipAddr(), extra, nil)
	}
	for _, id := range []string{"subscriber-0", "subscriber-1", "subscriber-2"} {
		subs[id] = startSub(id)
	}
	t0 := time.Now()
	for id, sp := range subs {
		waitMetric(t, sp, "steadfast_logger_applied_values", 60*time.Second, func(v float64) bool { return v > 2*outbox },
			id+" applies the stream (the outbox has been released and refilled)")
	}
	t.Logf("3 subscribers applied more than %d values each after %.1fs", 2*outbox, time.Since(t0).Seconds())

	// Scale down: subscriber-2 stops for good.
	subs["subscriber-2"].stop(t, syscall.SIGTERM)
	down := pub.metric("steadfast_publisher_last_seq")
	t1 := time.Now()
	last := waitMetric(t, pub, "steadfast_publisher_last_seq", 90*time.Second, func(v float64) bool { return v >= down+10*outbox },
		fmt.Sprintf("the stream stalled after subscriber-2 was scaled down at seq %v (outbox %d)", down, outbox))
	t.Logf("scaled down at seq %v: the publisher generated up to %v (%.0f outboxes more) %.1fs later", down, last, (last-down)/outbox, time.Since(t1).Seconds())
	if n := pub.metric("steadfast_subscribers_retired_early_total"); n != 1 {
		t.Errorf("steadfast_subscribers_retired_early_total %v, want 1 (subscriber-2)", n)
	}

	// A replacement within the grace: subscriber-1 is killed and a new
	// process with its node id, new ports and an empty disk takes over.
	killed := subs["subscriber-1"]
	killed.stop(t, syscall.SIGKILL)
	killedAt := pub.metric("steadfast_publisher_last_seq")
	subs["subscriber-1"] = startSub("subscriber-1")
	delete(subs, "subscriber-2")
	for id, sp := range subs {
		waitMetric(t, sp, "steadfast_logger_last_seq", 90*time.Second, func(v float64) bool { return v >= killedAt+4*outbox },
			fmt.Sprintf("%s applies values past %v after the replacement of subscriber-1", id, killedAt+4*outbox))
	}
	var st pod.Status
	if out, err := subs["subscriber-1"].get("/status?format=json"); err != nil {
		t.Error(err)
	} else if err := json.Unmarshal([]byte(out), &st); err != nil || !strings.HasPrefix(st.RestoreSource, "peer:") {
		t.Errorf("replaced subscriber-1: restore source %q (%v), want peer:<node id>", st.RestoreSource, err)
	}
	for id, sp := range subs {
		out, err := sp.get("/metrics")
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		tl, ok := loggerTallies(out)["publisher-0"]
		if !ok {
			t.Fatalf("%s: no tally of publisher-0's stream in /metrics", id)
		}
		if err := tl.check(false); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		t.Logf("%s: values 1..%d, each applied once", id, tl.last)
	}
	if n := pub.metric("steadfast_subscribers_retired_early_total"); n != 1 {
		t.Errorf("steadfast_subscribers_retired_early_total %v after the replacement, want 1: the replaced subscriber-1 was retired", n)
	}
	// The publisher's log (read once it stopped) names the retired
	// subscriber and the values it will not get; it says where the key
	// came from (the Secret's file), never the key.
	pub.stop(t, syscall.SIGTERM)
	if log := pub.log.String(); strings.Contains(log, keySample) || !strings.Contains(log, "cluster key read from file") {
		t.Errorf("publisher log: the key appears in it, or no line says it was read from CLUSTER_KEY_FILE")
	}
	var retired []string
	for _, line := range strings.Split(pub.log.String(), "\n") {
		if strings.Contains(line, "retired early") {
			retired = append(retired, line)
		}
	}
	if len(retired) != 1 || !strings.Contains(retired[0], `"subscriber":"subscriber-2"`) || !strings.Contains(retired[0], `"level":"WARN"`) ||
		!strings.Contains(retired[0], `"values_it_will_not_get":"`) {
		t.Errorf("publisher log: want one WARN retiring subscriber-2 early with the values it will not get, have %q", retired)
	} else {
		t.Logf("publisher log: %s", retired[0])
	}
}
