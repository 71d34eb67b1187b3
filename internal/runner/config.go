package runner

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrUsage wraps flag errors: the main prints the one-line message and
// exits with status 2.
var ErrUsage = errors.New("runner: usage")

// Config is the runner's configuration (flags only: it is a developer tool).
type Config struct {
	BinDir      string        // pod binaries; empty: build them into a temp dir
	WorkDir     string        // data dirs and logs; empty: a temp dir removed at the end (kept on failure)
	Publishers  int           // publisher pods
	Subscribers int           // subscriber pods
	Beats       uint64        // beats per publisher
	Batch       int           // values per beat
	Rate        time.Duration // heartbeat period
	Outbox      int           // publisher outbox capacity (values)
	Snapshot    time.Duration // pods' snapshot interval

	Kill        string        // "", subscriber, publisher, any, alternate or driver
	KillEvery   time.Duration // time between kills
	Kills       int           // kills in all
	PanicEvery  uint64        // worker failure injection
	Showstopper uint64        // value that always crashes the worker
	// DownFor keeps a killed pod down this long before its replacement
	// starts (0: replace at once).
	DownFor time.Duration
	// Zombie freezes the victim (SIGSTOP) instead of killing it, starts
	// the replacement, and resumes the old incarnation (SIGCONT) 2 s later:
	// it must notice the higher epoch of its node id and stop itself, and
	// nothing it still sends may be applied.
	Zombie bool

	// Reports: files to write the report to (.svg: plots, else JSON);
	// none: the default, run-<start time>.json and .svg in
	// DefaultReportDir; "none" alone: no report.
	Reports  []string
	Timeout  time.Duration // the whole run
	Seed     int64         // victim choice
	LogLevel string        // pods' log level
	Status   time.Duration // status line period
	Quiet    bool          // no live status line

	// MediaDriver: "embedded" (each pod its own driver) or "local" (one
	// mediadriver process in the work dir, every pod attached to it).
	MediaDriver string
	// LocalTransport: with --media-driver local, "ipc" (the pods exchange
	// their streams over aeron:ipc through the driver, pod --aeron-ipc)
	// or "udp" (UDP datagrams the driver sends to itself).
	LocalTransport string
	AeronDir       string // attach every pod to the media driver already running here
	// DriverTimeout is the driver timeout (Aeron's aeron.driver.timeout)
	// of the local driver and of the pods attached to a driver: a driver
	// whose heartbeat is older is lost, and its directory may be
	// reclaimed by a new driver.
	DriverTimeout time.Duration

	Args []string // the command line ParseFlags was given (for the report)
}

// DefaultConfig returns the defaults: one publisher and one subscriber,
// 64,000 values in about 10 s.
func DefaultConfig() Config {
	return Config{
		Publishers: 1, Subscribers: 1,
		Beats: 1000, Batch: 64, Rate: 10 * time.Millisecond,
		Outbox: 1 << 16, Snapshot: 200 * time.Millisecond,
		KillEvery: 3 * time.Second, Kills: 3,
		Timeout: 5 * time.Minute, Seed: 1, MediaDriver: "embedded", LocalTransport: "ipc", DriverTimeout: 2 * time.Second, LogLevel: "info", Status: 500 * time.Millisecond,
	}
}

