// Command mediadriver is a standalone Aeron media driver (like Aeron's
// aeronmd): clients in other processes — Aeron's own C and Java clients,
// AeronStat, and transport/aeronclient — attach to its directory and
// publish and subscribe over IPC and UDP through it.
//
//	mediadriver --dir /dev/shm/aeron-me
//
// It runs until SIGINT or SIGTERM, then removes what it created. See
// --help and docs/aeron-cnc.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/steadfast-pods/steadfast/transport/cnc"
	"github.com/steadfast-pods/steadfast/transport/mediadriver"
)

const usage = `mediadriver: a standalone Aeron media driver (like Aeron's aeronmd).

Clients attach through the directory: cnc.dat (commands, responses,
counters) and the log buffers under publications/ and images/. Aeron's own
clients (C, Java, AeronStat) and steadfast's transport/aeronclient work
against it. aeron:ipc streams are served from shared log buffers;
aeron:udp streams are carried by steadfast's embedded UDP driver.

Usage:
  mediadriver [flags]

Flags:
`

const footer = `
It runs until SIGINT or SIGTERM, then closes every stream and removes
cnc.dat, the log buffers and any directory it created.

A directory already holding a cnc.dat is judged as Aeron's drivers judge
it: a driver heartbeat younger than --driver-timeout means a live driver,
and mediadriver refuses to start (exit status 3); an older one was left by
a driver that died (SIGKILL, crash), and mediadriver reclaims the
directory: it removes the old cnc.dat and the dead driver's log buffers,
then starts. Clients of the dead driver notice its silent heartbeat after
their own driver timeout (give them the same figure) and attach again.

Example (with Aeron's C samples):
  mediadriver --dir /dev/shm/aeron-demo &
  basic_subscriber -p /dev/shm/aeron-demo -c aeron:ipc -s 1001 &
  basic_publisher  -p /dev/shm/aeron-demo -c aeron:ipc -s 1001
`

// ExitActive: another media driver is alive in the directory.
const ExitActive = 3

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mediadriver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
		fmt.Fprint(stderr, footer)
	}
	dir := fs.String("dir", "", "Aeron directory (default $AERON_DIR, else "+cnc.DefaultDir()+")")
	liveness := fs.Duration("client-liveness-timeout", 10*time.Second, "time out a client whose heartbeat is older than this and release its streams")
	driverTimeout := fs.Duration("driver-timeout", 10*time.Second, "a cnc.dat whose driver heartbeat is younger than this belongs to a live driver (refuse the directory); older: a dead driver's (reclaim it)")
	termLength := fs.Int("term-length", 16<<20, "default term length of UDP publications and images (bytes, power of two)")
	ipcTermLength := fs.Int("ipc-term-length", 64<<20, "default term length of IPC publications (bytes, power of two)")
	mtu := fs.Int("mtu", 1408, "default MTU of publication log buffers (bytes, multiple of 32)")
	linger := fs.Duration("linger", 5*time.Second, "how long a removed publication waits for its subscribers to drain")
	verbose := fs.Bool("v", false, "log clients and streams coming and going")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until shutdown (go tool pprof)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mediadriver: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "mediadriver:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "mediadriver:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	d, err := mediadriver.New(mediadriver.Config{
		Dir: *dir, ClientLivenessTimeout: *liveness, DriverTimeout: *driverTimeout, TermLength: *termLength,
		IPCTermLength: *ipcTermLength, MTU: *mtu, PublicationLinger: *linger, Logger: logger,
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		if errors.Is(err, mediadriver.ErrActive) {
			return ExitActive
		}
		return 1
	}
	fmt.Fprintf(stderr, "mediadriver: running in %s (pid %d); Ctrl-C stops\n", d.Dir(), os.Getpid())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case s := <-sig:
		fmt.Fprintf(stderr, "mediadriver: %v: shutting down\n", s)
	case <-d.Done():
		fmt.Fprintln(stderr, "mediadriver: conductor stopped")
	}
	if err := d.Close(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
