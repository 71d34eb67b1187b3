package pod

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/steadfast-pods/steadfast/cluster"
	"github.com/steadfast-pods/steadfast/nodeid"
	"github.com/steadfast-pods/steadfast/transport"
)

// ErrUsage wraps every flag or environment error: the main prints the
// one-line message and exits with status 2.
var ErrUsage = errors.New("pod: usage")

// Role says which pod a Config is for.
type Role = cluster.Role

// The two pod roles.
const (
	Publisher  = cluster.RolePublisher
	Subscriber = cluster.RoleSubscriber
)

// Config is a pod's configuration, filled from flags and environment
// variables by ParseFlags (a flag wins over its variable, the variable over
// the default).
type Config struct {
	Role Role

	// Identity, storage and membership.
	NodeID     string   // --node-id [NODE_ID]; empty: nodeid.Resolve decides
	DataDir    string   // --data-dir [DATA_DIR]
	Join       []string // --join [JOIN]: memberlist seeds host:port
	ClusterKey []byte   // --cluster-key [CLUSTER_KEY]: base64 16/24/32 bytes
	ExtraKeys  [][]byte // further keys after a comma in --cluster-key: accepted, not used to send (key rotation)
	// ClusterKeyFile: where ClusterKey and ExtraKeys were read from
	// (--cluster-key-file [CLUSTER_KEY_FILE]), once, by ParseFlags; empty
	// when the key came from --cluster-key or no key was given.
	ClusterKeyFile string
	Insecure       bool   // --insecure [INSECURE]: allow running without ClusterKey
	Bind           string // --bind [BIND]: memberlist host:port
	Advertise      string // --advertise [ADVERTISE]: host or host:port peers dial
	Membership     string // --membership [MEMBERSHIP]: lan or local timings
	// StartAloneAfter: with no seed answering this long, start a new
	// cluster (give it to one pod only, the lowest ordinal); 0: wait for a
	// seed for ever. See cluster.Config.StartAloneAfter.
	StartAloneAfter time.Duration // --start-alone-after [START_ALONE_AFTER]
	// ReplicaAcks: how many peers must have persisted a snapshot before
	// it counts as durable (and the values it holds are acknowledged); see
	// cluster.Config.MinAcks for the trade-off. 1 or 2.
	ReplicaAcks int // --replica-acks [REPLICA_ACKS]

	// Data transport and observability.
	DataEndpoint string     // --data-endpoint [DATA_ENDPOINT]: UDP host:port
	MetricsAddr  string     // --metrics-addr [METRICS_ADDR]
	LogLevel     slog.Level // --log-level [LOG_LEVEL]
	LogFormat    string     // --log-format [LOG_FORMAT]: text or json

	SnapshotInterval time.Duration // --snapshot-interval [SNAPSHOT_INTERVAL]
	MTU              int           // --mtu [MTU]: largest transport datagram
	AeronDir         string        // --aeron-dir [AERON_DIR]: attach to this media driver (empty: embedded driver)
	// AeronDriverTimeout: a driver whose heartbeat is older than this is
	// lost (the pod waits for it to come back, aeron.go).
	AeronDriverTimeout time.Duration // --aeron-driver-timeout [AERON_DRIVER_TIMEOUT]
	ChannelParams      string        // --channel-params [CHANNEL_PARAMS]: appended to every channel URI (see aeron.go)
	// AeronIPC: with AeronDir, exchange the streams with the other pods
	// on the same driver over aeron:ipc instead of UDP (ipc.go).
	AeronIPC bool // --aeron-ipc [AERON_IPC]
	// Pprof: serve net/http/pprof on this loopback host:port (empty: off).
	Pprof string // --pprof [PPROF]
	// MemoryLimit: the Go runtime's soft memory limit in bytes (0: off).
	// Main applies it (runtime/debug.SetMemoryLimit) for the whole
	// process; New does not (a library user owns its process).
	MemoryLimit int64 // --memory-limit [GOMEMLIMIT]

	// Publisher.
	Rate           time.Duration // --rate [RATE]: one beat per Rate
	Beats          uint64        // --beats [BEATS]: 0 = until stopped
	Batch          int           // --batch [BATCH]: values per beat
	OutboxCapacity int           // --outbox [OUTBOX]: values held until acked
	MinSubscribers int           // --min-subscribers [MIN_SUBSCRIBERS]
	// SubscriberRetention: a subscriber absent from the live view this long
	// is retired (its record dropped: it no longer holds the outbox back).
	// One that comes back later resumes from what the outbox still holds.
	SubscriberRetention time.Duration // --subscriber-retention [SUBSCRIBER_RETENTION]
	// SubscriberGrace: when the outbox is full and the only subscribers
	// holding it are out of the live view, those gone this long are
	// retired at once (a scale-down) instead of after the retention; 0:
	// only after the retention (the stream stalls until then).
	SubscriberGrace time.Duration // --subscriber-grace [SUBSCRIBER_GRACE]

	// Subscriber.
	PanicEvery    uint64 // --panic-every [PANIC_EVERY]: worker panics every N values (0 = never)
	Showstopper   uint64 // --showstopper [SHOWSTOPPER]: value that always crashes the worker (0 = none)
	MinPublishers int    // --min-publishers [MIN_PUBLISHERS]
	ExitWhenDone  bool   // --exit-when-done [EXIT_WHEN_DONE]
}

