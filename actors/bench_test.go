package actors

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"
)

// BenchmarkChanThroughput moves uint64 values from a producer goroutine to a
// consumer goroutine: a plain buffered Go channel, the SPSC ring one value at
// a time, and the SPSC ring in batches of 1,024. b.N counts values.
func BenchmarkChanThroughput(b *testing.B) {
	const capacity = 8192
	report := func(b *testing.B, start time.Time) {
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds()/1e6, "Mvalues/s")
	}
	b.Run("gochan/one", func(b *testing.B) {
		ch := make(chan uint64, capacity)
		b.SetBytes(8)
		b.ReportAllocs()
		start := time.Now()
		go func() {
			for i := range b.N {
				ch <- uint64(i)
			}
			close(ch)
		}()
		var sum uint64
		for v := range ch {
			sum += v
		}
		report(b, start)
		sink(sum)
	})
	b.Run("spsc/one", func(b *testing.B) {
		c := NewChan[uint64]("bench", capacity)
		ctx := context.Background()
		b.SetBytes(8)
		b.ReportAllocs()
		start := time.Now()
		go func() {
			for i := range b.N {
				if !c.TrySend(uint64(i)) {
					c.Send(ctx, uint64(i))
				}
			}
			c.Close()
		}()
		var sum uint64
		for {
			v, ok := c.TryTake()
			if !ok {
				if !c.WaitAvailable(ctx, 1) {
					break
				}
				continue
			}
			sum += v
		}
		report(b, start)
		sink(sum)
	})
	for _, batch := range []int{64, 1024} {
		b.Run(fmt.Sprintf("spsc/batch%d", batch), func(b *testing.B) {
			c := NewChan[uint64]("bench", capacity)
			ctx := context.Background()
			b.SetBytes(8)
			b.ReportAllocs()
			start := time.Now()
			go func() {
				buf := make([]uint64, batch)
				for i := 0; i < b.N; i += batch {
					k := min(batch, b.N-i)
					for j := range k {
						buf[j] = uint64(i + j)
					}
					c.SendAll(ctx, buf[:k])
				}
				c.Close()
			}()
			buf := make([]uint64, batch)
			var sum uint64
			for c.WaitAvailable(ctx, 1) {
				n := c.TakeBatch(buf)
				for _, v := range buf[:n] {
					sum += v
				}
			}
			report(b, start)
			sink(sum)
		})
	}
}

var sinkV uint64

func sink(v uint64) { sinkV += v }

// BenchmarkRestartLatency measures panic → restarted behaviour running again
// (real clock), reporting the median and 99th percentile:
//   - nobackoff: BackoffMin < 0, the runtime's own cost (recover, bookkeeping,
//     showstopper check, re-entry), over a run of consecutive restarts;
//   - firstrestart: the default config's first restart (BackoffMin 1ms),
//     one fresh graph per iteration.
func BenchmarkRestartLatency(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	percentiles := func(b *testing.B, lat []time.Duration) {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	}
	b.Run("nobackoff", func(b *testing.B) {
		g, _ := NewGraph(Config{Logger: quiet, BackoffMin: -1, MaxRestarts: b.N + 1, RestartWindow: time.Hour})
		lat := make([]time.Duration, 0, b.N)
		var panicked time.Time
		runs := 0
		g.Add(Spec{Name: "crashy", State: &counterState{}, Run: func(ctx *Context) error {
			if runs > 0 {
				lat = append(lat, time.Since(panicked))
			}
			runs++
			if runs > b.N {
				return nil
			}
			panicked = time.Now()
			panic("bench")
		}})
		b.ResetTimer()
		if err := g.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		percentiles(b, lat)
	})
	b.Run("firstrestart", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for range b.N {
			g, _ := NewGraph(Config{Logger: quiet})
			var panicked time.Time
			runs := 0
			g.Add(Spec{Name: "crashy", Run: func(ctx *Context) error {
				runs++
				if runs == 1 {
					panicked = time.Now()
					panic("bench")
				}
				lat = append(lat, time.Since(panicked))
				return nil
			}})
			if err := g.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		percentiles(b, lat)
	})
}
