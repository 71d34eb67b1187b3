package runner

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/steadfast-pods/steadfast/internal/freeport"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/steadfast-pods/steadfast/internal/buildinfo"
	"github.com/steadfast-pods/steadfast/internal/pod"
)

// Report is the outcome of a run (also written as JSON by --report).
type Report struct {
	OK          bool   `json:"ok"`
	Interrupted bool   `json:"interrupted,omitempty"`
	TimedOut    bool   `json:"timed_out,omitempty"`
	Expected    uint64 `json:"expected_per_publisher"`
	// Published: values generated, summed over publishers.
	Published uint64 `json:"published"`
	// Delivered: distinct values applied, summed over subscribers (and
	// publishers' streams).
	Delivered   uint64 `json:"delivered"`
	Lost        uint64 `json:"lost"`
	Duplicated  uint64 `json:"duplicated"`
	DeadLetters uint64 `json:"dead_letters"`
	Kills       int    `json:"kills"`
	// DriverKills: how many of the kills were of the local media driver
	// (--kill driver or any).
	DriverKills     int       `json:"driver_kills,omitempty"`
	Replacements    int       `json:"replacements"`
	Restarts        int       `json:"restarts"`
	ValuesPerSecond float64   `json:"values_per_second"`
	ElapsedSeconds  float64   `json:"elapsed_seconds"`
	KillToDelivery  []float64 `json:"kill_to_delivering_seconds,omitempty"`
	// DriverKillToDelivery: seconds from each media driver kill to the
	// subscribers delivering again (through the new driver).
	DriverKillToDelivery []float64 `json:"driver_kill_to_delivering_seconds,omitempty"`
	// OutboxFullSeen: a publisher's outbox filled up at some point (its
	// generator was back-pressured).
	OutboxFullSeen bool `json:"outbox_full_seen"`
	// Zombies counts frozen incarnations (--zombie); ZombiesFenced those
	// that stopped by themselves after resuming, fenced by their
	// replacement's higher epoch.
	Zombies       int `json:"zombies,omitempty"`
	ZombiesFenced int `json:"zombies_fenced,omitempty"`
	// DeliverySeconds: from the first value delivered (as scraped) to the
	// last subscriber finishing; DeliveryRate = Delivered / DeliverySeconds
	// (the steady-state throughput, without start-up and shutdown).
	DeliverySeconds float64       `json:"delivery_seconds"`
	DeliveryRate    float64       `json:"delivery_values_per_second"`
	Pods            []PodReport   `json:"pods"`
	Checks          []CheckReport `json:"checks"`
	Problems        []string      `json:"problems,omitempty"`
	// Warnings do not fail the run (e.g. fewer kills than asked: the
	// streams ended first).
	Warnings []string `json:"warnings,omitempty"`
	// WorkDir is the pods' data dirs and logs if they were kept (a failed
	// run, or --work-dir); empty when the runner removed them.
	WorkDir string `json:"work_dir,omitempty"`

	// What ran: the runner's version, when it started, and its flags.
	Version   string       `json:"version"`
	StartTime time.Time    `json:"start_time"`
	Config    ReportConfig `json:"config"`
	// Timeline: one point per status period (for the plots).
	Timeline []TimelinePoint `json:"timeline,omitempty"`
	// KillTimes: seconds since the start of each kill (or freeze).
	KillTimes []KillMark `json:"kill_times,omitempty"`
	// Latency: the subscribers' beat-to-logger latency histogram, if the
	// pods export one (steadfast_delivery_latency_seconds).
	Latency *Histogram `json:"latency_seconds,omitempty"`
	// ReplicationRoundTrip: snapshot pushes from request to a peer's
	// acknowledgement, over every pod (steadfast_replication_round_trip_seconds).
	ReplicationRoundTrip *Histogram `json:"replication_round_trip_seconds,omitempty"`
}

// Histogram is a Prometheus histogram summed over pods.
type Histogram struct {
	Buckets []LatencyBucket `json:"buckets"` // cumulative, finite upper bounds
	Count   uint64          `json:"count"`   // all samples (the +Inf bucket)
	Sum     float64         `json:"sum"`
	// P50 and P99: Quantile(0.5) and Quantile(0.99), as Prometheus's
	// histogram_quantile estimates them from the buckets (0 without
	// samples).
	P50 float64 `json:"p50,omitempty"`
	P99 float64 `json:"p99,omitempty"`
}

