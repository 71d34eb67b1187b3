package runner

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

// Main is the whole of cmd/runner: flags, the run, the summary and the
// reports. It returns the exit status: 0 when the run was ok and every
// report was written, 1 otherwise, 2 for bad usage.
func Main(args []string, stdout, stderr io.Writer) int {
	cfg, err := ParseFlags(args, stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "%v (see --help)\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	con := NewConsole(stdout, IsTerminal(stdout))
	// Log lines share the console with the status line; the time is
	// left out (the status line says how far the run is).
	log := slog.New(slog.NewTextHandler(con, &slog.HandlerOptions{Level: slog.LevelInfo,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	r, err := New(ctx, cfg, con, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	rep, err := r.Run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, err)
		_ = r.Close(true)
		return 1
	}
	PrintSummary(con, rep)
	code := 0
	if !rep.OK {
		code = 1
	}
	for _, path := range reportPaths(cfg, rep) {
		if err := WriteReport(path, rep); err != nil {
			fmt.Fprintf(stderr, "runner: report: %v\n", err)
			code = 1
			continue
		}
		fmt.Fprintf(con, "  report: %s\n", path)
	}
	if err := r.Close(!rep.OK); err != nil {
		fmt.Fprintf(stderr, "runner: removing the work dir: %v\n", err)
	}
	if err := con.Err(); err != nil {
		fmt.Fprintf(stderr, "runner: output: %v\n", err)
		code = 1
	}
	return code
}

// reportPaths: --report files, none, or the default pair.
func reportPaths(cfg Config, rep *Report) []string {
	switch {
	case len(cfg.Reports) == 1 && cfg.Reports[0] == "none":
		return nil
	case len(cfg.Reports) > 0:
		return cfg.Reports
	}
	dir := DefaultReportDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		// No usable cache dir (e.g. a container whose HOME is / and not
		// writable): the temp dir, which the runner's work dir needs anyway.
		dir = filepath.Join(os.TempDir(), "steadfast-runs")
	}
	base := filepath.Join(dir, "run-"+rep.StartTime.Format("20060102-150405.000"))
	return []string{base + ".json", base + ".svg"}
}
