package runner

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// binDir holds the pod binaries, built once (without -race, to keep the
// end-to-end runs fast on a small machine).
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	code := 0
	if !testing.Short() && os.Getenv("STEADFAST_HELPER_RUNNER_ARGS") == "" { // helpers get --bin-dir
		d, err := os.MkdirTemp("", "steadfast-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := build(context.Background(), d, io.Discard); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binDir = d
		code = m.Run()
		os.RemoveAll(d)
	} else {
		code = m.Run()
	}
	os.Exit(code)
}

func testLog(t *testing.T) *slog.Logger {
	if os.Getenv("RUNNER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// run runs one scenario with real processes and returns its report.
func run(t *testing.T, mod func(*Config)) *Report {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end run with real processes; skipped with -short")
	}
	cfg := DefaultConfig()
	cfg.BinDir = binDir
	cfg.WorkDir = t.TempDir()
	cfg.Timeout = 3 * time.Minute
	mod(&cfg)
	var out bytes.Buffer
	r, err := New(context.Background(), cfg, &out, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	PrintSummary(&out, rep)
	t.Log(out.String())
	if err := r.Close(true); err != nil {
		t.Error(err)
	}
	if !rep.OK || rep.Lost != 0 || rep.Duplicated != 0 {
		for _, p := range rep.Pods {
			for i := 1; i <= p.Incarnations; i++ {
				b, _ := os.ReadFile(filepath.Join(cfg.WorkDir, fmt.Sprintf("%s.%d.log", p.NodeID, i)))
				lines := strings.Split(string(b), "\n")
				t.Logf("--- %s.%d.log (last 40 lines)\n%s", p.NodeID, i, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
		t.Fatalf("run failed: ok=%v lost=%d duplicated=%d problems=%v", rep.OK, rep.Lost, rep.Duplicated, rep.Problems)
	}
	want := cfg.Beats * uint64(cfg.Batch)
	if rep.Published != want*uint64(cfg.Publishers) {
		t.Fatalf("published %d, want %d", rep.Published, want*uint64(cfg.Publishers))
	}
	checkOutput(t, cfg, rep, out.String())
	return rep
}

// checkOutput: the progress never shows more delivered than published, the
// last status line says what the summary says, and kills fewer than asked
// are warned about.
func checkOutput(t *testing.T, cfg Config, rep *Report, out string) {
	t.Helper()
	if len(rep.Timeline) == 0 {
		t.Error("empty timeline")
	}
	for _, pt := range rep.Timeline {
		if pt.Delivered > pt.Published*uint64(cfg.Subscribers) {
			t.Errorf("at %.1fs delivered %d > published %d × %d subscribers", pt.Seconds, pt.Delivered, pt.Published, cfg.Subscribers)
		}
	}
	var final string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "published ") && strings.Contains(l, "delivered ") {
			final = l
		}
	}
	if !strings.HasSuffix(final, "(final)") ||
		!strings.Contains(final, fmt.Sprintf("published %d/", rep.Published)) ||
		!strings.Contains(final, fmt.Sprintf("delivered %d/", rep.Delivered)) ||
		!strings.Contains(final, fmt.Sprintf("kills %d", rep.Kills)) {
		t.Errorf("last status line %q does not match the summary (published %d, delivered %d, kills %d)", final, rep.Published, rep.Delivered, rep.Kills)
	}
	if warned := slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "kills asked for") }); warned != (cfg.Kill != "" && rep.Kills < cfg.Kills) {
		t.Errorf("kills %d of %d, warnings %v", rep.Kills, cfg.Kills, rep.Warnings)
	}
	if rep.Version == "" || rep.StartTime.IsZero() || rep.Config.Beats != cfg.Beats || rep.WorkDir != cfg.WorkDir {
		t.Errorf("report header: version %q start %v config %+v work dir %q", rep.Version, rep.StartTime, rep.Config, rep.WorkDir)
	}
	for _, n := range []string{"publisher-1", "subscriber-1"} {
		if !regexp.MustCompile(n + ` #1 pid \d+  http://127\.0\.0\.1:\d+/status  http://127\.0\.0\.1:\d+/metrics`).MatchString(out) {
			t.Errorf("no URLs printed for %s", n)
		}
	}
}