// Quantile estimates the q-quantile (0 <= q <= 1) from the buckets as
// Prometheus's histogram_quantile does: it finds the bucket holding the
// rank q×Count and interpolates linearly inside it (from 0 for the first
// bucket). A rank beyond the last finite bucket returns that bucket's
// upper bound (the estimate is then a lower bound). It returns NaN without
// samples or buckets.
func (h *Histogram) Quantile(q float64) float64 {
	if h == nil || h.Count == 0 || len(h.Buckets) == 0 || q < 0 || q > 1 || math.IsNaN(q) {
		return math.NaN()
	}
	rank := q * float64(h.Count)
	lo, below := 0.0, uint64(0)
	for _, b := range h.Buckets {
		if float64(b.Count) >= rank && b.Count > below {
			return lo + (b.UpperBound-lo)*(rank-float64(below))/float64(b.Count-below)
		}
		lo, below = b.UpperBound, b.Count
	}
	return h.Buckets[len(h.Buckets)-1].UpperBound
}

// overflows reports whether the q-quantile lies beyond the last finite
// bucket (Quantile then returns that bucket's bound).
func (h *Histogram) overflows(q float64) bool {
	return h != nil && len(h.Buckets) > 0 && float64(h.Buckets[len(h.Buckets)-1].Count) < q*float64(h.Count)
}

// TimelinePoint is the progress at one moment of the run.
type TimelinePoint struct {
	Seconds   float64 `json:"t"`
	Published uint64  `json:"published"`
	Delivered uint64  `json:"delivered"`
}

// KillMark is one kill (or freeze) of the run.
type KillMark struct {
	Seconds float64 `json:"t"`
	NodeID  string  `json:"node_id"`
	// DeliveringAfter: seconds until its replacement delivered again
	// (0: not measured).
	DeliveringAfter float64 `json:"delivering_after_seconds,omitempty"`
}

// LatencyBucket is one cumulative bucket of a latency histogram.
type LatencyBucket struct {
	UpperBound float64 `json:"le"`
	Count      uint64  `json:"count"`
}

// ReportConfig is the run's configuration as written in the report.
type ReportConfig struct {
	Publishers       int      `json:"publishers"`
	Subscribers      int      `json:"subscribers"`
	Beats            uint64   `json:"beats"`
	Batch            int      `json:"batch"`
	Rate             string   `json:"rate"`
	Outbox           int      `json:"outbox"`
	SnapshotInterval string   `json:"snapshot_interval"`
	Kill             string   `json:"kill,omitempty"`
	KillEvery        string   `json:"kill_every,omitempty"`
	Kills            int      `json:"kills,omitempty"`
	DownFor          string   `json:"down_for,omitempty"`
	Zombie           bool     `json:"zombie,omitempty"`
	PanicEvery       uint64   `json:"panic_every,omitempty"`
	Showstopper      uint64   `json:"showstopper,omitempty"`
	Seed             int64    `json:"seed"`
	Timeout          string   `json:"timeout"`
	BinDir           string   `json:"bin_dir,omitempty"`
	Args             []string `json:"args,omitempty"`
}

func reportConfig(c Config) ReportConfig {
	rc := ReportConfig{
		Publishers: c.Publishers, Subscribers: c.Subscribers, Beats: c.Beats, Batch: c.Batch,
		Rate: c.Rate.String(), Outbox: c.Outbox, SnapshotInterval: c.Snapshot.String(),
		PanicEvery: c.PanicEvery, Showstopper: c.Showstopper, Seed: c.Seed, Timeout: c.Timeout.String(),
		BinDir: c.BinDir, Args: c.Args,
	}
	if c.Kill != "" {
		rc.Kill, rc.KillEvery, rc.Kills, rc.Zombie = c.Kill, c.KillEvery.String(), c.Kills, c.Zombie
		if c.DownFor > 0 {
			rc.DownFor = c.DownFor.String()
		}
	}
	return rc
}

// PodReport describes one node id over all its incarnations.
type PodReport struct {
	NodeID         string   `json:"node_id"`
	Role           string   `json:"role"`
	Incarnations   int      `json:"incarnations"`
	Kills          int      `json:"kills"`
	Epochs         []uint64 `json:"epochs"`
	RestoreSources []string `json:"restore_sources"`
	Restarts       int      `json:"restarts"`
	ExitCodes      []int    `json:"exit_codes"`
	PeakRSSBytes   uint64   `json:"peak_rss_bytes"`
	// CPUSeconds: user + system CPU time of its processes, summed over
	// incarnations (every pod has exited when the report is made). Less
	// sensitive to a loaded machine than throughput: compare CPU per value.
	CPUSeconds float64 `json:"cpu_seconds"`
	// MediaDriverLosses, MediaDriverReattaches: summed over incarnations,
	// as their /status last reported (pods on a media driver only).
	MediaDriverLosses     uint64 `json:"media_driver_losses,omitempty"`
	MediaDriverReattaches uint64 `json:"media_driver_reattaches,omitempty"`
}

// CheckReport is the closed-form check of one publisher's stream at one
// subscriber.
type CheckReport struct {
	Subscriber string `json:"subscriber"`
	Publisher  string `json:"publisher"`
	pod.CheckResult
	// DeadLettered names the dead-lettered values (the first ones the
	// subscriber listed, if there were many).
	DeadLettered []uint64 `json:"dead_lettered_values,omitempty"`
}

