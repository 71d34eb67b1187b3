package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConsole: on a terminal, a line written while a status line is shown
// clears it, goes above it, and the status line is drawn again below;
// elsewhere status lines are plain lines.
func TestConsole(t *testing.T) {
	var b bytes.Buffer
	c := NewConsole(&b, true)
	c.Status("10% done")
	fmt.Fprintf(c, "level=INFO msg=%q\n", "a log line")
	c.Status("20% done")
	c.EndStatus()
	fmt.Fprint(c, "summary") // newline added
	want := "\r\033[K10% done" + "\r\033[K" + "level=INFO msg=\"a log line\"\n" + "10% done" + "\r\033[K20% done" + "\n" + "summary\n"
	if b.String() != want {
		t.Fatalf("tty output\n got %q\nwant %q", b.String(), want)
	}
	b.Reset()
	c = NewConsole(&b, false)
	c.Status("10% done")
	fmt.Fprintln(c, "log")
	c.Status("20% done")
	c.EndStatus()
	if b.String() != "10% done\nlog\n20% done\n" {
		t.Fatalf("plain output %q", b.String())
	}
}

// TestOutsideTheRepository: without --bin-dir, outside the repository the
// runner says what to do (not Go's "go.mod file not found") and leaves no
// temp dir behind.
func TestOutsideTheRepository(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Chdir(t.TempDir())
	_, err := New(t.Context(), DefaultConfig(), &bytes.Buffer{}, nil)
	if !errors.Is(err, ErrNotInRepo) || strings.Contains(err.Error(), "go.mod") || !strings.Contains(err.Error(), "--bin-dir") {
		t.Fatalf("New outside the repository: %v", err)
	}
	var out, errb bytes.Buffer
	if code := Main(nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "not inside the steadfast repository") {
		t.Fatalf("Main outside the repository: exit %d, stderr %q", code, errb.String())
	}
	if es, _ := os.ReadDir(tmp); len(es) != 0 {
		t.Fatalf("left behind in TMPDIR: %v", es)
	}
}

