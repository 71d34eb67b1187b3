package transport

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain doubles as the subscriber process of BenchmarkTwoProcess: with
// TRANSPORT_BENCH_CHILD set, the test binary binds a subscription on
// 127.0.0.1:0, prints its address, receives N messages and prints "done".
func TestMain(m *testing.M) {
	if os.Getenv("TRANSPORT_BENCH_CHILD") != "" {
		os.Exit(benchChild())
	}
	os.Exit(m.Run())
}

func benchChild() int {
	n, _ := strconv.Atoi(os.Getenv("TRANSPORT_BENCH_N"))
	mtu, _ := strconv.Atoi(os.Getenv("TRANSPORT_BENCH_MTU"))
	cfg := DefaultConfig()
	cfg.MTU = mtu
	d, err := NewDriver(cfg)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer d.Close()
	sub, err := d.AddSubscription("aeron:udp?endpoint=127.0.0.1:0", 1)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println(sub.LocalAddr())
	got := 0
	h := func([]byte, Header) { got++ }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for got < n && ctx.Err() == nil {
		if sub.Poll(h, 4096) == 0 {
			wctx, c := context.WithTimeout(ctx, 10*time.Millisecond)
			sub.Wait(wctx)
			c()
		}
	}
	fmt.Println("done", got)
	return 0
}

// BenchmarkTwoProcess: the publisher in this process, the subscriber in a
// child process (this test binary re-executed), over UDP loopback.
func BenchmarkTwoProcess(b *testing.B) {
	for _, mtu := range []int{1408, 8192} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("mtu%d/%dB", mtu, size), func(b *testing.B) {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "TRANSPORT_BENCH_CHILD=1",
					"TRANSPORT_BENCH_N="+strconv.Itoa(b.N), "TRANSPORT_BENCH_MTU="+strconv.Itoa(mtu))
				out, err := cmd.StdoutPipe()
				if err != nil {
					b.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				defer cmd.Wait()
				defer cmd.Process.Kill()
				lines := bufio.NewScanner(out)
				if !lines.Scan() || strings.HasPrefix(lines.Text(), "error") {
					b.Fatalf("child: %q", lines.Text())
				}
				addr := lines.Text()
				cfg := DefaultConfig()
				cfg.MTU = mtu
				d, err := NewDriver(cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				pub, err := d.AddPublication("aeron:udp?endpoint="+addr, 1)
				if err != nil {
					b.Fatal(err)
				}
				for !pub.IsConnected() {
					time.Sleep(time.Millisecond)
				}
				msg := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				var bo backoff
				for i := 0; i < b.N; {
					if _, err := pub.Offer(msg); err == nil {
						i++
						bo = 0
					} else {
						bo.idle()
					}
				}
				if !lines.Scan() || !strings.HasPrefix(lines.Text(), "done") {
					b.Fatalf("child ended with %q", lines.Text())
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