// proc is one incarnation of a pod.
type proc struct {
	node     *node
	n        int // incarnation number, from 1
	cmd      *exec.Cmd
	pid      int
	dataDir  string
	logPath  string
	gossip   string
	data     string
	metrics  string
	started  time.Time
	killedAt time.Time // zero unless replacing a killed pod
	killIdx  int       // index of that kill in Runner.kills
	measured bool      // kill → delivering measured
	exited   chan struct{}
	killed   bool
	logFile  *os.File

	// Guarded by Runner.mu (written by the goroutine waiting for exit).
	exitCode  int
	exitError error
	cpu       time.Duration // user + system CPU time, once exited

	// Written by scrapeAll (one goroutine per proc), read after it.
	st       *pod.Status // last /status
	last     metrics     // last /metrics
	hist     map[string]*dto.MetricFamily
	epoch    uint64
	source   string
	restarts int
	peakRSS  uint64
	up       bool   // ready, and attached to its media driver if it has one
	drvLoss  uint64 // media driver losses and reattaches it reported
	drvBack  uint64

	retries    int       // restarts after a port clash
	zombie     bool      // frozen instead of killed (--zombie)
	resumeAt   time.Time // when to SIGCONT a zombie (zero: resumed or none)
	resumedAt  time.Time // when it was resumed
	fencedExit bool      // the zombie stopped by itself, fenced
	judged     bool      // the zombie's fate was recorded
}

// node is one node id.
type node struct {
	id     string
	role   pod.Role
	procs  []*proc
	done   bool // subscriber finished by itself (exit 0)
	kills  int
	starts int // processes started (names the data dirs and logs)
	// published: the highest seq any incarnation of this publisher
	// reported generating (a replacement restored from an older snapshot
	// starts lower).
	published uint64
}

func (n *node) cur() *proc { return n.procs[len(n.procs)-1] }

// Runner runs one scenario.
type Runner struct {
	cfg     Config
	con     *Console // status line, messages and log lines
	log     *slog.Logger
	binDir  string
	workDir string
	ownWork bool
	key     string
	nodes   []*node
	client  *http.Client
	rng     *mrand.Rand
	killSeq int // kills so far (alternate mode)

	aeronDir     string        // pods attach to this media driver ("": embedded)
	dataPorts    map[int]bool  // every data port handed out (start's goroutine)
	driver       *exec.Cmd     // the local media driver (--media-driver local); nil while killed
	driverExited chan struct{} // closed when driver exited
	driverStarts int           // driver processes started

	// A killed driver: restarted at drvRestartAt; then the subscribers'
	// delivered total is watched to pass drvBaseline.
	drvDown      bool
	drvRestartAt time.Time
	drvKilledAt  time.Time
	drvKillIdx   int
	drvMeasuring bool
	drvBaseline  uint64

	mu             sync.Mutex // guards the procs' exit fields, killToDelivery and kills
	killToDelivery []float64  // seconds from a kill to the replacement delivering
	drvToDelivery  []float64  // seconds from a driver kill to delivering again
	kills          []KillMark
	wg             sync.WaitGroup
}

// ErrNotInRepo: without --bin-dir the runner builds the pods from the
// repository it runs in.
var ErrNotInRepo = errors.New("runner: not inside the steadfast repository; run it from the repository (go run ./cmd/runner), or pass --bin-dir with prebuilt publisher and subscriber binaries")

// modulePath is the repository's Go module.
const modulePath = "github.com/steadfast-pods/steadfast"

// New prepares a run: work dir, binaries (built unless BinDir is set). out
// receives the status line, messages and summary: pass a *Console to share
// it with a logger, or any writer.
func New(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) (*Runner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	con, ok := out.(*Console)
	if !ok {
		con = NewConsole(out, IsTerminal(out))
	}
	r := &Runner{cfg: cfg, con: con, log: log, client: &http.Client{Timeout: 3 * time.Second},
		rng: mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x5eed)), aeronDir: cfg.AeronDir, dataPorts: map[int]bool{}}
	if cfg.BinDir == "" {
		if err := checkRepo(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.WorkDir == "" {
		d, err := os.MkdirTemp("", "steadfast-run-")
		if err != nil {
			return nil, err
		}
		r.workDir, r.ownWork = d, true
	} else {
		if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
			return nil, err
		}
		r.workDir = cfg.WorkDir
	}
	done := false
	defer func() {
		if !done && r.ownWork {
			_ = os.RemoveAll(r.workDir)
		}
	}()
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	r.key = base64.StdEncoding.EncodeToString(key[:])
	if cfg.BinDir != "" {
		r.binDir = cfg.BinDir
	} else {
		r.binDir = filepath.Join(r.workDir, "bin")
		if err := build(ctx, r.binDir, con); err != nil {
			return nil, err
		}
	}
	bins := []string{"publisher", "subscriber"}
	if cfg.MediaDriver == "local" {
		bins = append(bins, "mediadriver")
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(r.binDir, b)); err != nil {
			return nil, fmt.Errorf("runner: %s binary: %w", b, err)
		}
	}
	done = true
	return r, nil
}

