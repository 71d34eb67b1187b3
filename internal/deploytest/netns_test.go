package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// netnsScript runs scripts/netns-cluster.sh; the tests below skip when it
// reports that this machine cannot create namespaces.
func netnsScript(t *testing.T) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "scripts", "netns-cluster.sh")
}

// requireNetns skips the test, with the reason, unless this process is root
// and `ip netns`, bridges and veth pairs work here.
func requireNetns(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces need Linux")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: the namespace scenario needs root (ip netns); run the tests as root to exercise it")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: iproute2's ip is not installed (apt-get install iproute2)")
	}
	out, err := exec.Command("bash", netnsScript(t), "check").CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		t.Skipf("skipped: %s", strings.TrimSpace(string(out)))
	}
	if err != nil {
		t.Fatalf("netns-cluster.sh check: %v\n%s", err, out)
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// goBuild builds the packages into dir (one binary per main package).
func goBuild(t *testing.T, dir string, pkgs ...string) {
	t.Helper()
	cmd := exec.Command(goTool(), append([]string{"build", "-o", dir + string(os.PathSeparator)}, pkgs...)...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, out)
	}
}

var (
	probeOnce sync.Once
	probeDir  string
	probeErr  error
)

// probeBinary builds internal/deploytest/sfprobe once per test binary.
func probeBinary(t *testing.T) string {
	t.Helper()
	probeOnce.Do(func() {
		probeDir, probeErr = os.MkdirTemp("", "sfprobe-")
		if probeErr != nil {
			return
		}
		cmd := exec.Command(goTool(), "build", "-o", filepath.Join(probeDir, "sfprobe"), "./internal/deploytest/sfprobe")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = errors.New("go build sfprobe: " + err.Error() + "\n" + string(out))
		}
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return filepath.Join(probeDir, "sfprobe")
}

func TestMain(m *testing.M) {
	code := m.Run()
	removeTestImage()
	for _, d := range []string{probeDir, podsDir, imageDir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

// scriptRun is one run of netns-cluster.sh.
type scriptRun struct {
	out    string
	code   int
	run    string // the run's namespace prefix, e.g. sfnc-1234
	work   string // the work dir it created
	waited time.Duration
}

var (
	runRE  = regexp.MustCompile(`netns-cluster: run (sfnc-\d+)`)
	workRE = regexp.MustCompile(`netns-cluster: work dir (\S+) \(removed on exit\)`)
)

// runScript runs netns-cluster.sh with args and extra environment. When
// signalOn is not empty, it sends SIGTERM as soon as that text appears in the
// output. A run that outlives limit gets SIGTERM too (so it cleans up), and
// SIGKILL 30 s later.
func runScript(t *testing.T, limit time.Duration, env []string, signalOn string, args ...string) scriptRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{netnsScript(t)}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Env = append(append(os.Environ(), "PROBE="+probeBinary(t)), env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			buf.WriteString(line + "\n")
			if signalOn != "" && !signalled && strings.Contains(line, signalOn) {
				signalled = true
				_ = cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	r := scriptRun{out: buf.String(), waited: time.Since(start)}
	if ctx.Err() != nil {
		t.Errorf("netns-cluster.sh %v did not finish within %v (sent SIGTERM)", args, limit)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("netns-cluster.sh %v: %v\n%s", args, err, r.out)
	}
	if m := runRE.FindStringSubmatch(r.out); m != nil {
		r.run = m[1]
	}
	if m := workRE.FindStringSubmatch(r.out); m != nil {
		r.work = m[1]
	}
	return r
}

// assertCleanedUp checks that the run left no namespace, process or work dir.
func assertCleanedUp(t *testing.T, r scriptRun) {
	t.Helper()
	if r.run == "" {
		t.Fatalf("no 'run sfnc-<pid>' line in the output:\n%s", r.out)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, r.run+"-") {
			t.Errorf("namespace left behind: %s", line)
		}
	}
	if r.work == "" {
		t.Errorf("no 'work dir' line in the output")
	} else if _, err := os.Stat(r.work); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("work dir %s left behind (%v)", r.work, err)
	}
	if !strings.Contains(r.out, "netns-cluster: cleaned up "+r.run) {
		t.Errorf("no cleanup line for %s in the output", r.run)
	}
}

// TestNetnsPlumbing builds the topology with a trivial HTTP workload: every
// host reaches every other over the bridge, and a host replaced on a new
// namespace with a new IP is reachable there and no longer at its old IP.
func TestNetnsPlumbing(t *testing.T) {
	requireNetns(t)
	r := runScript(t, 2*time.Minute, []string{"TIMEOUT=30"}, "", "selftest")
	if r.code != 0 {
		t.Fatalf("selftest exit %d:\n%s", r.code, r.out)
	}
	for _, want := range []string{
		"connectivity: every host reaches every host over the bridge",
		"replacement: b moved from 10.213.0.11 to 10.213.0.21; a and c reach it, the old address is gone",
		"selftest ok",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output lacks %q:\n%s", want, r.out)
		}
	}
	assertCleanedUp(t, r)
	t.Logf("selftest %s passed in %v", r.run, r.waited.Round(time.Millisecond))
}

// TestNetnsCleanupOnFailure: a run that fails after building its topology
// still removes everything.
func TestNetnsCleanupOnFailure(t *testing.T) {
	requireNetns(t)
	r := runScript(t, time.Minute, []string{"TIMEOUT=30", "SF_FAIL_AT=setup"}, "", "selftest")
	if r.code != 1 || !strings.Contains(r.out, "failing on purpose after setup") {
		t.Fatalf("want exit 1 after the forced failure, got %d:\n%s", r.code, r.out)
	}
	assertCleanedUp(t, r)
}

// TestNetnsCleanupOnSignal: SIGTERM in the middle of a run removes
// everything, including the workloads running inside the namespaces.
func TestNetnsCleanupOnSignal(t *testing.T) {
	requireNetns(t)
	r := runScript(t, time.Minute, []string{"TIMEOUT=30"}, "connectivity: every host reaches", "selftest")
	if r.code != 143 {
		t.Fatalf("want exit 143 after SIGTERM, got %d:\n%s", r.code, r.out)
	}
	assertCleanedUp(t, r)
}

// mainPresent reports whether cmd/<name> holds a main package yet.
func mainPresent(t *testing.T, name string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "cmd", name, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err == nil && regexp.MustCompile(`(?m)^package main\b`).Match(b) {
			return true
		}
	}
	return false
}

