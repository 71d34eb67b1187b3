package runner

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	Delivered       uint64    `json:"delivered"`
	Lost            uint64    `json:"lost"`
	Duplicated      uint64    `json:"duplicated"`
	DeadLetters     uint64    `json:"dead_letters"`
	Kills           int       `json:"kills"`
	Replacements    int       `json:"replacements"`
	Restarts        int       `json:"restarts"`
	ValuesPerSecond float64   `json:"values_per_second"`
	ElapsedSeconds  float64   `json:"elapsed_seconds"`
	KillToDelivery  []float64 `json:"kill_to_delivering_seconds,omitempty"`
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
	WorkDir         string        `json:"work_dir,omitempty"`
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
}

// CheckReport is the closed-form check of one publisher's stream at one
// subscriber.
type CheckReport struct {
	Subscriber string `json:"subscriber"`
	Publisher  string `json:"publisher"`
	pod.CheckResult
}

// proc is one incarnation of a pod.
type proc struct {
	node       *node
	n          int // incarnation number, from 1
	cmd        *exec.Cmd
	dataDir    string
	logPath    string
	gossip     string
	data       string
	metrics    string
	started    time.Time
	killedAt   time.Time // zero unless replacing a killed pod
	measured   bool      // kill → delivering measured
	exited     chan struct{}
	exitCode   int
	killed     bool
	last       metrics // last successful scrape
	epoch      uint64
	source     string
	restarts   int
	peakRSS    uint64
	up         bool
	logFile    *os.File
	exitError  error
	retries    int       // restarts after a port clash
	zombie     bool      // frozen instead of killed (--zombie)
	resumeAt   time.Time // when to SIGCONT a zombie (zero: resumed or none)
	resumedAt  time.Time // when it was resumed
	fencedExit bool      // the zombie stopped by itself, fenced
	judged     bool      // the zombie's fate was recorded
}

// portClash reports whether the incarnation failed to bind a port.
func (p *proc) portClash() bool {
	b, err := os.ReadFile(p.logPath)
	return err == nil && strings.Contains(string(b), "address already in use")
}

// node is one node id.
type node struct {
	id     string
	role   pod.Role
	procs  []*proc
	done   bool // subscriber finished by itself (exit 0)
	kills  int
	starts int // processes started (names the data dirs and logs)
}

func (n *node) cur() *proc { return n.procs[len(n.procs)-1] }

// Runner runs one scenario.
type Runner struct {
	cfg     Config
	out     io.Writer // status and summary
	log     *slog.Logger
	binDir  string
	workDir string
	ownWork bool
	key     string
	nodes   []*node
	client  *http.Client
	rng     *mrand.Rand
	killSeq int // kills so far (alternate mode)
	tty     bool

	mu             sync.Mutex // guards the procs' exit fields and killToDelivery
	killToDelivery []float64  // seconds from a kill to the replacement delivering
	wg             sync.WaitGroup
}

// New prepares a run: work dir, binaries (built unless BinDir is set).
func New(ctx context.Context, cfg Config, out io.Writer, log *slog.Logger) (*Runner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Runner{cfg: cfg, out: out, log: log, client: &http.Client{Timeout: 3 * time.Second},
		rng: mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x5eed))}
	if f, ok := out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			r.tty = true
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
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	r.key = base64.StdEncoding.EncodeToString(key[:])
	if cfg.BinDir != "" {
		r.binDir = cfg.BinDir
	} else {
		r.binDir = filepath.Join(r.workDir, "bin")
		if err := build(ctx, r.binDir, out); err != nil {
			return nil, err
		}
	}
	for _, b := range []string{"publisher", "subscriber"} {
		if _, err := os.Stat(filepath.Join(r.binDir, b)); err != nil {
			return nil, fmt.Errorf("runner: %s binary: %w", b, err)
		}
	}
	return r, nil
}

// build compiles the pods into dir with the go tool.
func build(ctx context.Context, dir string, out io.Writer) error {
	t0 := time.Now()
	fmt.Fprintf(out, "runner: building the pods (go build ./cmd/publisher ./cmd/subscriber) ...\n")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator),
		"github.com/steadfast-pods/steadfast/cmd/publisher", "github.com/steadfast-pods/steadfast/cmd/subscriber")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("runner: go build: %w\n%s", err, b)
	}
	fmt.Fprintf(out, "runner: built in %.1fs\n", time.Since(t0).Seconds())
	return nil
}