// checkRepo makes sure `go build` of the pods can work here.
func checkRepo(ctx context.Context) error {
	if _, err := exec.LookPath("go"); err != nil {
		return fmt.Errorf("%w (the go tool is not in PATH)", ErrNotInRepo)
	}
	out, err := exec.CommandContext(ctx, "go", "list", "-m").Output()
	if err != nil || !slices.Contains(strings.Fields(string(out)), modulePath) {
		return ErrNotInRepo
	}
	return nil
}

// build compiles the pods into dir with the go tool.
func build(ctx context.Context, dir string, out io.Writer) error {
	t0 := time.Now()
	fmt.Fprintf(out, "runner: building the pods (go build ./cmd/publisher ./cmd/subscriber ./cmd/mediadriver) ...\n")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator),
		modulePath+"/cmd/publisher", modulePath+"/cmd/subscriber", modulePath+"/cmd/mediadriver")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("runner: go build: %w\n%s", err, b)
	}
	fmt.Fprintf(out, "runner: built in %.1fs\n", time.Since(t0).Seconds())
	return nil
}

// freePort returns a port free for both TCP and UDP on 127.0.0.1.
func freePort() (int, error) { return freeport.TCPUDP() }

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// start launches a new incarnation of n with fresh ports and an empty data
// dir, joining every other live pod.
func (r *Runner) start(n *node) (*proc, error) {
	p := &proc{node: n, n: len(n.procs) + 1, exited: make(chan struct{})}
	var ports [3]int
	for i := range ports {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		for slices.Contains(ports[:i], port) || (i == 1 && r.ipc() && r.dataPorts[port]) {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		ports[i] = port
	}
	p.gossip, p.data, p.metrics = addr(ports[0]), addr(ports[1]), addr(ports[2])
	r.dataPorts[ports[1]] = true
	n.starts++
	p.dataDir = filepath.Join(r.workDir, fmt.Sprintf("%s.%d", n.id, n.starts))
	p.logPath = p.dataDir + ".log"
	if err := os.MkdirAll(p.dataDir, 0o755); err != nil {
		return nil, err
	}
	var seeds []string
	for _, o := range r.nodes {
		if o != n && len(o.procs) > 0 && !o.cur().isExited() {
			seeds = append(seeds, o.cur().gossip)
		}
	}
	args := []string{
		"--node-id", n.id, "--data-dir", p.dataDir, "--bind", p.gossip, "--data-endpoint", p.data,
		"--metrics-addr", p.metrics, "--membership", "local", "--cluster-key", r.key,
		"--log-level", r.cfg.LogLevel, "--snapshot-interval", r.cfg.Snapshot.String(),
	}
	if len(seeds) > 0 {
		args = append(args, "--join", strings.Join(seeds, ","))
	}
	args = append(args, r.driverArgs()...)
	bin := "subscriber"
	if n.role == pod.Publisher {
		bin = "publisher"
		args = append(args, "--rate", r.cfg.Rate.String(), "--beats", strconv.FormatUint(r.cfg.Beats, 10),
			"--batch", strconv.Itoa(r.cfg.Batch), "--outbox", strconv.Itoa(r.cfg.Outbox),
			"--min-subscribers", strconv.Itoa(r.cfg.Subscribers))
	} else {
		args = append(args, "--min-publishers", strconv.Itoa(r.cfg.Publishers),
			"--panic-every", strconv.FormatUint(r.cfg.PanicEvery, 10), "--showstopper", strconv.FormatUint(r.cfg.Showstopper, 10))
	}
	f, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	p.logFile = f
	p.cmd = exec.Command(filepath.Join(r.binDir, bin), args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no stray NODE_ID etc. from the caller
	// The pods die with the runner, even a SIGKILLed one (procattr_*.go).
	p.cmd.SysProcAttr = podProcAttr()
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("runner: start %s: %w", n.id, err)
	}
	p.pid = p.cmd.Process.Pid
	p.started = time.Now()
	n.procs = append(n.procs, p)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		err := p.cmd.Wait()
		r.mu.Lock()
		p.exitError = err
		p.exitCode = p.cmd.ProcessState.ExitCode()
		p.cpu = p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
		r.mu.Unlock()
		f.Close()
		close(p.exited)
	}()
	fmt.Fprintf(r.con, "runner: %s #%d pid %d  http://%s/status  http://%s/metrics\n", n.id, p.n, p.pid, p.metrics, p.metrics)
	r.log.Debug("runner: started", "node_id", n.id, "incarnation", p.n, "pid", p.pid, "gossip", p.gossip, "log", p.logPath)
	return p, nil
}

