package transport

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks. Run them all with:
//
//	go test -run '^$' -bench . -benchtime 2s ./transport/
//
// BenchmarkThroughput/<mtu>/<size>: one publication → one subscription over
// UDP loopback in one process (publisher and subscriber goroutines, driver
// goroutines), messages/s and MB/s of payload. BenchmarkRawUDP/<mtu>/<size>
// sends datagrams of the same size as our batched data datagrams through
// a plain socket pair, for the ratio. BenchmarkPingPong measures RTT.

// backoff is the idle strategy of the benchmarks' senders while they
// cannot proceed (ours back pressured, the raw baseline paced): a few
// yields, then short sleeps, as Aeron's BackoffIdleStrategy does, so a
// waiting producer does not take the CPU the goroutines it waits for need
// (the machine has 2 cores). The same for both, so the ratio is fair.
type backoff int

func (b *backoff) idle() {
	if *b < 8 {
		*b++
		runtime.Gosched()
		return
	}
	time.Sleep(time.Microsecond)
}

func benchPair(b *testing.B, cfg Config, stream int32) (*Driver, *Publication, *Subscription) {
	d, err := NewDriver(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	sub, err := d.AddSubscription("aeron:udp?endpoint=127.0.0.1:0", stream)
	if err != nil {
		b.Fatal(err)
	}
	pub, err := d.AddPublication("aeron:udp?endpoint="+sub.LocalAddr(), stream)
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !pub.IsConnected() {
		if time.Now().After(deadline) {
			b.Fatal("not connected")
		}
		time.Sleep(time.Millisecond)
	}
	return d, pub, sub
}

var benchSizes = []int{8, 32, 256, 1024}

func BenchmarkThroughput(b *testing.B) {
	for _, mtu := range []int{1408, 8192, 65504 &^ 31} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("mtu%d/%dB", mtu, size), func(b *testing.B) {
				cfg := DefaultConfig()
				cfg.MTU = mtu
				_, pub, sub := benchPair(b, cfg, 1)
				msg := make([]byte, size)
				var got atomic.Int64
				done := make(chan struct{})
				go func() {
					defer close(done)
					n := int64(0)
					h := func(m []byte, _ Header) { n++ }
					ctx := context.Background()
					for n < int64(b.N) {
						if sub.Poll(h, 4096) == 0 {
							wctx, c := context.WithTimeout(ctx, 10*time.Millisecond)
							sub.Wait(wctx)
							c()
						}
					}
					got.Store(n)
				}()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				var bo backoff
				for i := 0; i < b.N; {
					if _, err := pub.Offer(msg); err == nil {
						i++
						bo = 0
					} else {
						bo.idle() // back pressured: let the driver run
					}
				}
				<-done
				b.StopTimer()
				el := b.Elapsed().Seconds()
				b.ReportMetric(float64(b.N)/el, "msgs/s")
				ps := pub.Stats()
				b.ReportMetric(float64(ps.Retransmits), "rtx")
				if ps.DatagramsSent > 0 {
					b.ReportMetric(float64(ps.BytesSent)/float64(ps.DatagramsSent), "B/datagram")
				}
			})
		}
	}
}

