package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
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
	if probeDir != "" {
		os.RemoveAll(probeDir)
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