func (p *proc) isExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// signal sends sig to a running incarnation.
func (p *proc) signal(sig syscall.Signal) {
	if !p.isExited() {
		_ = p.cmd.Process.Signal(sig)
	}
}

func (r *Runner) exitCode(p *proc) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return p.exitCode
}

// Run runs the scenario until every subscriber delivered every stream, the
// context ends (Ctrl-C: graceful stop, then the report), or the timeout.
func (r *Runner) Run(ctx context.Context) (*Report, error) {
	t0 := time.Now()
	for i := 1; i <= r.cfg.Publishers; i++ {
		r.nodes = append(r.nodes, &node{id: fmt.Sprintf("publisher-%d", i), role: pod.Publisher})
	}
	for i := 1; i <= r.cfg.Subscribers; i++ {
		r.nodes = append(r.nodes, &node{id: fmt.Sprintf("subscriber-%d", i), role: pod.Subscriber})
	}
	rep := &Report{Expected: r.cfg.Beats * uint64(r.cfg.Batch), Version: buildinfo.Version(),
		StartTime: t0.UTC().Truncate(time.Millisecond), Config: reportConfig(r.cfg)}
	fmt.Fprintf(r.con, "runner: %d publisher(s) × %d subscriber(s), %d values per publisher (%d beats × %d every %v); work dir %s\n",
		r.cfg.Publishers, r.cfg.Subscribers, rep.Expected, r.cfg.Beats, r.cfg.Batch, r.cfg.Rate, r.workDir)
	if err := r.startDriver(); err != nil {
		return nil, err
	}
	defer r.stopDriver()
	for _, n := range r.nodes {
		if _, err := r.start(n); err != nil {
			r.stopAll()
			return nil, err
		}
	}
	deadline := time.NewTimer(r.cfg.Timeout)
	defer deadline.Stop()
	// The loop polls every 50 ms while a replacement's "delivering again"
	// is being timed, else at the status period.
	tick := time.NewTimer(0)
	defer tick.Stop()
	lastStatus := time.Time{}
	nextKill := time.Now().Add(r.cfg.KillEvery)
	var pending *node // killed, replacement not yet started
	var pendingAt time.Time
	var lastPublished, lastDelivered uint64
	var firstDelivery time.Time
	lastT := time.Now()
	stop, streamsOver := false, false
	for !stop {
		select {
		case <-ctx.Done():
			rep.Interrupted = true
			stop = true
			continue
		case <-deadline.C:
			rep.TimedOut = true
			rep.Problems = append(rep.Problems, fmt.Sprintf("timed out after %v", r.cfg.Timeout))
			stop = true
			continue
		case <-tick.C:
		}
		now := time.Now()
		r.scrapeAll(ctx)
		period := min(r.cfg.Status, 100*time.Millisecond)
		for _, n := range r.nodes {
			if p := n.cur(); !p.killedAt.IsZero() && !p.measured && !p.isExited() {
				period = min(period, 50*time.Millisecond)
			}
		}
		if r.drvDown || r.drvMeasuring {
			period = min(period, 50*time.Millisecond)
		}
		r.measureDriverKill(now)
		tick.Reset(period)
		rep.OutboxFullSeen = rep.OutboxFullSeen || r.outboxFull()

		// Exits.
		for _, n := range r.nodes {
			p := n.cur()
			if n == pending || !p.isExited() || p.killed {
				continue
			}
			code := r.exitCode(p)
			if n.role == pod.Subscriber && code == 0 {
				if !n.done {
					n.done = true
					r.log.Info("runner: subscriber finished", "node_id", n.id)
				}
				continue
			}
			if code == pod.ExitAddrInUse && p.retries < 3 {
				// A port picked by freePort was taken (e.g. by an ephemeral
				// socket) before the pod bound it: start it again.
				r.log.Warn("runner: port already in use; starting the pod again on new ports", "node_id", n.id)
				retries := p.retries + 1
				n.procs = n.procs[:len(n.procs)-1]
				np, err := r.start(n)
				if err == nil {
					np.retries, np.killedAt, np.killIdx = retries, p.killedAt, p.killIdx
					continue
				}
				n.procs = append(n.procs, p)
			}
			if !slices.Contains(rep.Problems, exitProblem(p, code)) {
				rep.Problems = append(rep.Problems, exitProblem(p, code))
			}
			stop = true
		}
		if firstDelivery.IsZero() {
			if _, del, _, _ := r.totals(); del > 0 {
				firstDelivery = now
			}
		}
		allDone, anyDone := true, false
		for _, n := range r.nodes {
			if n.role == pod.Subscriber {
				allDone = allDone && n.done
				anyDone = anyDone || n.done
			}
		}
		streamsOver = streamsOver || anyDone
		if allDone && pending == nil && !r.drvDown && r.beatsDone(rep.Expected) && r.zombiesJudged() {
			stop = true
		}

		// Zombies come back to life after their replacement took over.
		for _, n := range r.nodes {
			for _, p := range n.procs[:len(n.procs)-1] {
				if p.zombie && !p.resumeAt.IsZero() && now.After(p.resumeAt) && !p.isExited() {
					p.resumeAt, p.resumedAt = time.Time{}, now
					_ = p.cmd.Process.Signal(syscall.SIGCONT)
					fmt.Fprintf(r.con, "runner: SIGCONT %s (incarnation %d): a stale incarnation is back\n", n.id, p.n)
				}
				if p.zombie && !p.judged && p.isExited() {
					p.judged = true
					code := r.exitCode(p)
					p.fencedExit = code == pod.ExitFenced
					r.log.Info("runner: zombie stopped", "node_id", n.id, "incarnation", p.n, "exit", code, "fenced", p.fencedExit)
				}
				if p.zombie && !p.judged && !p.resumedAt.IsZero() && now.Sub(p.resumedAt) > 15*time.Second {
					p.judged = true
					rep.Problems = append(rep.Problems, fmt.Sprintf("%s incarnation %d still running 15s after it came back: not fenced", n.id, p.n))
				}
			}
		}

		// A local driver that died without being killed: a fault the run
		// did not ask for.
		if why := r.driverDied(); why != "" {
			rep.Problems = append(rep.Problems, why)
			stop = true
		}

		// Replacement of a killed pod.
		if pending != nil && now.After(pendingAt) {
			if err := r.replace(pending, rep); err != nil {
				stop = true
			}
			pending = nil
		}
		// A killed media driver comes back on its directory.
		if r.drvDown && now.After(r.drvRestartAt) {
			if err := r.restartDriver(rep); err != nil {
				stop = true
			}
		}
		// Kills.
		// (No kills once a subscriber finished: the streams are over.)
		if r.cfg.Kill != "" && rep.Kills < r.cfg.Kills && pending == nil && !r.drvDown && now.After(nextKill) && !stop && !anyDone {
			v, drv := r.victim()
			if drv {
				r.driverKill(rep, t0)
				nextKill = time.Now().Add(r.cfg.KillEvery)
				tick.Reset(50 * time.Millisecond)
			}
			if v != nil {
				p := v.cur()
				p.killed = true
				p.killedAt = time.Now()
				sig := syscall.SIGKILL
				if r.cfg.Zombie {
					sig = syscall.SIGSTOP
					p.zombie, p.resumeAt = true, time.Now().Add(r.cfg.DownFor+2*time.Second)
					p.signal(sig)
				} else {
					p.signal(sig)
					<-p.exited
				}
				v.kills++
				rep.Kills++
				r.mu.Lock()
				p.killIdx = len(r.kills)
				r.kills = append(r.kills, KillMark{Seconds: p.killedAt.Sub(t0).Seconds(), NodeID: v.id})
				r.mu.Unlock()
				fmt.Fprintf(r.con, "runner: %s %s (incarnation %d, pid %d); replacement with an empty data dir%s\n",
					map[bool]string{true: "SIGSTOP", false: "SIGKILL"}[r.cfg.Zombie], v.id, p.n, p.pid,
					map[bool]string{true: " in " + r.cfg.DownFor.String(), false: ""}[r.cfg.DownFor > 0])
				pending, pendingAt = v, time.Now().Add(r.cfg.DownFor)
				nextKill = time.Now().Add(r.cfg.KillEvery)
				if r.cfg.DownFor == 0 {
					if err := r.replace(pending, rep); err != nil {
						stop = true
					}
					pending = nil
					tick.Reset(50 * time.Millisecond)
				}
			}
		}

		// Status line and timeline.
		if now.Sub(lastStatus) >= r.cfg.Status-10*time.Millisecond {
			lastStatus = now
			pub, del, restarts, dead := r.totals()
			dt := now.Sub(lastT).Seconds()
			pubRate, delRate := float64(pub-min(pub, lastPublished))/dt, float64(del-min(del, lastDelivered))/dt
			lastPublished, lastDelivered, lastT = pub, del, now
			rep.Timeline = appendPoint(rep.Timeline, TimelinePoint{Seconds: now.Sub(t0).Seconds(), Published: pub, Delivered: del})
			if !r.cfg.Quiet {
				r.con.Status(r.statusLine(now.Sub(t0), pub, del, pubRate, delRate, restarts, dead, rep.Kills))
			}
		}
	}
	// Last look at the pods, then a graceful stop of everything.
	r.scrapeAll(context.Background())
	r.stopAll()
	rep.ElapsedSeconds = time.Since(t0).Seconds()
	r.finishReport(rep, firstDelivery)
	rep.Timeline = appendPoint(rep.Timeline, TimelinePoint{Seconds: rep.ElapsedSeconds, Published: rep.Published, Delivered: rep.Delivered})
	if r.cfg.Kill != "" && rep.Kills < r.cfg.Kills {
		why := "the streams ended first (raise --beats or lower --kill-every)"
		switch {
		case rep.Interrupted:
			why = "the run was interrupted"
		case rep.TimedOut:
			why = "the run timed out"
		case !streamsOver && len(rep.Problems) > 0:
			why = "the run stopped on a problem"
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("only %d of the %d kills asked for happened: %s", rep.Kills, r.cfg.Kills, why))
	}
	if !r.cfg.Quiet {
		// The last status line says what the summary says.
		r.con.Status(r.statusLine(time.Duration(rep.ElapsedSeconds*float64(time.Second)), rep.Published, rep.Delivered, 0, 0, rep.Restarts, rep.DeadLetters, rep.Kills) + "  (final)")
		r.con.EndStatus()
	}
	return rep, nil
}