// DefaultConfig returns the defaults for a role.
func DefaultConfig(r Role) Config {
	return Config{
		Role:                r,
		DataDir:             "data",
		Bind:                "0.0.0.0:7946",
		Membership:          "lan",
		DataEndpoint:        "0.0.0.0:40123",
		MetricsAddr:         "127.0.0.1:9090", // local only unless configured
		LogLevel:            slog.LevelInfo,
		LogFormat:           "text",
		SnapshotInterval:    500 * time.Millisecond,
		ReplicaAcks:         1,
		MTU:                 transport.DefaultConfig().MTU,
		AeronDriverTimeout:  aeronDriverTimeout,
		Rate:                10 * time.Millisecond,
		Beats:               1000,
		Batch:               64,
		OutboxCapacity:      1 << 16,
		MinSubscribers:      1,
		SubscriberRetention: 5 * time.Minute,
		SubscriberGrace:     30 * time.Second,
		MinPublishers:       1,
		ExitWhenDone:        true,
		MemoryLimit:         DefaultMemoryLimit,
	}
}

// DefaultMemoryLimit is the pods' soft memory limit unless --memory-limit or
// GOMEMLIMIT says otherwise: with the binary's own pages (~10 MiB) it keeps
// a pod under 64 MiB resident. At full load the Go heap stays far below it
// (about 8 MiB live); it makes the collector work harder only when the
// heap would grow towards it (a large snapshot restored, a stalled worker
// with full channels). It is soft: a pod that needs more gets more.
const DefaultMemoryLimit = 48 << 20

// flagDef is one flag with its environment variable.
type flagDef struct {
	name, env string
	value     flag.Value
}

type stringVal struct {
	p     *string
	check func(string) error
}

func (v stringVal) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v stringVal) Set(s string) error {
	if v.check != nil {
		if err := v.check(s); err != nil {
			return err
		}
	}
	*v.p = s
	return nil
}

type funcVal struct {
	get func() string
	set func(string) error
}

func (v funcVal) String() string {
	if v.get == nil {
		return ""
	}
	return v.get()
}
func (v funcVal) Set(s string) error { return v.set(s) }

func hostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	_ = host
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q: want 0..65535", port)
	}
	return nil
}

func positiveDuration(p *time.Duration) funcVal {
	return funcVal{
		get: func() string { return p.String() },
		set: func(s string) error {
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("want a duration like 10ms or 1s")
			}
			if d <= 0 {
				return fmt.Errorf("want a duration > 0")
			}
			*p = d
			return nil
		},
	}
}

func nonNegativeDuration(p *time.Duration) funcVal {
	return funcVal{
		get: func() string { return p.String() },
		set: func(s string) error {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				return fmt.Errorf("want a duration >= 0 like 30s")
			}
			*p = d
			return nil
		},
	}
}

