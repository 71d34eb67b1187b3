package aeronclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
)

// childSubscriber counts STEADFAST_CNC_COUNT messages on the channel in
// STEADFAST_CNC_CHANNEL (stream 77) and prints how long they took from the
// first one.
func childSubscriber() int {
	n, _ := strconv.Atoi(os.Getenv("STEADFAST_CNC_COUNT"))
	c, err := Connect(Config{Dir: os.Getenv("STEADFAST_CNC_DIR"), ConnectTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer c.Close()
	sub, err := c.AddSubscription(os.Getenv("STEADFAST_CNC_CHANNEL"), 77)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("ready")
	got := 0
	var start time.Time
	deadline := time.Now().Add(2 * time.Minute)
	idle := 0
	for i := 0; got < n && (i&1023 != 0 || time.Now().Before(deadline)); i++ {
		k := sub.Poll(func([]byte, transport.Header) {}, 256)
		if k > 0 && got == 0 {
			start = time.Now()
		}
		got += k
		// Back off when idle, as the embedded driver's benchmarks do:
		// 8 yields, then short sleeps (the driver needs the CPU more).
		switch {
		case k > 0:
			idle = 0
		case idle < 8:
			idle++
			runtime.Gosched()
		default:
			time.Sleep(time.Microsecond)
		}
	}
	fmt.Println("done", got, time.Since(start).Nanoseconds())
	return 0
}

// benchThroughPeer publishes b.N messages of size bytes from this process
// to a subscriber process through the driver in dir.
func benchThroughPeer(b *testing.B, dir, channel string, size int) {
	c, err := Connect(Config{Dir: dir, ConnectTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "STEADFAST_CNC_CHILD=subscriber", "STEADFAST_CNC_DIR="+dir,
		"STEADFAST_CNC_CHANNEL="+channel, "STEADFAST_CNC_COUNT="+strconv.Itoa(b.N))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		// Let a subscriber that finished close its client (a killed one
		// keeps its subscription on a shared driver until the liveness
		// timeout, and holds back the next run's stream until then).
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		b.Fatalf("subscriber: %q", lines.Text())
	}
	pub, err := c.AddExclusivePublication(channel, 77)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, size)
	for !pub.IsConnected() {
		time.Sleep(time.Millisecond)
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	idle := 0
	for i := 0; i < b.N; {
		_, err := pub.Offer(msg)
		if err == nil {
			i++
			idle = 0
			continue
		}
		if !errors.Is(err, transport.ErrBackPressured) && !errors.Is(err, transport.ErrNotConnected) {
			b.Fatal(err)
		}
		// The embedded driver's benchmarks' idle strategy: 8 yields,
		// then short sleeps (the driver needs the CPU more).
		if idle < 8 {
			idle++
			runtime.Gosched()
		} else {
			time.Sleep(time.Microsecond)
		}
	}
	if !lines.Scan() {
		b.Fatal("subscriber ended without a result")
	}
	b.StopTimer()
	f := strings.Fields(lines.Text())
	if got, _ := strconv.Atoi(f[min(1, len(f)-1)]); len(f) != 3 || f[0] != "done" || got < b.N {
		rest, _ := io.ReadAll(out)
		b.Fatalf("subscriber: %q %s", lines.Text(), rest)
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkMediaDriverIPC: 32-byte messages from this process to a
// subscriber process over aeron:ipc through the standalone driver (a third
// process). STEADFAST_AERON_DIR runs it against a driver already running
// there instead (e.g. Aeron's aeronmd, for a baseline).
func BenchmarkMediaDriverIPC(b *testing.B) {
	benchThroughDriver(b, "aeron:ipc?term-length=16m")
}

// BenchmarkMediaDriverUDP: messages of 32 and 1024 bytes over aeron:udp
// on loopback through the driver (its embedded driver's default MTU,
// 8192). transport's BenchmarkTwoProcess/mtu8192 is the same traffic with
// the embedded driver in both processes, for the ratio.
func BenchmarkMediaDriverUDP(b *testing.B) {
	for _, size := range []int{32, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			benchThroughDriverSize(b, "aeron:udp?endpoint=127.0.0.1:40499|term-length=16m", size)
		})
	}
}

func benchThroughDriver(b *testing.B, channel string) { benchThroughDriverSize(b, channel, 32) }

func benchThroughDriverSize(b *testing.B, channel string, size int) {
	dir := os.Getenv("STEADFAST_AERON_DIR")
	if dir == "" {
		dir = b.TempDir() + "/aeron"
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), "STEADFAST_CNC_CHILD=driver", "STEADFAST_CNC_DIR="+dir, "STEADFAST_CNC_LIVENESS=10s")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	}
	benchThroughPeer(b, dir, channel, size)
}