// replace starts the replacement of killed node n.
func (r *Runner) replace(n *node, rep *Report) error {
	old := n.cur()
	p, err := r.start(n)
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
		return err
	}
	p.killedAt, p.killIdx = old.killedAt, old.killIdx
	rep.Replacements++
	return nil
}

// maxTimeline bounds the report's timeline: past it, every other point is
// dropped.
const maxTimeline = 2000

func appendPoint(tl []TimelinePoint, pt TimelinePoint) []TimelinePoint {
	if len(tl) >= maxTimeline {
		k := 0
		for i := 0; i < len(tl); i += 2 {
			tl[k] = tl[i]
			k++
		}
		tl = tl[:k]
	}
	return append(tl, pt)
}

func (r *Runner) statusLine(elapsed time.Duration, pub, del uint64, pubRate, delRate float64, restarts int, dead uint64, kills int) string {
	e := r.cfg.Beats * uint64(r.cfg.Batch)
	rate := func(v float64) string {
		if v <= 0 {
			return ""
		}
		return fmt.Sprintf(" (%.0f/s)", v)
	}
	return fmt.Sprintf("%5.1fs  published %d/%d%s  delivered %d/%d%s  restarts %d  dead letters %d  kills %d",
		elapsed.Seconds(), pub, e*uint64(r.cfg.Publishers), rate(pubRate), del,
		e*uint64(r.cfg.Publishers*r.cfg.Subscribers), rate(delRate), restarts, dead, kills)
}