func TestDefaultRun(t *testing.T) {
	rep := run(t, func(c *Config) {})
	if rep.Delivered != 64000 || rep.Kills != 0 || len(rep.Pods) != 2 {
		t.Fatalf("report %+v", rep)
	}
	if h := rep.Latency; h == nil || h.Count == 0 || h.P50 <= 0 || h.P99 < h.P50 {
		t.Fatalf("beat-to-logger latency %+v", h)
	}
	t.Logf("beat-to-logger latency: p50 %s, p99 %s over %d batches", seconds(rep.Latency.P50), seconds(rep.Latency.P99), rep.Latency.Count)
	for _, p := range rep.Pods {
		if len(p.RestoreSources) != 1 || p.RestoreSources[0] != "none" || len(p.Epochs) != 1 || p.Epochs[0] != 1 {
			t.Errorf("%s: restore %v epochs %v", p.NodeID, p.RestoreSources, p.Epochs)
		}
		if p.CPUSeconds <= 0 || p.CPUSeconds > 10*rep.ElapsedSeconds {
			t.Errorf("%s: CPU %.3fs over a %.1fs run", p.NodeID, p.CPUSeconds, rep.ElapsedSeconds)
		}
	}
}

func TestPanicsAndShowstopper(t *testing.T) {
	rep := run(t, func(c *Config) {
		c.Beats, c.Batch, c.Rate = 400, 32, 5*time.Millisecond
		c.PanicEvery, c.Showstopper = 1000, 4321
	})
	n := uint64(400 * 32)
	if rep.DeadLetters != 1 || rep.Delivered != n-1 {
		t.Fatalf("dead letters %d, delivered %d; want 1 and %d", rep.DeadLetters, rep.Delivered, n-1)
	}
	if len(rep.Checks) != 1 || !slices.Equal(rep.Checks[0].DeadLettered, []uint64{4321}) {
		t.Fatalf("dead-lettered values %+v, want [4321]", rep.Checks)
	}
	var sum bytes.Buffer
	PrintSummary(&sum, rep)
	if !strings.Contains(sum.String(), "dead letters 1 (value 4321)") {
		t.Fatalf("summary does not name the dead letter:\n%s", sum.String())
	}
	// Injected panics (the worker takes whole batches and injects at most
	// one per batch; behind the showstopper's stall the publisher coalesces
	// the backlog into few batches) plus the showstopper's crashes.
	if want := 1 + 3; rep.Restarts < want {
		t.Fatalf("restarts %d, want at least %d", rep.Restarts, want)
	}
}

func TestKillAndReplaceUnderLoad(t *testing.T) {
	rep := run(t, func(c *Config) {
		c.Beats, c.Batch, c.Rate = 4000, 64, 5*time.Millisecond
		c.Kill, c.Kills, c.KillEvery = "alternate", 6, 2*time.Second
	})
	if rep.Kills != 6 || rep.Replacements != 6 {
		t.Fatalf("kills %d replacements %d, want 6 and 6", rep.Kills, rep.Replacements)
	}
	for _, p := range rep.Pods {
		if p.Kills != 3 || p.Incarnations != 4 {
			t.Errorf("%s: %d kills, %d incarnations; want 3 and 4", p.NodeID, p.Kills, p.Incarnations)
		}
		peers := 0
		for _, s := range p.RestoreSources {
			if strings.HasPrefix(s, "peer:") {
				peers++
			}
		}
		if peers != 3 {
			t.Errorf("%s: restore sources %v, want 3 peer restores (empty-disk replacements)", p.NodeID, p.RestoreSources)
		}
		for i := 1; i < len(p.Epochs); i++ {
			if p.Epochs[i] <= p.Epochs[i-1] {
				t.Errorf("%s: epochs %v do not increase", p.NodeID, p.Epochs)
			}
		}
	}
}

