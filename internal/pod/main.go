package pod

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Main is the whole of a pod's main: healthcheck subcommand, or flags →
// Config → New → Run → Close, with SIGINT/SIGTERM stopping Run gracefully.
// It returns the exit status: 0 success (or --help), 1 failure, 2 bad usage.
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
	p, err := New(cfg, log)
	if err != nil {
		log.Error("pod: start", "err", err)
		return 1
	}
	defer p.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := p.Run(ctx); err != nil {
		log.Error("pod: failed", "err", err)
		return 1
	}
	return 0
}

// NewLogger returns the pods' slog logger: text or JSON on w.
func NewLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