func exitProblem(p *proc, code int) string {
	return fmt.Sprintf("%s (incarnation %d) exited with status %d; see %s", p.node.id, p.n, code, p.logPath)
}

// victim picks a live, healthy pod of the requested role whose work is not
// done, or the local media driver (driver true), or neither when none
// qualifies now.
func (r *Runner) victim() (n *node, driver bool) {
	var c []*node
	want := r.cfg.Kill
	if want == "alternate" {
		want = "subscriber"
		if r.killSeq%2 == 1 {
			want = "publisher"
		}
	}
	for _, n := range r.nodes {
		p := n.cur()
		if p.isExited() || !p.up || n.done {
			continue
		}
		switch {
		case want == "any",
			want == "subscriber" && n.role == pod.Subscriber,
			want == "publisher" && n.role == pod.Publisher:
			c = append(c, n)
		}
	}
	// Wait until every pod is up (and attached to its driver): kills
	// happen one at a time, each after the previous replacement rejoined
	// or the pods reattached to the previous driver's successor.
	for _, n := range r.nodes {
		if !n.done && !n.cur().up {
			return nil, false
		}
	}
	// The driver is one more candidate (not for --zombie: it freezes pods).
	drv := r.driver != nil && !r.cfg.Zombie && (want == "driver" || want == "any")
	k := len(c)
	if drv {
		k++
	}
	if k == 0 {
		return nil, false
	}
	r.killSeq++
	i := r.rng.IntN(k)
	if i == len(c) {
		return nil, true
	}
	return c[i], false
}

// scrapeAll refreshes every live incarnation of the given roles (all if
// none) from its /status and /metrics.
func (r *Runner) scrapeAll(ctx context.Context, roles ...pod.Role) {
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		p := n.cur()
		if p.isExited() || (len(roles) > 0 && !slices.Contains(roles, n.role)) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.scrape(ctx, n, p)
		}()
	}
	wg.Wait()
}