// podsPresent reports whether cmd/publisher and cmd/subscriber hold a main
// package yet (they are written in parallel with these tests).
func podsPresent(t *testing.T) bool {
	t.Helper()
	return mainPresent(t, "publisher") && mainPresent(t, "subscriber")
}

var (
	podsOnce sync.Once
	podsDir  string
)

// podBinaries returns the real pods, built once per test binary: by
// replaying the image's build stage when cmd/runner exists too (so the
// scenario runs what the image would ship), else with a plain go build. A
// build failure fails the test.
func podBinaries(t *testing.T) string {
	t.Helper()
	if !podsPresent(t) {
		t.Skip("skipped: cmd/publisher and cmd/subscriber have no main package yet")
	}
	if mainPresent(t, "runner") && runtime.GOOS == "linux" {
		return imageBinaries(t)
	}
	podsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sfpods-")
		if err != nil {
			t.Fatal(err)
		}
		podsDir = dir
		goBuild(t, dir, "./cmd/publisher", "./cmd/subscriber")
	})
	for _, b := range []string{"publisher", "subscriber"} {
		if _, err := os.Stat(filepath.Join(podsDir, b)); err != nil {
			t.Fatalf("pod binary %s missing after go build: %v", b, err)
		}
	}
	return podsDir
}

var metricNameRE = regexp.MustCompile(`\bsteadfast_[a-z0-9_]+`)

// TestNetnsReplaceSubscriber is the scenario on namespace hosts: the
// real pods on three hosts; subscriber-1's host is killed (SIGKILL, host
// deleted) and replaced by a new host with a different IP running the same
// node id on an empty data dir; the replacement must restore from a peer and
// every subscriber must end with every value exactly once.
func TestNetnsReplaceSubscriber(t *testing.T) {
	netnsScenario(t, false)
}

// TestNetnsReplaceSubscriberAndPublisher: the same, and at half the stream
// the publisher's host dies too and the publisher is replaced the same way.
func TestNetnsReplaceSubscriberAndPublisher(t *testing.T) {
	netnsScenario(t, true)
}