// freePort returns a port free for both TCP and UDP on 127.0.0.1.
func freePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("runner: no free port")
}

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
		for slices.Contains(ports[:i], port) {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		ports[i] = port
	}
	p.gossip, p.data, p.metrics = addr(ports[0]), addr(ports[1]), addr(ports[2])
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
	// Own process group: a terminal's Ctrl-C reaches the runner only, which
	// then stops the pods in order (subscribers first).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("runner: start %s: %w", n.id, err)
	}
	p.started = time.Now()
	n.procs = append(n.procs, p)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		err := p.cmd.Wait()
		r.mu.Lock()
		p.exitError = err
		p.exitCode = p.cmd.ProcessState.ExitCode()
		r.mu.Unlock()
		f.Close()
		close(p.exited)
	}()
	r.log.Debug("runner: started", "node_id", n.id, "incarnation", p.n, "pid", p.cmd.Process.Pid, "gossip", p.gossip)
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
	rep := &Report{Expected: r.cfg.Beats * uint64(r.cfg.Batch)}
	fmt.Fprintf(r.out, "runner: %d publisher(s) × %d subscriber(s), %d values per publisher (%d beats × %d every %v); work dir %s\n",
		r.cfg.Publishers, r.cfg.Subscribers, rep.Expected, r.cfg.Beats, r.cfg.Batch, r.cfg.Rate, r.workDir)
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
	var lastPublished, lastDelivered float64
	var firstDelivery time.Time
	lastT := time.Now()
	stop := false
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
		tick.Reset(period)
		if pb, ok := r.outboxFull(); ok {
			rep.OutboxFullSeen = rep.OutboxFullSeen || pb
		}

		// Exits.
		for _, n := range r.nodes {
			p := n.cur()
			if n == pending || !p.isExited() || p.killed {
				continue
			}
			r.mu.Lock()
			code := p.exitCode
			r.mu.Unlock()
			if n.role == pod.Subscriber && code == 0 {
				if !n.done {
					n.done = true
					r.log.Info("runner: subscriber finished", "node_id", n.id)
				}
				continue
			}
			if code != 0 && p.portClash() && p.retries < 3 {
				// A port picked by freePort was taken (e.g. by an ephemeral
				// socket) before the pod bound it: start it again.
				r.log.Warn("runner: port already in use; starting the pod again on new ports", "node_id", n.id)
				retries := p.retries + 1
				n.procs = n.procs[:len(n.procs)-1]
				np, err := r.start(n)
				if err == nil {
					np.retries, np.killedAt = retries, p.killedAt
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
		if allDone && pending == nil && r.beatsDone(rep.Expected) && r.zombiesJudged() {
			stop = true
		}

		// Zombies come back to life after their replacement took over.
		for _, n := range r.nodes {
			for _, p := range n.procs[:len(n.procs)-1] {
				if p.zombie && !p.resumeAt.IsZero() && now.After(p.resumeAt) && !p.isExited() {
					p.resumeAt, p.resumedAt = time.Time{}, now
					_ = p.cmd.Process.Signal(syscall.SIGCONT)
					fmt.Fprintf(r.out, "%srunner: SIGCONT %s (incarnation %d): a stale incarnation is back\n", r.clearLine(), n.id, p.n)
				}
				if p.zombie && !p.judged && p.isExited() {
					p.judged = true
					r.mu.Lock()
					code := p.exitCode
					r.mu.Unlock()
					b, _ := os.ReadFile(p.logPath)
					p.fencedExit = code != 0 && strings.Contains(string(b), "fenced")
					r.log.Info("runner: zombie stopped", "node_id", n.id, "incarnation", p.n, "exit", code, "fenced", p.fencedExit)
				}
				if p.zombie && !p.judged && !p.resumedAt.IsZero() && now.Sub(p.resumedAt) > 15*time.Second {
					p.judged = true
					rep.Problems = append(rep.Problems, fmt.Sprintf("%s incarnation %d still running 15s after it came back: not fenced", n.id, p.n))
				}
			}
		}

		// Replacement of a killed pod.
		if pending != nil && now.After(pendingAt) {
			p, err := r.start(pending)
			if err != nil {
				rep.Problems = append(rep.Problems, err.Error())
				stop = true
			} else {
				p.killedAt = pending.procs[len(pending.procs)-2].killedAt
				rep.Replacements++
			}
			pending = nil
		}
		// Kills.
		// (No kills once a subscriber finished: the streams are over.)
		if r.cfg.Kill != "" && rep.Kills < r.cfg.Kills && pending == nil && now.After(nextKill) && !stop && !anyDone {
			if v := r.victim(); v != nil {
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
				fmt.Fprintf(r.out, "%srunner: %s %s (incarnation %d, pid %d); replacement with an empty data dir%s\n",
					r.clearLine(), map[bool]string{true: "SIGSTOP", false: "SIGKILL"}[r.cfg.Zombie], v.id, p.n, p.cmd.Process.Pid,
					map[bool]string{true: " in " + r.cfg.DownFor.String(), false: ""}[r.cfg.DownFor > 0])
				pending, pendingAt = v, time.Now().Add(r.cfg.DownFor)
				nextKill = time.Now().Add(r.cfg.KillEvery)
				if r.cfg.DownFor == 0 {
					p, err := r.start(pending)
					if err != nil {
						rep.Problems = append(rep.Problems, err.Error())
						stop = true
					} else {
						p.killedAt = pending.procs[len(pending.procs)-2].killedAt
						rep.Replacements++
					}
					pending = nil
					tick.Reset(50 * time.Millisecond)
				}
			}
		}

		// Status line.
		if !r.cfg.Quiet && now.Sub(lastStatus) >= r.cfg.Status-10*time.Millisecond {
			lastStatus = now
			pub, del, restarts, dead := r.totals()
			dt := now.Sub(lastT).Seconds()
			pubRate, delRate := (pub-lastPublished)/dt, (del-lastDelivered)/dt
			lastPublished, lastDelivered, lastT = pub, del, now
			line := fmt.Sprintf("%5.1fs  published %d/%d (%.0f/s)  delivered %d/%d (%.0f/s)  restarts %d  dead letters %d  kills %d",
				now.Sub(t0).Seconds(), uint64(pub), rep.Expected*uint64(r.cfg.Publishers), max(0, pubRate), uint64(del),
				rep.Expected*uint64(r.cfg.Publishers*r.cfg.Subscribers), max(0, delRate), restarts, uint64(dead), rep.Kills)
			if r.tty {
				fmt.Fprintf(r.out, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(r.out, line)
			}
		}
	}
	if r.tty && !r.cfg.Quiet {
		fmt.Fprintln(r.out)
	}
	// Last look at the publishers, then a graceful stop of everything.
	r.scrapeAll(context.Background())
	r.stopAll()
	rep.ElapsedSeconds = time.Since(t0).Seconds()
	r.finishReport(rep, firstDelivery)
	return rep, nil
}

func exitProblem(p *proc, code int) string {
	return fmt.Sprintf("%s (incarnation %d) exited with status %d; see %s", p.node.id, p.n, code, p.logPath)
}

func (r *Runner) clearLine() string {
	if r.tty && !r.cfg.Quiet {
		return "\r\033[K"
	}
	return ""
}

// victim picks a live, healthy pod of the requested role whose work is not
// done, or nil when none qualifies now.
func (r *Runner) victim() *node {
	var c []*node
	for _, n := range r.nodes {
		p := n.cur()
		if p.isExited() || !p.up || n.done {
			continue
		}
		want := r.cfg.Kill
		if want == "alternate" {
			want = "subscriber"
			if r.killSeq%2 == 1 {
				want = "publisher"
			}
		}
		switch {
		case want == "any",
			want == "subscriber" && n.role == pod.Subscriber,
			want == "publisher" && n.role == pod.Publisher:
			c = append(c, n)
		}
	}
	// Wait until every pod is up: kills happen one at a time, each after
	// the previous replacement rejoined.
	for _, n := range r.nodes {
		if !n.done && !n.cur().up {
			return nil
		}
	}
	if len(c) == 0 {
		return nil
	}
	r.killSeq++
	return c[r.rng.IntN(len(c))]
}

// scrapeAll refreshes every live incarnation's metrics.
func (r *Runner) scrapeAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		p := n.cur()
		if p.isExited() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := scrape(ctx, r.client, p.metrics)
			if err != nil {
				return
			}
			p.last = m
			up, _ := m.get("steadfast_up")
			p.up = up == 1
			if e, ok := m.get("steadfast_epoch"); ok && e > 0 {
				p.epoch = uint64(e)
			}
			if s := m.label("steadfast_restore_source", "source"); s != "" {
				p.source = s
			}
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
					r.log.Info("runner: replacement delivering", "node_id", n.id, "seconds_since_kill", d)
					r.mu.Lock()
					r.killToDelivery = append(r.killToDelivery, d)
					r.mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
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
		if p.last == nil {
			return false
		}
		if v, _ := p.last.get("steadfast_publisher_last_seq"); uint64(v) < expected {
			return false
		}
	}
	return true
}