// ParseFlags parses the runner's flags. --help prints usage to out and
// returns flag.ErrHelp; bad values return an error wrapping ErrUsage.
func ParseFlags(args []string, out io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("runner", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.BinDir, "bin-dir", c.BinDir, "use the publisher and subscriber binaries in this directory instead of building them")
	fs.StringVar(&c.WorkDir, "work-dir", c.WorkDir, "directory for the pods' data dirs and logs (default: a temp dir, removed after a successful run)")
	fs.IntVar(&c.Publishers, "publishers", c.Publishers, "publisher pods")
	fs.IntVar(&c.Subscribers, "subscribers", c.Subscribers, "subscriber pods (each receives every publisher's stream)")
	fs.Uint64Var(&c.Beats, "beats", c.Beats, "beats per publisher; each publisher streams BEATS×BATCH values")
	fs.IntVar(&c.Batch, "batch", c.Batch, "values per beat")
	fs.DurationVar(&c.Rate, "rate", c.Rate, "heartbeat period")
	fs.IntVar(&c.Outbox, "outbox", c.Outbox, "publisher outbox capacity in values (unacknowledged values; when full the generator waits)")
	fs.DurationVar(&c.Snapshot, "snapshot-interval", c.Snapshot, "pods' snapshot interval")
	fs.StringVar(&c.Kill, "kill", c.Kill, "fault injection: SIGKILL a subscriber, publisher, any pod, or alternate (subscriber, publisher, ...) every --kill-every and start a replacement (same node id, new ports, empty data dir); driver (with --media-driver local): SIGKILL the media driver and start a new one on its directory once the dead one's heartbeat is --driver-timeout old, the pods reattach to it (any then picks among the pods and the driver)")
	fs.DurationVar(&c.KillEvery, "kill-every", c.KillEvery, "time between kills")
	fs.IntVar(&c.Kills, "kills", c.Kills, "number of kills")
	fs.DurationVar(&c.DownFor, "down-for", c.DownFor, "keep a killed pod down this long before its replacement starts")
	fs.BoolVar(&c.Zombie, "zombie", c.Zombie, "freeze victims (SIGSTOP) instead of killing them and resume them 2s after their replacement started: the stale incarnation must be fenced by epoch")
	fs.Uint64Var(&c.PanicEvery, "panic-every", c.PanicEvery, "fault injection: subscriber workers panic every N values (actor restarts)")
	fs.Uint64Var(&c.Showstopper, "showstopper", c.Showstopper, "fault injection: value V always crashes the worker (dead letter)")
	fs.Func("report", "write the report to this file: plots as SVG if it ends in .svg, else JSON; repeatable; \"none\" for no report (default: run-<start time>.json and .svg in "+DefaultReportDir()+")", func(v string) error {
		if v == "" {
			return errors.New("empty path")
		}
		c.Reports = append(c.Reports, v)
		return nil
	})
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "give up (and fail) after this long")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed for the choice of victims")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "pods' log level (their logs go to files in the work dir)")
	fs.DurationVar(&c.Status, "status-every", c.Status, "status line period")
	fs.BoolVar(&c.Quiet, "quiet", c.Quiet, "no live status line")
	fs.StringVar(&c.MediaDriver, "media-driver", c.MediaDriver, "embedded: every pod runs its own transport driver; local: start one mediadriver process in the work dir and attach every pod to it (stopped at the end)")
	fs.StringVar(&c.LocalTransport, "local-transport", c.LocalTransport, "with --media-driver local: ipc: the pods exchange their streams over aeron:ipc through the driver (pod --aeron-ipc; each pod gets a data port no other pod of the run ever had); udp: as UDP datagrams the driver sends to itself")
	fs.StringVar(&c.AeronDir, "aeron-dir", c.AeronDir, "attach every pod to the media driver already running in this directory (mediadriver or Aeron's aeronmd)")
	fs.DurationVar(&c.DriverTimeout, "driver-timeout", c.DriverTimeout, "with a media driver: the pods count it lost when its heartbeat is this old (Aeron's aeron.driver.timeout, 10s in Aeron; shorter here so driver kills recover fast), and the local driver uses it to judge a directory's previous driver dead")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if out != nil {
				fmt.Fprintln(out, "Usage: runner [flags]\n\nBuilds the steadfast pods, runs publishers and subscribers as local processes on\n127.0.0.1, shows their progress, injects faults on request, stops when every\nsubscriber has delivered every publisher's stream, and checks the result against\nthe closed-form FizzBuzz invariant. Exit 0 only if nothing was lost or duplicated\nand every report was written. Each pod's /status and /metrics URLs are printed\nas it starts; the pods die with the runner.\n\nFlags:")
				fs.SetOutput(out)
				fs.PrintDefaults()
			}
			return c, flag.ErrHelp
		}
		return c, fmt.Errorf("%w: %s", ErrUsage, firstLine(err.Error()))
	}
	c.Args = append([]string(nil), args...)
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	return c, c.validate()
}

func (c Config) validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrUsage}, a...)...) }
	switch {
	case c.Publishers < 1 || c.Publishers > 16:
		return bad("--publishers %d: want 1..16", c.Publishers)
	case c.Subscribers < 1 || c.Subscribers > 16:
		return bad("--subscribers %d: want 1..16", c.Subscribers)
	case c.Beats < 1:
		return bad("--beats must be >= 1 (the runner needs a stream that ends)")
	case c.Batch < 1 || c.Batch > 1<<16:
		return bad("--batch %d: want 1..65536", c.Batch)
	case c.Rate <= 0:
		return bad("--rate must be > 0")
	case c.Outbox < c.Batch:
		return bad("--outbox %d must hold at least one batch (%d)", c.Outbox, c.Batch)
	case c.Snapshot <= 0:
		return bad("--snapshot-interval must be > 0")
	case c.Kill != "" && c.Kill != "subscriber" && c.Kill != "publisher" && c.Kill != "any" && c.Kill != "alternate" && c.Kill != "driver":
		return bad("--kill %q: want subscriber, publisher, any, alternate or driver", c.Kill)
	case c.Kill == "driver" && c.MediaDriver != "local":
		return bad("--kill driver needs --media-driver local (the runner restarts only a driver it runs)")
	case c.Kill == "driver" && c.Zombie:
		return bad("--zombie freezes pods; it cannot be combined with --kill driver")
	case c.DriverTimeout < 100*time.Millisecond || c.DriverTimeout > time.Hour:
		return bad("--driver-timeout %v: want 100ms..1h", c.DriverTimeout)
	case c.Kill != "" && c.KillEvery <= 0:
		return bad("--kill-every must be > 0")
	case c.Kills < 0:
		return bad("--kills must be >= 0")
	case c.Timeout <= 0:
		return bad("--timeout must be > 0")
	case c.Status <= 0:
		return bad("--status-every must be > 0")
	case c.MediaDriver != "embedded" && c.MediaDriver != "local":
		return bad("--media-driver %q: want embedded or local", c.MediaDriver)
	case c.LocalTransport != "ipc" && c.LocalTransport != "udp":
		return bad("--local-transport %q: want ipc or udp", c.LocalTransport)
	case c.MediaDriver == "local" && c.AeronDir != "":
		return bad("--aeron-dir names a running driver; it cannot be combined with --media-driver local")
	}
	if slices.Contains(c.Reports, "none") && len(c.Reports) > 1 {
		return bad("--report none cannot be combined with report files")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return bad("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// DefaultReportDir is where reports go without --report: the user's cache
// dir (never the current directory, which is usually the repository).
func DefaultReportDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "steadfast", "runs")
	}
	return filepath.Join(os.TempDir(), "steadfast-runs")
}