// TestMainReports runs the whole command twice with real pods: the
// reports (JSON and SVG) land where asked with the run's version, start
// time, flags and no stale work dir; a report that cannot be written
// makes the exit status 1 even though the run was ok.
func TestMainReports(t *testing.T) {
	if binDir == "" {
		t.Skip("no binaries (-short)")
	}
	dir := t.TempDir()
	t.Setenv("TMPDIR", t.TempDir())
	args := []string{"--bin-dir", binDir, "--beats", "50", "--batch", "8", "--rate", "5ms", "--quiet"}
	var out, errb bytes.Buffer
	jsonPath, svgPath := filepath.Join(dir, "r", "run.json"), filepath.Join(dir, "r", "run.svg")
	if code := Main(append(args, "--report", jsonPath, "--report", svgPath), &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "report: "+jsonPath) || !strings.Contains(out.String(), "report: "+svgPath) {
		t.Fatalf("report paths not printed:\n%s", out.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	cfg, _ := rep["config"].(map[string]any)
	if rep["ok"] != true || rep["version"] == "" || rep["start_time"] == nil || cfg["beats"] != 50.0 || cfg["rate"] != "5ms" {
		t.Fatalf("report: %s", b)
	}
	if _, ok := rep["work_dir"]; ok {
		t.Fatalf("the work dir was removed but the report names it: %v", rep["work_dir"])
	}
	if es, _ := os.ReadDir(os.Getenv("TMPDIR")); len(es) != 0 {
		t.Fatalf("work dir left behind after a successful run: %v", es)
	}
	if rtt, _ := rep["replication_round_trip_seconds"].(map[string]any); rtt == nil || rtt["count"].(float64) < 1 {
		t.Fatalf("no replication round trips in the report: %v", rep["replication_round_trip_seconds"])
	}
	// The beat-to-logger latency: samples and quantiles in the JSON, the
	// summary and the SVG.
	lat, _ := rep["latency_seconds"].(map[string]any)
	if lat == nil || lat["count"].(float64) < 1 || !(lat["p50"].(float64) > 0) || !(lat["p99"].(float64) >= lat["p50"].(float64)) {
		t.Fatalf("no latency quantiles in the report: %v", rep["latency_seconds"])
	}
	if !regexp.MustCompile(`latency +beat → logger p50 [0-9.]+(µs|ms|s), p99 [0-9.]+(µs|ms|s), mean`).MatchString(out.String()) {
		t.Fatalf("no latency line in the summary:\n%s", out.String())
	}
	if c := checkSVG(t, svgPath); c[".latency-bucket"] == 0 || c[".quantile"] != 4 {
		t.Fatalf("no histogram bars or quantile marks in the SVG: %v", c)
	}

	out.Reset()
	errb.Reset()
	bad := filepath.Join(jsonPath, "not-a-dir", "run.json") // jsonPath is a file
	if code := Main(append(args, "--report", bad), &out, &errb); code != 1 || !strings.Contains(errb.String(), "runner: report:") {
		t.Fatalf("unwritable report: exit %d, stderr %q", code, errb.String())
	}
	if !strings.Contains(out.String(), "OK: nothing lost") {
		t.Fatalf("the run itself should be ok:\n%s", out.String())
	}
}

// TestHelperRunnerProcess is not a test: TestPodsDieWithTheRunner runs the
// runner's Main in a child process through it.
func TestHelperRunnerProcess(t *testing.T) {
	args := os.Getenv("STEADFAST_HELPER_RUNNER_ARGS")
	if args == "" {
		t.Skip("helper process for TestPodsDieWithTheRunner")
	}
	os.Exit(Main(strings.Fields(args), os.Stdout, os.Stderr))
}

// procGone: no such process, or a zombie nobody reaped (it holds no
// ports and runs no code).
func procGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// TestPodsDieWithTheRunner SIGKILLs a real runner process in the middle of
// a run: its pods must not outlive it.
func TestPodsDieWithTheRunner(t *testing.T) {
	if binDir == "" {
		t.Skip("no binaries (-short)")
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	work := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRunnerProcess$")
	cmd.Env = append(os.Environ(), "STEADFAST_HELPER_RUNNER_ARGS="+strings.Join([]string{
		"--bin-dir", binDir, "--work-dir", work, "--beats", "100000", "--rate", "10ms", "--report", "none",
		"--publishers", "1", "--subscribers", "2"}, " "))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidRE := regexp.MustCompile(`^runner: (\S+) #1 pid (\d+) `)
	pids := map[string]int{}
	sc := bufio.NewScanner(stdout)
	lines := make(chan string)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	for progress := false; !progress; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("runner output ended early")
			}
			if m := pidRE.FindStringSubmatch(l); m != nil {
				pids[m[1]], _ = strconv.Atoi(m[2])
			}
			// Delivering: every pod is up and running.
			progress = len(pids) == 3 && regexp.MustCompile(`delivered [1-9]`).MatchString(l)
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("no progress within 60s; pods %v", pids)
		}
	}
	go func() {
		for range lines {
		}
	}()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for id, pid := range pids {
		gone := false
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && !gone; time.Sleep(50 * time.Millisecond) {
			gone = procGone(pid)
		}
		if !gone {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("%s (pid %d) still running 5s after the runner was SIGKILLed", id, pid)
		}
	}
}

// TestMainUsage: bad flags exit 2 with one line on stderr; --help exits 0.
func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{{"--report", "none", "--report", "x.json"}, {"--kill", "everyone"}, {"--report="}} {
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code != 2 || !strings.HasPrefix(errb.String(), "runner: usage: ") || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
	var out bytes.Buffer
	if code := Main([]string{"--help"}, &out, &out); code != 0 || !strings.Contains(out.String(), "-report") {
		t.Errorf("--help: exit %d\n%s", code, out.String())
	}
}

// TestDefaultReportPaths: the default reports go to the user's cache dir,
// or to the temp dir when the cache dir cannot be made (a container whose
// HOME is / and not writable).
func TestDefaultReportPaths(t *testing.T) {
	rep := &Report{StartTime: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)}
	home, tmp := t.TempDir(), t.TempDir()
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", home)
	t.Setenv("TMPDIR", tmp)
	ps := reportPaths(Config{}, rep)
	want := filepath.Join(home, ".cache", "steadfast", "runs", "run-20260102-030405.006")
	if runtime.GOOS == "linux" && (len(ps) != 2 || ps[0] != want+".json" || ps[1] != want+".svg") {
		t.Fatalf("default paths %v, want %s.{json,svg}", ps, want)
	}
	blocked := filepath.Join(home, "file")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", blocked) // $HOME/.cache cannot be created under a file
	ps = reportPaths(Config{}, rep)
	if len(ps) != 2 || filepath.Dir(ps[0]) != filepath.Join(tmp, "steadfast-runs") {
		t.Fatalf("fallback paths %v, want them in %s", ps, filepath.Join(tmp, "steadfast-runs"))
	}
	if ps := reportPaths(Config{Reports: []string{"none"}}, rep); ps != nil {
		t.Fatalf("--report none: %v", ps)
	}
}