func (r *Runner) scrape(ctx context.Context, n *node, p *proc) {
	if st, err := fetchStatus(ctx, r.client, p.metrics); err == nil {
		p.st = &st
		p.up = st.Phase == pod.PhaseReady && (st.MediaDriver == nil || st.MediaDriver.Attached)
		if md := st.MediaDriver; md != nil {
			p.drvLoss, p.drvBack = md.Losses, md.Reattaches
		}
		if st.Epoch > 0 {
			p.epoch = st.Epoch
		}
		if st.RestoreSource != "" {
			p.source = st.RestoreSource
		}
		if st.Publisher != nil {
			n.published = max(n.published, st.Publisher.LastSeq)
		}
	}
	m, fams, err := scrape(ctx, r.client, p.metrics)
	if err != nil {
		return
	}
	p.last, p.hist = m, fams
	p.restarts = int(m.sum("steadfast_actor_restarts_total"))
	if rss, ok := m.get("process_resident_memory_bytes"); ok && uint64(rss) > p.peakRSS {
		p.peakRSS = uint64(rss)
	}
	if !p.killedAt.IsZero() && !p.measured {
		var v float64
		if n.role == pod.Subscriber {
			v, _ = m.get("steadfast_values_received_total")
		} else {
			v = m.sum("steadfast_values_sent_total")
		}
		if v > 0 {
			p.measured = true
			d := time.Since(p.killedAt).Seconds()
			r.log.Info("runner: replacement delivering", "node_id", n.id, "seconds_since_kill", math.Round(d*1000)/1000)
			r.mu.Lock()
			r.killToDelivery = append(r.killToDelivery, d)
			if p.killIdx < len(r.kills) {
				r.kills[p.killIdx].DeliveringAfter = d
			}
			r.mu.Unlock()
		}
	}
}

// zombiesJudged reports whether every frozen incarnation was resumed and
// stopped (or was declared not fenced).
func (r *Runner) zombiesJudged() bool {
	for _, n := range r.nodes {
		for _, p := range n.procs {
			if p.zombie && !p.judged {
				return false
			}
		}
	}
	return true
}

// beatsDone reports whether every publisher's current incarnation has
// generated the whole stream (a replacement restored from an older snapshot
// regenerates the tail at its pace even when the subscribers already have
// it).
func (r *Runner) beatsDone(expected uint64) bool {
	for _, n := range r.nodes {
		if n.role != pod.Publisher {
			continue
		}
		p := n.cur()
		if p.st == nil || p.st.Publisher == nil || p.st.Publisher.LastSeq < expected {
			return false
		}
	}
	return true
}

// outboxFull reports whether any publisher's outbox is or was full.
func (r *Runner) outboxFull() bool {
	for _, n := range r.nodes {
		if n.role != pod.Publisher {
			continue
		}
		for _, p := range n.procs {
			if p.st != nil && p.st.Publisher != nil && p.st.Publisher.OutboxFull {
				return true
			}
			if p.last != nil && p.last.sum("steadfast_outbox_full_total")+p.last.sum("steadfast_outbox_full_events_total") > 0 {
				return true
			}
		}
	}
	return false
}

// totals sums the progress the pods reported: published is the highest seq
// each publisher generated; delivered the values each subscriber applied
// from each publisher, never more than that publisher published (the two
// are read at slightly different times).
func (r *Runner) totals() (published, delivered uint64, restarts int, dead uint64) {
	pubs := map[string]uint64{}
	for _, n := range r.nodes {
		for _, p := range n.procs {
			restarts += p.restarts
		}
		if n.role == pod.Publisher {
			pubs[n.id] = n.published
			published += n.published
		}
	}
	for _, n := range r.nodes {
		if n.role != pod.Subscriber {
			continue
		}
		p := n.cur()
		if p.st == nil {
			continue
		}
		for _, s := range p.st.Streams {
			if s.Direction == "in" {
				delivered += min(s.Count, pubs[s.Peer])
				dead += s.Dead
			}
		}
	}
	return
}

// stopAll stops every live pod gracefully (SIGTERM, then SIGKILL after 30 s).
// Subscribers go first so that their final snapshots still have the
// publishers as replica holders; the publishers are read once more between
// the two (their published count then covers what the subscribers got).
func (r *Runner) stopAll() {
	for _, role := range []pod.Role{pod.Subscriber, pod.Publisher} {
		if role == pod.Publisher && len(r.nodes) > 0 {
			r.scrapeAll(context.Background(), pod.Publisher)
		}
		var live []*proc
		for _, n := range r.nodes {
			if n.role != role || len(n.procs) == 0 {
				continue
			}
			for _, p := range n.procs {
				if p.isExited() {
					continue
				}
				if p.zombie {
					_ = p.cmd.Process.Signal(syscall.SIGCONT)
				}
				p.signal(syscall.SIGTERM)
				live = append(live, p)
			}
		}
		for _, p := range live {
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				r.log.Warn("runner: pod did not stop in 30s; SIGKILL", "node_id", p.node.id)
				p.signal(syscall.SIGKILL)
				<-p.exited
			}
		}
	}
	r.wg.Wait()
}