// TestLocalMediaDriver: --media-driver local runs one mediadriver process,
// every pod (replacements too) attaches to it, pods are SIGKILLed and
// replaced, the stream is delivered exactly once (run checks), and the
// driver removes its directory when the runner stops it. Over IPC (the
// default) the victims alternate between subscriber and publisher (whose
// dead clients stay on the driver until their liveness timeout, their
// publications and subscriptions with them), and then are any pod or the
// driver itself (with seed 1: the publisher twice and the driver once);
// over UDP they alternate.
func TestLocalMediaDriver(t *testing.T) {
	for _, tc := range []struct {
		transport, kill string
		kills           int
	}{{"ipc", "alternate", 3}, {"ipc", "any", 3}, {"udp", "alternate", 2}} {
		t.Run(tc.transport+"-"+tc.kill, func(t *testing.T) {
			var work string
			rep := run(t, func(c *Config) {
				c.MediaDriver = "local"
				if tc.transport != "ipc" { // ipc: the default
					c.LocalTransport = tc.transport
				}
				c.Beats, c.Batch, c.Rate = 2000, 64, 5*time.Millisecond
				c.Kill, c.Kills, c.KillEvery = tc.kill, tc.kills, 2*time.Second
				work = c.WorkDir
			})
			if rep.Kills != tc.kills || rep.Replacements != tc.kills-rep.DriverKills || rep.Replacements == 0 {
				t.Fatalf("kills %d (driver %d), replacements %d; want %d kills, a replacement for each pod killed",
					rep.Kills, rep.DriverKills, rep.Replacements, tc.kills)
			}
			want := fmt.Sprintf("ipc=%v", tc.transport == "ipc")
			for _, p := range rep.Pods {
				for i := 1; i <= p.Incarnations; i++ {
					b, err := os.ReadFile(filepath.Join(work, fmt.Sprintf("%s.%d.log", p.NodeID, i)))
					if err != nil {
						t.Fatal(err)
					}
					_, line, ok := strings.Cut(string(b), "attached to media driver")
					line, _, _ = strings.Cut(line, "\n")
					if !ok || !strings.Contains(line, want) {
						t.Errorf("%s.%d: attached to the media driver %v, %q; want %s", p.NodeID, i, ok, line, want)
					}
				}
			}
			checkDriverCleanedUp(t, work)
		})
	}
}

// checkDriverCleanedUp: the local driver, stopped by the runner, removed
// its cnc.dat.
func checkDriverCleanedUp(t *testing.T, work string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(work, "aeron", "cnc.dat")); !os.IsNotExist(err) {
		t.Errorf("the media driver's cnc.dat is still there after the run: %v", err)
	}
}

