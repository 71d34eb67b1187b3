// Command runner builds the steadfast pods, runs publishers and subscribers
// as local processes, injects faults on request, and checks that nothing was
// lost or duplicated. `go run ./cmd/runner` runs the default scenario;
// --help lists the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/steadfast-pods/steadfast/internal/buildinfo"
	"github.com/steadfast-pods/steadfast/internal/pod"
	"github.com/steadfast-pods/steadfast/internal/runner"
)

func main() {
	if buildinfo.Requested(os.Args[1:]) {
		fmt.Println(buildinfo.String("runner"))
		return
	}
	cfg, err := runner.ParseFlags(os.Args[1:], os.Stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintf(os.Stderr, "runner: %v (see --help)\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := pod.NewLogger(os.Stderr, pod.DefaultConfig(pod.Subscriber).LogLevel, "text")
	r, err := runner.New(ctx, cfg, os.Stdout, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rep, err := r.Run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = r.Close(true)
		os.Exit(1)
	}
	runner.PrintSummary(os.Stdout, rep)
	if cfg.Report != "" {
		if err := runner.WriteReport(cfg.Report, rep); err != nil {
			fmt.Fprintln(os.Stderr, "runner: report:", err)
		}
	}
	_ = r.Close(!rep.OK)
	if !rep.OK {
		os.Exit(1)
	}
}