// BenchmarkRawUDP: plain socket send/receive of datagrams of dgram bytes,
// reported as payload bytes/s for the same message size when the datagram
// is packed the way we pack it (frames of A32(32+size)). To do the same job
// as the transport, the receiving goroutine hands every datagram to a
// consumer goroutine (through a ring of buffers and channels), which walks
// its frames as Poll does; the sender is paced on what was consumed.
func BenchmarkRawUDP(b *testing.B) {
	for _, mtu := range []int{1408, 8192, 65504 &^ 31} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("mtu%d/%dB", mtu, size), func(b *testing.B) {
				per := align32(hdrLen + size)
				perDgram := mtu / per
				dgram := perDgram * per
				rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					b.Fatal(err)
				}
				defer rc.Close()
				rc.SetReadBuffer(4 << 20)
				sc, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
				if err != nil {
					b.Fatal(err)
				}
				defer sc.Close()
				sc.SetWriteBuffer(1 << 20)
				dgrams := (b.N + perDgram - 1) / perDgram
				const slots = 256
				ring := make([][]byte, slots)
				free := make(chan int, slots)
				for i := range ring {
					ring[i] = make([]byte, dgram+1)
					free <- i
				}
				type filled struct{ slot, n int }
				full := make(chan filled, slots)
				var consumed, msgs atomic.Int64
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { // receiver
					defer wg.Done()
					defer close(full)
					for i := 0; i < dgrams; i++ {
						slot := <-free
						rc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
						n, err := rc.Read(ring[slot])
						if err != nil {
							return
						}
						full <- filled{slot, n}
					}
				}()
				go func() { // consumer
					defer wg.Done()
					for f := range full {
						d := ring[f.slot][:f.n]
						m := int64(0)
						for off := 0; off+hdrLen <= len(d); off += per {
							if getFrameLength(d[off:]) >= 0 {
								m++
							}
						}
						msgs.Add(m)
						consumed.Add(1)
						free <- f.slot
					}
				}()
				buf := make([]byte, dgram)
				for off := 0; off < dgram; off += per {
					putI32(buf, off, int32(hdrLen+size))
				}
				b.SetBytes(int64(size))
				b.ResetTimer()
				// Crude pacing so the receiver is not simply overrun: at
				// most 4 MiB (and 512 datagrams) in flight, like our 2 MiB
				// window plus the publication's.
				inflight := min(512, max(16, (4<<20)/dgram))
				check := max(1, inflight/8)
				for i := 0; i < dgrams; i++ {
					sc.Write(buf)
					if i%check == check-1 {
						var bo backoff
						for int64(i)-consumed.Load() > int64(inflight) {
							bo.idle()
						}
					}
				}
				wg.Wait()
				b.StopTimer()
				el := b.Elapsed().Seconds()
				r := msgs.Load()
				b.ReportMetric(float64(r)/el, "msgs/s")
				b.ReportMetric(float64(r)*float64(size)/el/1e6, "MB/s-delivered")
				b.ReportMetric(float64(dgrams-int(consumed.Load()))/float64(dgrams)*100, "%lost")
			})
		}
	}
}

// BenchmarkPingPong: 32-byte messages bounced between two publication/
// subscription pairs; reports RTT percentiles.
func BenchmarkPingPong(b *testing.B) {
	cfg := DefaultConfig()
	d, err := NewDriver(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	subA, _ := d.AddSubscription("aeron:udp?endpoint=127.0.0.1:0", 1)
	subB, _ := d.AddSubscription("aeron:udp?endpoint=127.0.0.1:0", 2)
	pubAB, _ := d.AddPublication("aeron:udp?endpoint="+subB.LocalAddr(), 2)
	pubBA, _ := d.AddPublication("aeron:udp?endpoint="+subA.LocalAddr(), 1)
	for !pubAB.IsConnected() || !pubBA.IsConnected() {
		time.Sleep(time.Millisecond)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // echo
		ctx := context.Background()
		h := func(m []byte, _ Header) {
			for {
				if _, err := pubBA.Offer(m); err == nil {
					return
				}
				runtime.Gosched()
			}
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			if subB.Poll(h, 16) == 0 {
				wctx, c := context.WithTimeout(ctx, 10*time.Millisecond)
				subB.Wait(wctx)
				c()
			}
		}
	}()
	msg := make([]byte, 32)
	rtts := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for {
			if _, err := pubAB.Offer(msg); err == nil {
				break
			}
			runtime.Gosched()
		}
		got := false
		for !got {
			if subA.Poll(func([]byte, Header) { got = true }, 1) == 0 {
				wctx, c := context.WithTimeout(ctx, 10*time.Millisecond)
				subA.Wait(wctx)
				c()
			}
		}
		rtts = append(rtts, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	pct := func(p float64) float64 { return float64(rtts[int(float64(len(rtts)-1)*p)].Microseconds()) }
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(pct(0.999), "p99.9-µs")
}