func netnsScenario(t *testing.T, killPublisher bool) {
	requireNetns(t)
	bin := podBinaries(t)
	dump := t.TempDir()
	const beats, batch = 600, 16
	env := []string{
		"BIN_DIR=" + bin, "METRICS_DUMP=" + dump, "TIMEOUT=90",
		"RATE=20ms", fmt.Sprintf("BEATS=%d", beats), fmt.Sprintf("BATCH=%d", batch),
	}
	if killPublisher {
		env = append(env, "KILL_PUBLISHER=1")
	}
	r := runScript(t, 4*time.Minute, env, "", "scenario")
	t.Logf("netns-cluster.sh scenario (%v):\n%s", r.waited.Round(time.Millisecond), r.out)
	if r.code != 0 {
		t.Fatalf("scenario exit %d", r.code)
	}
	n := beats * batch
	wants := []*regexp.Regexp{
		regexp.MustCompile(`killed subscriber-1 \(SIGKILL\) on 10\.213\.0\.11 after \d+ values delivered`),
		regexp.MustCompile(`start subscriber subscriber-1 on subscriber-1 \(10\.213\.0\.21\), data dir \S+ \(empty\)`),
		regexp.MustCompile(`replacement subscriber-1 on 10\.213\.0\.21 \(was 10\.213\.0\.11\) restored from peer:(publisher-1|subscriber-2) in `),
		regexp.MustCompile(`replacement subscriber-1 epoch \d+ \(killed incarnation: \d+\)`),
		regexp.MustCompile(`replacement subscriber-1, restored state: publisher publisher-1: values 1\.\.\d+ each applied exactly once`),
		regexp.MustCompile(`subscriber-1 finished \(exit 0\)`),
		regexp.MustCompile(`subscriber-2 finished \(exit 0\)`),
		regexp.MustCompile(`publisher stopped \(exit 0\)`),
		regexp.MustCompile(fmt.Sprintf(`final subscriber-1 \(restore source peer:\S+\): publisher publisher-1: count %d of %d, lost 0, duplicated 0, .*: exactly once`, n, n)),
		regexp.MustCompile(fmt.Sprintf(`final subscriber-2 \(restore source \S+\): publisher publisher-1: count %d of %d, lost 0, duplicated 0, .*: exactly once`, n, n)),
		regexp.MustCompile(fmt.Sprintf(`verified: every subscriber delivered each of the %d values exactly once`, n)),
		regexp.MustCompile(`scenario ok`),
	}
	if killPublisher {
		wants = append(wants,
			regexp.MustCompile(`killed publisher-1 \(SIGKILL\) on 10\.213\.0\.10 after \d+ of \d+ values generated`),
			regexp.MustCompile(`start publisher publisher-1 on publisher \(10\.213\.0\.20\), data dir \S+ \(empty\)`),
			regexp.MustCompile(`replacement publisher-1 on 10\.213\.0\.20 \(was 10\.213\.0\.10\) restored from peer:subscriber-[12] in \S+, epoch \d+ \(killed incarnation: \d+\)`),
		)
	}
	for _, want := range wants {
		if !want.MatchString(r.out) {
			t.Errorf("output does not match %q", want)
		}
	}
	assertCleanedUp(t, r)
	if killPublisher {
		return
	}

	// The metric names the dashboard and the scripts use must be ones the
	// pods really export.
	var exported strings.Builder
	for _, f := range []string{"publisher.prom", "subscriber-1.prom", "subscriber-2.prom"} {
		b, err := os.ReadFile(filepath.Join(dump, f))
		if err != nil {
			t.Fatalf("metrics dump: %v", err)
		}
		exported.Write(b)
	}
	have := map[string]bool{}
	for _, m := range metricNameRE.FindAllString(exported.String(), -1) {
		have[m] = true
	}
	if !strings.Contains(exported.String(), "\nprocess_start_time_seconds ") {
		t.Error("the dashboard's pod-restart panel needs process_start_time_seconds, which no pod exports")
	}
	for _, f := range []string{"deploy/grafana/dashboards/steadfast.json", "scripts/lib.sh", "scripts/chaos.sh", "scripts/replace-node.sh", "scripts/netns-cluster.sh"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricNameRE.FindAllString(string(b), -1) {
			if !have[m] && !have[m+"_bucket"] {
				t.Errorf("%s uses metric %s, which no pod exports", f, m)
			}
		}
	}
}

// TestNetnsCleansLeftovers: namespaces (and their processes) left by a run
// that died without cleaning up (SIGKILL) are removed by the next run.
func TestNetnsCleansLeftovers(t *testing.T) {
	requireNetns(t)
	// A pid that no process has, as if its run had been SIGKILLed.
	dead := 0
	for pid := 4_000_000; pid > 3_000_000; pid -= 7919 {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			dead = pid
			break
		}
	}
	if dead == 0 {
		t.Fatal("no free pid found")
	}
	ns := fmt.Sprintf("sfnc-%d-leftover", dead)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", ns, err, out)
	}
	// A process left inside it.
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "300")
	if err := sleeper.Start(); err != nil {
		exec.Command("ip", "netns", "del", ns).Run()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	t.Cleanup(func() {
		_ = sleeper.Process.Kill()
		_ = exec.Command("ip", "netns", "del", ns).Run()
	})

	// A namespace of a run still in progress (its script is alive) stays.
	live := exec.Command("bash", "-c", "exec -a netns-cluster.sh-live-run sleep 300")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	liveNS := fmt.Sprintf("sfnc-%d-live", live.Process.Pid)
	t.Cleanup(func() {
		_ = live.Process.Kill()
		_ = live.Wait()
		_ = exec.Command("ip", "netns", "del", liveNS).Run()
	})
	if out, err := exec.Command("ip", "netns", "add", liveNS).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", liveNS, err, out)
	}

	out, err := exec.Command("bash", netnsScript(t), "cleanup").CombinedOutput()
	if err != nil {
		t.Fatalf("netns-cluster.sh cleanup: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "removing leftover namespace "+ns) {
		t.Errorf("cleanup did not report %s:\n%s", ns, out)
	}
	list, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(list), ns) {
		t.Errorf("leftover namespace %s still there", ns)
	}
	if !strings.Contains(string(list), liveNS) {
		t.Errorf("cleanup removed %s, which belongs to a run still in progress", liveNS)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Error("the process inside the leftover namespace was not killed")
	}
}