// TestDriverKills: --media-driver local --kill driver. The runner SIGKILLs
// the mediadriver process twice in the middle of the stream and starts a
// new one on the same directory each time (which reclaims the dead one's
// files); the pods stay up, report the loss, reattach by themselves, and
// the stream ends exactly once (run checks). Nothing is timed: the kill →
// delivering figures are logged, not asserted.
func TestDriverKills(t *testing.T) {
	var work string
	rep := run(t, func(c *Config) {
		c.MediaDriver = "local"
		// 25 s of beats: both kills come while values are still being
		// generated, so delivery resumes after each.
		c.Beats, c.Batch, c.Rate = 5000, 64, 5*time.Millisecond
		c.Kill, c.Kills, c.KillEvery = "driver", 2, 3*time.Second
		work = c.WorkDir
	})
	if rep.Kills != 2 || rep.DriverKills != 2 || rep.Replacements != 0 {
		t.Fatalf("kills %d, driver kills %d, replacements %d; want 2, 2, 0", rep.Kills, rep.DriverKills, rep.Replacements)
	}
	t.Logf("driver kill → delivering again: %v s", rep.DriverKillToDelivery)
	if len(rep.DriverKillToDelivery) != 2 {
		t.Errorf("delivery resumed after %d of the 2 driver kills (%v)", len(rep.DriverKillToDelivery), rep.DriverKillToDelivery)
	}
	for _, k := range rep.KillTimes {
		if k.NodeID != driverNode {
			t.Errorf("kill mark %+v, want the media driver", k)
		}
	}
	for _, p := range rep.Pods {
		// A loaded machine may add a false loss: lower bounds.
		if p.Incarnations != 1 || p.MediaDriverLosses < 2 || p.MediaDriverReattaches < 2 {
			t.Errorf("%s: %d incarnations, driver lost %d, reattached %d; want 1 and at least 2, 2",
				p.NodeID, p.Incarnations, p.MediaDriverLosses, p.MediaDriverReattaches)
		}
		b, err := os.ReadFile(filepath.Join(work, p.NodeID+".1.log"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{"pod: media driver lost", "pod: media driver back; reattached"} {
			if !strings.Contains(string(b), line) {
				t.Errorf("%s did not log %q", p.NodeID, line)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(work, "mediadriver.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "reclaimed the directory of a dead driver"); n != 2 {
		t.Errorf("the driver log shows %d reclaims, want 2:\n%s", n, b)
	}
	checkDriverCleanedUp(t, work)
}

// TestDriverDiesByItself: the local driver is SIGKILLed from outside the
// runner (as a crash would end it): the run stops at once and fails with a
// problem naming the driver, instead of waiting for its timeout with the
// pods waiting for a driver that nobody restarts.
func TestDriverDiesByItself(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run with real processes; skipped with -short")
	}
	cfg := DefaultConfig()
	cfg.BinDir, cfg.WorkDir, cfg.MediaDriver = binDir, t.TempDir(), "local"
	cfg.Beats, cfg.Rate = 1000000, 5*time.Millisecond // never ends by itself
	var out bytes.Buffer
	r, err := New(context.Background(), cfg, &out, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(true)
	done := make(chan *Report, 1)
	go func() {
		rep, err := r.Run(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	var pid int64
	for pid == 0 {
		time.Sleep(50 * time.Millisecond)
		if m, err := cnc.MapFile(filepath.Join(cfg.WorkDir, "aeron", cnc.FileName)); err == nil {
			if c, err := cnc.Open(m.Data); err == nil {
				pid = c.Meta.Pid
			}
			m.Close()
		}
	}
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	rep := <-done
	if rep == nil || rep.OK || rep.TimedOut || !slices.ContainsFunc(rep.Problems, func(p string) bool {
		return strings.Contains(p, "mediadriver") && strings.Contains(p, "killed")
	}) {
		t.Fatalf("report after the driver died: %+v\n%s", rep, out.String())
	}
}

// TestKillAnyIncludesTheDriver: with a local driver, --kill any picks among
// the pods and the driver; without one, or with --zombie, never the driver.
func TestKillAnyIncludesTheDriver(t *testing.T) {
	mk := func(mod func(*Config), driver bool) *Runner {
		cfg := DefaultConfig()
		cfg.Kill = "any"
		mod(&cfg)
		r := &Runner{cfg: cfg, rng: mrand.New(mrand.NewPCG(1, 2))}
		for _, id := range []string{"publisher-1", "subscriber-1"} {
			p := &proc{exited: make(chan struct{}), up: true}
			r.nodes = append(r.nodes, &node{id: id, procs: []*proc{p}})
		}
		if driver {
			r.driver = &exec.Cmd{}
		}
		return r
	}
	for _, tc := range []struct {
		name   string
		mod    func(*Config)
		driver bool
		want   string // which kinds of victim must come up: "pods", "driver", "both"
	}{
		{"any, local driver", func(c *Config) { c.MediaDriver = "local" }, true, "both"},
		{"driver", func(c *Config) { c.MediaDriver, c.Kill = "local", "driver" }, true, "driver"},
		{"any, embedded", func(c *Config) {}, false, "pods"},
		{"any, zombie", func(c *Config) { c.MediaDriver, c.Zombie = "local", true }, true, "pods"},
	} {
		r := mk(tc.mod, tc.driver)
		pods, drivers := 0, 0
		for range 200 {
			n, drv := r.victim()
			switch {
			case drv && n == nil:
				drivers++
			case !drv && n != nil:
				pods++
			default:
				t.Fatalf("%s: victim() = %v, %v", tc.name, n, drv)
			}
		}
		if got := map[bool]map[bool]string{true: {true: "both", false: "pods"}, false: {true: "driver", false: "none"}}[pods > 0][drivers > 0]; got != tc.want {
			t.Errorf("%s: %d pod and %d driver victims, want %s", tc.name, pods, drivers, tc.want)
		}
	}
	// A pod not yet reattached to the driver holds every kill back.
	r := mk(func(c *Config) { c.MediaDriver = "local" }, true)
	r.nodes[1].procs[0].up = false
	if n, drv := r.victim(); n != nil || drv {
		t.Errorf("victim with a pod not up: %v, %v", n, drv)
	}
}

func TestTwoPublishersTwoSubscribersWithKills(t *testing.T) {
	rep := run(t, func(c *Config) {
		c.Publishers, c.Subscribers = 2, 2
		c.Beats, c.Batch, c.Rate = 2500, 64, 2*time.Millisecond
		c.Kill, c.Kills, c.KillEvery = "any", 3, 1500*time.Millisecond
	})
	if len(rep.Checks) != 4 {
		t.Fatalf("%d checks, want 4 (every subscriber × every publisher)", len(rep.Checks))
	}
	if rep.Delivered != 4*2500*64 {
		t.Fatalf("delivered %d", rep.Delivered)
	}
	if rep.Kills < 1 {
		t.Fatalf("no kill happened")
	}
}

// TestZombiesAreFenced freezes the subscriber and then the publisher
// (SIGSTOP), starts their replacements, and resumes the stale incarnations:
// each must learn of the higher epoch of its node id and stop itself, and
// nothing it sends may be applied.
func TestZombiesAreFenced(t *testing.T) {
	rep := run(t, func(c *Config) {
		c.Beats, c.Batch, c.Rate = 3000, 32, 3*time.Millisecond
		c.Kill, c.Kills, c.KillEvery, c.Zombie = "alternate", 2, 2*time.Second, true
	})
	if rep.Zombies != 2 || rep.ZombiesFenced != 2 {
		t.Fatalf("zombies %d, fenced %d; want 2 and 2", rep.Zombies, rep.ZombiesFenced)
	}
}

func TestSubscriberDownLongerThanOutbox(t *testing.T) {
	rep := run(t, func(c *Config) {
		c.Beats, c.Batch, c.Rate = 1500, 64, 2*time.Millisecond
		c.Outbox = 2048
		c.Kill, c.Kills, c.KillEvery, c.DownFor = "subscriber", 1, time.Second, 3*time.Second
	})
	if !rep.OutboxFullSeen {
		t.Fatal("the outbox never filled: the generator was not back-pressured")
	}
	if rep.Kills != 1 {
		t.Fatalf("kills %d", rep.Kills)
	}
}

// TestFewerKillsThanAsked: the stream ends before the kills asked for;
// the run is ok, with a warning saying so.
func TestFewerKillsThanAsked(t *testing.T) {
	rep := run(t, func(c *Config) {
		c.Beats, c.Batch, c.Rate = 600, 16, 5*time.Millisecond
		c.Kill, c.Kills, c.KillEvery = "subscriber", 20, 1500*time.Millisecond
	})
	if rep.Kills >= 20 || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "the streams ended first") {
		t.Fatalf("kills %d, warnings %v", rep.Kills, rep.Warnings)
	}
}

func TestParseFlags(t *testing.T) {
	c, err := ParseFlags(nil, nil)
	if err != nil || c.Publishers != 1 || c.Subscribers != 1 || c.Beats*uint64(c.Batch) != 64000 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	var out bytes.Buffer
	if _, err := ParseFlags([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-kill-every") {
		t.Fatalf("help: %v %q", err, out.String())
	}
	for _, bad := range [][]string{{"--kill", "everyone"}, {"--publishers", "0"}, {"--beats", "0"}, {"--rate", "x"}, {"--outbox", "1", "--batch", "2"}, {"stray"}} {
		if _, err := ParseFlags(bad, nil); !errors.Is(err, ErrUsage) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	m, fams, err := parseMetrics(strings.NewReader(`# HELP x y
steadfast_up 1
steadfast_logger_applied_values{publisher="p-1"} 12
steadfast_logger_applied_values{publisher="p-2"} 30
weird{a="q\"uo,te",b="x"} 2.5e+03
# TYPE lat_seconds histogram
lat_seconds_bucket{le="0.1"} 3
lat_seconds_bucket{le="+Inf"} 5
lat_seconds_sum 0.7
lat_seconds_count 5
`))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.get("steadfast_up"); v != 1 {
		t.Error("up")
	}
	if v := m.sum("steadfast_logger_applied_values"); v != 42 {
		t.Errorf("sum %v", v)
	}
	if v, ok := m.get("weird", "a", `q"uo,te`, "b", "x"); !ok || v != 2500 {
		t.Errorf("escaped label: %v %v", v, ok)
	}
	if v, _ := m.get("lat_seconds_count"); v != 5 || fams["lat_seconds"].GetMetric()[0].GetHistogram().GetBucket()[0].GetCumulativeCount() != 3 {
		t.Errorf("histogram: count %v, family %v", v, fams["lat_seconds"])
	}
	if _, _, err := parseMetrics(strings.NewReader("broken{a=\"1\" 3\n")); err == nil {
		t.Error("a malformed exposition was accepted")
	}
}

func TestEmptyBinDirRejected(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool")
	}
	if _, err := New(context.Background(), func() Config { c := DefaultConfig(); c.BinDir = t.TempDir(); c.WorkDir = t.TempDir(); return c }(), io.Discard, nil); err == nil {
		t.Fatal("an empty bin dir was accepted")
	}
}

// BenchmarkEndToEnd measures publisher → subscriber → logger throughput with
// real processes on loopback, for batch sizes 1, 64 and 1024, without and
// with chaos (SIGKILL + empty-disk replacement, alternating subscriber and
// publisher, every second). Run it with
//
//	go test -run '^$' -bench EndToEnd -benchtime 1x ./internal/runner
//
// Metrics: values/s while delivering, values/s over the whole run (start-up
// included), peak RSS per role, median kill → replacement delivering.
func BenchmarkEndToEnd(b *testing.B) {
	if binDir == "" {
		b.Skip("no binaries (-short)")
	}
	for _, bs := range []struct {
		batch int
		beats uint64
	}{{1, 3_000_000}, {64, 200_000}, {1024, 15_000}} {
		for _, chaos := range []bool{false, true} {
			beats := bs.beats
			if chaos {
				beats *= 3 // long enough for several kills one second apart
			}
			name := fmt.Sprintf("batch=%d/chaos=%v", bs.batch, chaos)
			b.Run(name, func(b *testing.B) {
				for range b.N {
					cfg := DefaultConfig()
					cfg.BinDir, cfg.WorkDir, cfg.Quiet = binDir, b.TempDir(), true
					cfg.Batch, cfg.Beats, cfg.Rate = bs.batch, beats, time.Microsecond
					cfg.Outbox = 1 << 18
					if chaos {
						cfg.Kill, cfg.Kills, cfg.KillEvery = "alternate", 4, time.Second
					}
					r, err := New(context.Background(), cfg, io.Discard, nil)
					if err != nil {
						b.Fatal(err)
					}
					rep, err := r.Run(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					_ = r.Close(false)
					if !rep.OK {
						b.Fatalf("run failed: %+v", rep.Problems)
					}
					b.ReportMetric(rep.DeliveryRate, "values/s")
					b.ReportMetric(rep.ValuesPerSecond, "values/s-whole-run")
					for _, p := range rep.Pods {
						b.ReportMetric(float64(p.PeakRSSBytes)/(1<<20), "MiB-RSS-"+p.Role)
					}
					if len(rep.KillToDelivery) > 0 {
						s := append([]float64(nil), rep.KillToDelivery...)
						sort.Float64s(s)
						b.ReportMetric(s[len(s)/2]*1000, "ms-kill-to-delivering")
					}
					b.ReportMetric(float64(rep.Kills), "kills")
				}
			})
		}
	}
}

// TestPodBinariesUsage runs the real pod binaries: --help exits 0 and names
// every flag with its variable; a bad flag or variable exits 2 with one line
// on stderr; the healthcheck subcommand fails (1) when nothing listens.
func TestPodBinariesUsage(t *testing.T) {
	if binDir == "" {
		t.Skip("no binaries (-short)")
	}
	runBin := func(bin string, env []string, args ...string) (int, string, string) {
		cmd := exec.Command(filepath.Join(binDir, bin), args...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}
	for _, bin := range []string{"publisher", "subscriber"} {
		code, out, _ := runBin(bin, nil, "--help")
		if code != 0 || !strings.Contains(out, "--data-endpoint [DATA_ENDPOINT]") || !strings.Contains(out, "--cluster-key [CLUSTER_KEY]") {
			t.Errorf("%s --help: exit %d\n%s", bin, code, out)
		}
		for _, c := range []struct {
			env  []string
			args []string
		}{{nil, []string{"--bind", "nowhere"}}, {[]string{"DATA_ENDPOINT=x"}, nil}, {nil, []string{"--no-such-flag"}}} {
			code, _, stderr := runBin(bin, c.env, c.args...)
			if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || stderr == "" {
				t.Errorf("%s %v %v: exit %d, stderr %q; want 2 and one line", bin, c.env, c.args, code, stderr)
			}
		}
		if code, _, _ := runBin(bin, []string{"METRICS_ADDR=127.0.0.1:1"}, "healthcheck"); code != 1 {
			t.Errorf("%s healthcheck with nothing listening: exit %d, want 1", bin, code)
		}
	}
}

func TestMediaDriverFlags(t *testing.T) {
	c, err := ParseFlags([]string{"--media-driver", "local"}, nil)
	if err != nil || c.MediaDriver != "local" {
		t.Fatalf("--media-driver local: %v %q", err, c.MediaDriver)
	}
	if c.LocalTransport != "ipc" {
		t.Errorf("--local-transport defaults to %q, want ipc", c.LocalTransport)
	}
	if c, err := ParseFlags([]string{"--media-driver", "local", "--local-transport", "udp"}, nil); err != nil || c.LocalTransport != "udp" {
		t.Errorf("--local-transport udp: %v %q", err, c.LocalTransport)
	}
	c, err = ParseFlags([]string{"--media-driver", "local", "--kill", "driver", "--driver-timeout", "5s"}, nil)
	if err != nil || c.Kill != "driver" || c.DriverTimeout != 5*time.Second {
		t.Fatalf("--kill driver: %v %+v", err, c)
	}
	for _, bad := range [][]string{{"--media-driver", "remote"}, {"--media-driver", ""}, {"--media-driver", "local", "--aeron-dir", "/dev/shm/x"},
		{"--kill", "driver"}, {"--kill", "driver", "--aeron-dir", "/dev/shm/x"}, {"--media-driver", "local", "--kill", "driver", "--zombie"},
		{"--media-driver", "local", "--driver-timeout", "10ms"}, {"--media-driver", "local", "--local-transport", "shm"}} {
		if _, err := ParseFlags(bad, nil); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v, want ErrUsage", bad, err)
		}
	}
}
