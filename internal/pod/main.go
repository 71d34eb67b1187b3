package pod

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/steadfast-pods/steadfast/cluster"
)

// Exit statuses of the pod binaries.
const (
	ExitOK      = 0 // success, --help, or stopped by a signal
	ExitFailure = 1 // failed: could not start, actors escalated, final snapshot not durable
	ExitUsage   = 2 // bad flags or environment (the one-line reason is on stderr)
	// ExitFenced: a newer incarnation of this node id is live; this one
	// stopped without saving or sending anything. Do not restart it.
	ExitFenced = 3
	// ExitAddrInUse: a port the pod must bind was taken; retry elsewhere.
	ExitAddrInUse = 4
	// ExitCrash is what a shell or docker reports for a crash (128 +
	// SIGABRT): a panic nothing recovered, or a fatal runtime error, once
	// CrashOnPanic is in force. Go's own status for a panic would be 2,
	// the usage status.
	ExitCrash = 134
)

// CrashOnPanic makes an unrecovered panic or a fatal runtime error end the
// process with SIGABRT (status ExitCrash) instead of Go's exit status 2,
// which the pods use for usage errors. The panic and every goroutine's
// stack are still written to stderr. A core file is written only where the
// core size limit allows one (ulimit -c, 0 on most systems). The pod
// binaries call it first thing; a library user need not.
func CrashOnPanic() { debug.SetTraceback("crash") }

// Main is the whole of a pod's main: healthcheck subcommand, or flags →
// Config → New → Run → Close, with SIGINT/SIGTERM stopping Run gracefully.
// It returns the exit status: ExitOK, ExitFailure, ExitUsage, ExitFenced or
// ExitAddrInUse.
func Main(role Role, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if url, ok := IsHealthcheck(args); ok {
		return Healthcheck(url, getenv, 3*time.Second, stderr)
	}
	cfg, err := ParseFlags(role, args, getenv, stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err == nil:
		err = cfg.checkKey()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v (see --help)\n", role, err)
		return 2
	}
	log := NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	SetMemoryLimit(cfg.MemoryLimit)
	log.Info("pod: memory limit", "soft_limit", formatMemoryLimit(cfg.MemoryLimit), "gogc", gogc(getenv))
	p, err := New(cfg, log)
	if err != nil {
		log.Error("pod: start", "err", err)
		if addrInUse(err) {
			return ExitAddrInUse
		}
		return ExitFailure
	}
	defer p.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := p.Run(ctx); err != nil {
		log.Error("pod: failed", "err", err)
		if errors.Is(err, cluster.ErrFenced) {
			return ExitFenced
		}
		return ExitFailure
	}
	return ExitOK
}

// SetMemoryLimit sets the Go runtime's soft memory limit for the process
// (Config.MemoryLimit: bytes, 0 for none). Main calls it.
func SetMemoryLimit(n int64) {
	if n <= 0 {
		n = math.MaxInt64 // the runtime's "no limit"
	}
	debug.SetMemoryLimit(n)
}

// gogc is GOGC as the runtime read it (for the start-up log).
func gogc(getenv func(string) string) string {
	if v := getenv("GOGC"); v != "" {
		return v
	}
	return "100"
}

// addrInUse: memberlist formats its listen errors with %v, so the text is
// all that is left of the errno.
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// NewLogger returns the pods' slog logger: text or JSON on w. Every
// record goes through logAttr: durations in seconds, errors on one line.
func NewLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: logAttr}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// logAttr is the pods' slog ReplaceAttr. A time.Duration value (which
// slog writes as Go's "1.5ms", or integer nanoseconds in JSON) becomes a
// number of seconds under the key with "_seconds" appended (unless it has
// it), so every duration a pod logs reads and parses alike. An error
// becomes its text on one line: a multi-line error (memberlist's
// multierror, "2 errors occurred:\n\t* a\n\t* b") becomes
// "2 errors occurred: a; b".
func logAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		if !strings.HasSuffix(a.Key, "_seconds") {
			a.Key += "_seconds"
		}
		a.Value = slog.Float64Value(a.Value.Duration().Seconds())
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok && err != nil {
			a.Value = slog.StringValue(flatLines(err.Error()))
		}
	case slog.KindString:
		if s := a.Value.String(); strings.ContainsAny(s, "\n\r") {
			a.Value = slog.StringValue(flatLines(s))
		}
	}
	return a
}

// flatLines puts a multi-line text on one line: the items of a multierror
// list ("\n\t* ") are joined with "; ", other runs of white space become
// one space.
func flatLines(s string) string {
	parts := strings.Split(s, "\n\t* ")
	s = parts[0]
	if len(parts) > 1 {
		s += " " + strings.Join(parts[1:], "; ")
	}
	return strings.Join(strings.Fields(s), " ")
}