func uintVal(p *uint64) funcVal {
	return funcVal{
		get: func() string { return strconv.FormatUint(*p, 10) },
		set: func(s string) error {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return fmt.Errorf("want a whole number >= 0")
			}
			*p = n
			return nil
		},
	}
}

func intVal(p *int, lo, hi int) funcVal {
	return funcVal{
		get: func() string { return strconv.Itoa(*p) },
		set: func(s string) error {
			n, err := strconv.Atoi(s)
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("want a whole number in %d..%d", lo, hi)
			}
			*p = n
			return nil
		},
	}
}

func boolVal(p *bool) funcVal {
	return funcVal{
		get: func() string { return strconv.FormatBool(*p) },
		set: func(s string) error {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return fmt.Errorf("want true or false")
			}
			*p = b
			return nil
		},
	}
}

type boolFlag struct{ funcVal }

func (boolFlag) IsBoolFlag() bool { return true }

// ParseFlags fills a Config for role from args (without the program name)
// and the environment (getenv, e.g. os.Getenv). --help prints the usage to
// out and returns flag.ErrHelp. Any bad value returns an error wrapping
// ErrUsage whose message is one line naming the flag (and the variable when
// the value came from it).
func ParseFlags(role Role, args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := DefaultConfig(role)
	// The key's value is taken as given and parsed once every source was
	// read (parseKey): no error message, which may be logged, ever quotes
	// it.
	var key string
	defs := []flagDef{
		{"node-id", "NODE_ID", stringVal{&c.NodeID, func(s string) error {
			if s == "" {
				return nil
			}
			return nodeid.Validate(s)
		}}},
		{"data-dir", "DATA_DIR", stringVal{&c.DataDir, func(s string) error {
			if s == "" {
				return fmt.Errorf("must not be empty")
			}
			return nil
		}}},
		{"join", "JOIN", funcVal{
			get: func() string { return strings.Join(c.Join, ",") },
			set: func(s string) error {
				c.Join = nil
				for _, seed := range strings.Split(s, ",") {
					seed = strings.TrimSpace(seed)
					if seed == "" {
						continue
					}
					if err := hostPort(seed); err != nil {
						return fmt.Errorf("seed %q: %v", seed, err)
					}
					c.Join = append(c.Join, seed)
				}
				return nil
			},
		}},
		{"cluster-key", "CLUSTER_KEY", funcVal{
			get: func() string { return "" },
			set: func(s string) error { key = s; return nil },
		}},
		{"cluster-key-file", "CLUSTER_KEY_FILE", stringVal{&c.ClusterKeyFile, nil}},
		{"insecure", "INSECURE", boolFlag{boolVal(&c.Insecure)}},
		{"bind", "BIND", stringVal{&c.Bind, hostPort}},
		{"advertise", "ADVERTISE", stringVal{&c.Advertise, func(s string) error {
			if s == "" || net.ParseIP(s) != nil {
				return nil
			}
			return hostPort(s)
		}}},
		{"membership", "MEMBERSHIP", stringVal{&c.Membership, func(s string) error {
			if s != "lan" && s != "local" {
				return fmt.Errorf("want lan or local")
			}
			return nil
		}}},
		{"start-alone-after", "START_ALONE_AFTER", nonNegativeDuration(&c.StartAloneAfter)},
		{"replica-acks", "REPLICA_ACKS", intVal(&c.ReplicaAcks, 1, 2)},
		{"data-endpoint", "DATA_ENDPOINT", stringVal{&c.DataEndpoint, hostPort}},
		{"metrics-addr", "METRICS_ADDR", stringVal{&c.MetricsAddr, func(s string) error {
			if s == "" {
				return nil
			}
			return hostPort(s)
		}}},
		{"log-level", "LOG_LEVEL", funcVal{
			get: func() string { return strings.ToLower(c.LogLevel.String()) },
			set: func(s string) error { return c.LogLevel.UnmarshalText([]byte(s)) },
		}},
		{"log-format", "LOG_FORMAT", stringVal{&c.LogFormat, func(s string) error {
			if s != "text" && s != "json" {
				return fmt.Errorf("want text or json")
			}
			return nil
		}}},
		{"snapshot-interval", "SNAPSHOT_INTERVAL", positiveDuration(&c.SnapshotInterval)},
		{"mtu", "MTU", funcVal{
			get: func() string { return strconv.Itoa(c.MTU) },
			set: func(s string) error {
				n, err := strconv.Atoi(s)
				if err != nil || n < 64 || n > 65504 || n%32 != 0 {
					return fmt.Errorf("want a multiple of 32 in 64..65504")
				}
				c.MTU = n
				return nil
			},
		}},
		{"aeron-dir", "AERON_DIR", stringVal{&c.AeronDir, func(string) error { return nil }}},
		{"aeron-driver-timeout", "AERON_DRIVER_TIMEOUT", funcVal{
			get: func() string { return c.AeronDriverTimeout.String() },
			set: func(s string) error {
				d, err := time.ParseDuration(s)
				if err != nil || d < 100*time.Millisecond || d > time.Hour {
					return fmt.Errorf("want a duration in 100ms..1h")
				}
				c.AeronDriverTimeout = d
				return nil
			},
		}},
		{"channel-params", "CHANNEL_PARAMS", stringVal{&c.ChannelParams, parseChannelParams}},
		{"aeron-ipc", "AERON_IPC", boolFlag{boolVal(&c.AeronIPC)}},
		{"pprof", "PPROF", stringVal{&c.Pprof, checkPprofAddr}},
		{"memory-limit", "GOMEMLIMIT", funcVal{
			get: func() string { return formatMemoryLimit(c.MemoryLimit) },
			set: func(s string) (err error) {
				c.MemoryLimit, err = parseMemoryLimit(s)
				return err
			},
		}},
	}
	if role == Publisher {
		defs = append(defs,
			flagDef{"rate", "RATE", positiveDuration(&c.Rate)},
			flagDef{"beats", "BEATS", uintVal(&c.Beats)},
			flagDef{"batch", "BATCH", intVal(&c.Batch, 1, 1<<16)},
			flagDef{"outbox", "OUTBOX", intVal(&c.OutboxCapacity, 1, 1<<24)},
			flagDef{"min-subscribers", "MIN_SUBSCRIBERS", intVal(&c.MinSubscribers, 0, 1<<16)},
			flagDef{"subscriber-retention", "SUBSCRIBER_RETENTION", positiveDuration(&c.SubscriberRetention)},
			flagDef{"subscriber-grace", "SUBSCRIBER_GRACE", nonNegativeDuration(&c.SubscriberGrace)},
		)
	} else {
		defs = append(defs,
			flagDef{"panic-every", "PANIC_EVERY", uintVal(&c.PanicEvery)},
			flagDef{"showstopper", "SHOWSTOPPER", uintVal(&c.Showstopper)},
			flagDef{"min-publishers", "MIN_PUBLISHERS", intVal(&c.MinPublishers, 1, 1<<16)},
			flagDef{"exit-when-done", "EXIT_WHEN_DONE", boolFlag{boolVal(&c.ExitWhenDone)}},
		)
	}
	fs := flag.NewFlagSet(role.String(), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, d := range defs {
		fs.Var(d.value, d.name, usageOf(d.name))
	}
	fs.Usage = func() {} // errors are reported by the caller, in one line
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if out != nil {
				writeUsage(out, role, fs, defs)
			}
			return c, flag.ErrHelp
		}
		return c, fmt.Errorf("%w: %s", ErrUsage, oneLine(err.Error()))
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// A key given by a flag, in either form, wins over both variables.
	keyByFlag := set["cluster-key"] || set["cluster-key-file"]
	for _, d := range defs {
		if set[d.name] || getenv == nil || keyByFlag && (d.name == "cluster-key" || d.name == "cluster-key-file") {
			continue
		}
		if v, ok := lookup(getenv, d.env); ok {
			if err := d.value.Set(v); err != nil {
				return c, fmt.Errorf("%w: invalid value %q for %s (from --%s's variable): %s", ErrUsage, v, d.env, d.name, oneLine(err.Error()))
			}
		}
	}
	if err := c.parseKey(key, keyByFlag); err != nil {
		return c, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if role == Publisher && c.OutboxCapacity < c.Batch {
		return c, fmt.Errorf("%w: --outbox %d must hold at least one batch (--batch %d)", ErrUsage, c.OutboxCapacity, c.Batch)
	}
	return c, nil
}

// parseMemoryLimit reads a limit in GOMEMLIMIT's syntax ("off": 0).
func parseMemoryLimit(s string) (int64, error) {
	if s == "off" {
		return 0, nil
	}
	num, unit := s, int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			num, unit = strings.TrimSuffix(s, u.suffix), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/unit || n*unit < 1<<20 {
		return 0, fmt.Errorf("want a size of at least 1MiB like 48MiB or 1GiB, or off")
	}
	return n * unit, nil
}

// formatMemoryLimit writes a limit as parseMemoryLimit reads it.
func formatMemoryLimit(n int64) string {
	switch {
	case n <= 0:
		return "off"
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10) + "B"
}

// parseKey fills ClusterKey and ExtraKeys from the value of --cluster-key
// (CLUSTER_KEY) or from the file --cluster-key-file (CLUSTER_KEY_FILE)
// names: one base64 key or, while a key is rotated, "PRIMARY,OTHER,...".
// Its errors name where the key came from, never the key.
func (c *Config) parseKey(value string, byFlag bool) error {
	from := "CLUSTER_KEY"
	if byFlag {
		from = "--cluster-key"
	}
	if c.ClusterKeyFile != "" {
		if value != "" {
			if byFlag {
				return fmt.Errorf("--cluster-key and --cluster-key-file both given: give the key one way")
			}
			return fmt.Errorf("CLUSTER_KEY and CLUSTER_KEY_FILE both set: give the key one way")
		}
		v, err := readKeyFile(c.ClusterKeyFile)
		if err != nil {
			return fmt.Errorf("cluster key file: %v", err)
		}
		value, from = v, "cluster key file "+c.ClusterKeyFile
	}
	c.ClusterKey, c.ExtraKeys = nil, nil
	for i, part := range strings.Split(value, ",") {
		k, err := cluster.ParseKey(part)
		if err != nil {
			return fmt.Errorf("%s: key %d: %v", from, i+1, err)
		}
		if len(k) == 0 {
			if strings.Contains(value, ",") || c.ClusterKeyFile != "" {
				return fmt.Errorf("%s: key %d is empty", from, i+1)
			}
			continue
		}
		if i == 0 {
			c.ClusterKey = k
		} else {
			c.ExtraKeys = append(c.ExtraKeys, k)
		}
	}
	return nil
}

// maxKeyFile bounds a cluster key file: a few base64 keys (44 bytes each)
// while one is rotated.
const maxKeyFile = 4096

// readKeyFile returns the text of a cluster key file, trimmed of surrounding
// white space (a trailing newline is usual). The file must be a regular file
// (symbolic links are followed: Kubernetes mounts a Secret's keys as links)
// of at most maxKeyFile bytes, holding one line, and must grant nothing to
// other users and no write to its group: mode 0400 or 0440, as a Secret
// volume with defaultMode 0440 or a swarm secret with mode 0400 gives. Its
// errors never quote the file's content.
func readKeyFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file (%v)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o027 != 0 {
		return "", fmt.Errorf("%s has mode %04o: a key file must grant nothing to other users and no write to its group "+
			"(chmod 0400; a Kubernetes Secret volume: defaultMode: 0440; a swarm secret: mode: 0400 with the pod's uid)", path, perm)
	}
	if fi.Size() > maxKeyFile {
		return "", fmt.Errorf("%s has %d bytes, more than a key file holds (%d)", path, fi.Size(), maxKeyFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi2, err := f.Stat(); err != nil || !os.SameFile(fi, fi2) {
		return "", fmt.Errorf("%s changed while it was opened", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("%s: %v", path, err)
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("%s has more than %d bytes", path, maxKeyFile)
	}
	v := strings.TrimSpace(string(b))
	switch {
	case v == "":
		return "", fmt.Errorf("%s is empty", path)
	case strings.ContainsAny(v, "\r\n"):
		return "", fmt.Errorf("%s has more than one line: while rotating, separate the keys with commas", path)
	}
	return v, nil
}

// lookup treats an empty variable as unset (compose writes VAR= for unset
// values).
func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// usageOf returns a flag's help text.
func usageOf(name string) string {
	return map[string]string{
		"node-id":              "stable node id, 1..64 of [A-Za-z0-9._-] (default: the id saved in the data dir, else a new one)",
		"data-dir":             "directory for the node id, epoch, own snapshot and peers' replicas",
		"join":                 "comma-separated memberlist seeds host:port (empty: start a new cluster)",
		"cluster-key":          "cluster key, base64 of 16, 24 or 32 bytes: encrypts gossip and authenticates every data-plane message; required unless --insecure (make one with: head -c 32 /dev/urandom | base64). While rotating keys, a comma-separated list: the first sends, all are accepted (see the README's Security section)",
		"cluster-key-file":     "read the cluster key (as --cluster-key: one base64 key, or a comma-separated list while rotating) from this file, once at start: a Kubernetes Secret or Docker secret mounted as a file. It must be a regular file of one line granting nothing to other users and no write to its group (mode 0400 or 0440), else the pod refuses to start. Give the key one way: this or --cluster-key",
		"insecure":             "run without a cluster key: gossip is not encrypted and data-plane messages are not authenticated, so anyone who can reach the pod's ports can join the cluster and forge its messages (local tests only)",
		"bind":                 "memberlist gossip address host:port (UDP and TCP)",
		"advertise":            "address peers use to reach this node, host or host:port (default: the bind address, or a private IP when binding 0.0.0.0); its host is also advertised for the data endpoint",
		"membership":           "membership timings: lan (memberlist LAN defaults) or local (one machine: fast failure detection)",
		"start-alone-after":    "when no seed in --join answers for this long, start a new cluster instead of waiting (give it to one pod only, e.g. the lowest ordinal of a StatefulSet or swarm service; 0: wait for a seed for ever). Seeds are DNS names re-resolved on every retry, so the others join it as soon as it is published",
		"data-endpoint":        "transport UDP endpoint host:port this pod receives on (0.0.0.0 binds all; peers get the advertised host)",
		"metrics-addr":         "HTTP address for /metrics, /healthz and the other endpoints; the default serves this host only, set e.g. :9090 to serve others (empty: off)",
		"log-level":            "debug, info, warn or error (debug prints every FizzBuzz line)",
		"log-format":           "text or json",
		"snapshot-interval":    "how often the pod snapshots its actors' state and replicates it",
		"mtu":                  "largest transport datagram in bytes, headers included, a multiple of 32 (1408 fits a 1500-byte network without IP fragmentation)",
		"aeron-dir":            "attach to the Aeron media driver in this directory (cmd/mediadriver or Aeron's aeronmd) instead of embedding one; if that driver is lost the pod keeps running, reports it (/status media_driver) and reattaches when a driver runs there again (empty: embedded driver)",
		"aeron-driver-timeout": "with --aeron-dir: a driver whose heartbeat is older than this is lost (Aeron's aeron.driver.timeout; give the driver the same figure)",
		"replica-acks":         "how many peers must have persisted a snapshot before it counts as durable and the values it holds are acknowledged (1 or 2; each snapshot goes to 2 peers). 1: the fastest peer's fsync suffices, lowest latency, but until the second copy lands (or the keeper re-replicates) losing that peer and then this node, disks included, loses the snapshot. 2: waits for both (about one more round trip and fsync); any single loss in any order is survived. With fewer live peers, all of them",
		"aeron-ipc":            "with --aeron-dir: exchange the data and ack streams with the other pods on the same media driver over aeron:ipc instead of UDP; every pod on that driver must use it and have its own data endpoint port (the port and stream make the IPC stream id)",
		"channel-params":       "channel parameters appended to every transport channel (unless the pod sets that key on a stream itself), key=value pairs separated by |: mtu (a multiple of 32 in 64..65504) and term-length (a power of two in 64k..1g, k/m/g suffixes), e.g. mtu=1408|term-length=16m",
		"pprof":                "serve Go's runtime profiles (net/http/pprof: CPU, heap, allocs, goroutines) at http://ADDR/debug/pprof/; ADDR must be a loopback host:port (port 0: any free port, logged at start) (empty: off)",
		"memory-limit":         "the Go runtime's soft memory limit, in GOMEMLIMIT's syntax: bytes with an optional B, KiB, MiB, GiB or TiB suffix, at least 1MiB, or off. The collector works harder as the heap nears it; it bounds the Go heap and runtime, not the binary's own pages. The variable is Go's own",
		"rate":                 "heartbeat period: one beat (one batch) every RATE",
		"beats":                "beats before the stream ends (0: run until stopped); the stream has BEATS×BATCH values",
		"batch":                "values generated per beat",
		"outbox":               "values kept until every subscriber acknowledged them; when full the generator waits",
		"min-subscribers":      "subscribers that must have joined before any value is released from the outbox",
		"subscriber-retention": "a subscriber gone from the live view this long is retired: it no longer holds values in the outbox (one that returns later resumes from what the outbox still holds; values released meanwhile are reported lost)",
		"subscriber-grace":     "when the outbox is full and only subscribers out of the live view hold it (every live one acknowledged more), those gone at least this long are retired at once instead of after --subscriber-retention: scaling subscribers down stalls the stream for at most this long. Each is logged with the values it will not get and counted (steadfast_subscribers_retired_early_total); a replaced subscriber that returns with its node id within the grace loses nothing (0: never early, the stream waits for the retention)",
		"panic-every":          "failure injection: the worker panics every N values (0: never)",
		"showstopper":          "failure injection: this value always crashes the worker, so it goes to the dead letters (0: none)",
		"min-publishers":       "publishers whose end of stream the subscriber waits for before it finishes",
		"exit-when-done":       "exit 0 after every publisher's stream ended and the final snapshot is durable",
	}[name]
}

func writeUsage(out io.Writer, role Role, fs *flag.FlagSet, defs []flagDef) {
	fmt.Fprintf(out, "Usage: %s [flags]\n       %s healthcheck [URL]\n\n", role, role)
	switch role {
	case Publisher:
		fmt.Fprintln(out, "The steadfast publisher pod: a heartbeat paces a generator of sequence-numbered\nvalues (value = seq), published to every live subscriber over the Aeron-protocol\ntransport, kept in an outbox until acknowledged and replayed after failures.")
	default:
		fmt.Fprintln(out, "The steadfast subscriber pod: receives every publisher's stream, dedups it,\nruns FizzBuzz in a supervised worker and counts in a logger; acknowledges only\nwhat a durable (replicated) snapshot holds.")
	}
	fmt.Fprintln(out, "\nEvery flag can also be set by the environment variable in brackets; a flag\nwins over its variable.")
	fmt.Fprintln(out, "\nFlags:")
	for _, d := range defs {
		f := fs.Lookup(d.name)
		def := f.DefValue
		if d.name == "cluster-key" {
			def = ""
		}
		fmt.Fprintf(out, "  --%s [%s]\n        %s", d.name, d.env, f.Usage)
		if def != "" {
			fmt.Fprintf(out, " (default %s)", def)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "\nhealthcheck [URL]: GET URL (default http://127.0.0.1:<port of METRICS_ADDR>/healthz),\nexit 0 on 200, else 1. Also spelled --healthcheck.\n")
}

// ErrConfig wraps every error Config.validate returns (New returns it).
var ErrConfig = errors.New("pod: invalid config")

// ErrNoKey: neither a cluster key nor Insecure (--insecure) was given. The
// pods are secure by default: they refuse to run unauthenticated unless told to.
var ErrNoKey = errors.New("pod: no cluster key: set --cluster-key (or CLUSTER_KEY) or --cluster-key-file (or CLUSTER_KEY_FILE), or --insecure to run without authentication")

// checkKey returns ErrNoKey when the pod would run unauthenticated without
// having been told to.
func (c Config) checkKey() error {
	if len(c.ClusterKey) == 0 && !c.Insecure {
		return ErrNoKey
	}
	return nil
}

// Limits of the values a Config may hold (the flags enforce the same).
const (
	maxBatch  = 1 << 16
	maxOutbox = 1 << 24
)

// validate checks a Config the way ParseFlags checks flags, for pods built as
// a library (New): a zero Batch would divide by zero, a zero Rate panic in
// time.NewTicker. Every problem is reported, joined.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if c.Role != Publisher && c.Role != Subscriber {
		bad("unknown role %d", c.Role)
	}
	if c.NodeID != "" {
		if err := nodeid.Validate(c.NodeID); err != nil {
			bad("node id: %v", err)
		}
	}
	if c.DataDir == "" {
		bad("data dir is empty")
	}
	if err := c.checkKey(); err != nil {
		bad("%w", err)
	}
	for name, a := range map[string]string{"bind": c.Bind, "data endpoint": c.DataEndpoint} {
		if err := hostPort(a); err != nil {
			bad("%s %q: %v", name, a, err)
		}
	}
	if err := parseChannelParams(c.ChannelParams); err != nil {
		bad("channel params: %v", err)
	}
	if c.ReplicaAcks < 0 || c.ReplicaAcks > 2 { // 0: the cluster's default (1)
		bad("replica acks %d: want 1 or 2", c.ReplicaAcks)
	}
	if c.AeronIPC {
		if c.AeronDir == "" {
			bad("--aeron-ipc needs --aeron-dir (IPC goes through a shared media driver)")
		}
		if err := ipcPort(c.DataEndpoint); err != nil {
			bad("--aeron-ipc: data endpoint %q: %v", c.DataEndpoint, err)
		}
	}
	if err := checkPprofAddr(c.Pprof); err != nil {
		bad("pprof address %q: %v", c.Pprof, err)
	}
	if c.MetricsAddr != "" {
		if err := hostPort(c.MetricsAddr); err != nil {
			bad("metrics address %q: %v", c.MetricsAddr, err)
		}
	}
	for _, s := range c.Join {
		if err := hostPort(s); err != nil {
			bad("seed %q: %v", s, err)
		}
	}
	if c.Membership != "" && c.Membership != "lan" && c.Membership != "local" {
		bad("membership %q: want lan or local", c.Membership)
	}
	if c.SnapshotInterval <= 0 {
		bad("snapshot interval %v must be > 0", c.SnapshotInterval)
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < 1<<20 {
		bad("memory limit %d must be 0 (off) or at least 1 MiB", c.MemoryLimit)
	}
	if c.Role == Publisher {
		if c.Rate <= 0 {
			bad("rate %v must be > 0", c.Rate)
		}
		if c.Batch < 1 || c.Batch > maxBatch {
			bad("batch %d must be in 1..%d", c.Batch, maxBatch)
		}
		if c.OutboxCapacity < 1 || c.OutboxCapacity > maxOutbox {
			bad("outbox %d must be in 1..%d", c.OutboxCapacity, maxOutbox)
		} else if c.OutboxCapacity < c.Batch {
			bad("outbox %d must hold at least one batch (%d)", c.OutboxCapacity, c.Batch)
		}
		if c.MinSubscribers < 0 {
			bad("min subscribers %d must be >= 0", c.MinSubscribers)
		}
		if c.Batch > 0 && c.Beats > ^uint64(0)/uint64(c.Batch) {
			bad("beats %d × batch %d overflows the sequence numbers", c.Beats, c.Batch)
		}
		if c.SubscriberRetention <= 0 {
			bad("subscriber retention %v must be > 0", c.SubscriberRetention)
		}
		if c.SubscriberGrace < 0 {
			bad("subscriber grace %v must be >= 0", c.SubscriberGrace)
		}
	} else if c.MinPublishers < 1 {
		bad("min publishers %d must be >= 1", c.MinPublishers)
	}
	return errors.Join(errs...)
}