// outboxFull reports whether any publisher reports a full outbox now or
// before (steadfast_outbox_full_total > 0).
func (r *Runner) outboxFull() (bool, bool) {
	seen, any := false, false
	for _, n := range r.nodes {
		if n.role != pod.Publisher {
			continue
		}
		for _, p := range n.procs {
			if p.last == nil {
				continue
			}
			any = true
			if v, _ := p.last.get("steadfast_outbox_full_total"); v > 0 {
				seen = true
			}
		}
	}
	return seen, any
}

// totals sums the current incarnations' progress metrics.
func (r *Runner) totals() (published, delivered float64, restarts int, dead float64) {
	for _, n := range r.nodes {
		for _, p := range n.procs {
			restarts += p.restarts
		}
		p := n.cur()
		if p.last == nil {
			continue
		}
		switch n.role {
		case pod.Publisher:
			v, _ := p.last.get("steadfast_publisher_last_seq")
			published += v
		default:
			delivered += p.last.sum("steadfast_logger_applied_values")
			dead += p.last.sum("steadfast_logger_dead_lettered")
		}
	}
	return
}

// stopAll stops every live pod gracefully (SIGTERM, then SIGKILL after 30 s).
// Subscribers go first so that their final snapshots still have the
// publishers as replica holders.
func (r *Runner) stopAll() {
	for _, role := range []pod.Role{pod.Subscriber, pod.Publisher} {
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
