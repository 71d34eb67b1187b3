package aeronclient

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// These tests exercise the log-append and log-read protocols on a real
// memory-mapped log file, with the test playing the driver's part (raising
// the publication limit from the subscriber position and cleaning terms
// behind it), as for an IPC stream.

type logRig struct {
	log     *cnc.Log
	mapping *cnc.Mapping
	limit   []byte
	subPos  []byte
	c       *Client
}

func newLogRig(t testing.TB, termLen, mtu int) *logRig {
	t.Helper()
	m, err := cnc.CreateFile(filepath.Join(t.TempDir(), "1.logbuffer"), cnc.LogLength(termLen, 4096))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	l, err := cnc.InitLog(m.Data, cnc.LogParams{TermLength: termLen, PageSize: 4096, MTU: mtu,
		InitialTermID: -7, SessionID: 11, StreamID: 22, CorrelationID: 1, Connected: true})
	if err != nil {
		t.Fatal(err)
	}
	r := &logRig{log: l, mapping: m, limit: cnc.AlignedCopy(make([]byte, 128)),
		subPos: cnc.AlignedCopy(make([]byte, 128)), c: &Client{}}
	cnc.StoreInt64(r.limit, 0, int64(termLen/2))
	return r
}

func (r *logRig) pub() *Publication {
	l := r.log
	return &Publication{c: r.c, sessionID: 11, streamID: 22, log: l, limit: r.limit, app: cnc.NewAppender(l, 11, 22)}
}

func (r *logRig) image() *image {
	l := r.log
	return &image{sessionID: 11, rd: cnc.NewReader(l, 0), subPos: r.subPos}
}

// drive plays the driver: clean the term behind the subscriber, then raise
// the limit to subscriber position + half a term.
func (r *logRig) drive(img *image, cleaned *int64) {
	T := int64(r.log.TermLength)
	pos := cnc.LoadInt64(r.subPos, 0)
	for term := pos / T; *cleaned < term-1; {
		*cleaned++
		if *cleaned >= 0 {
			clear(r.log.Terms[*cleaned%cnc.PartitionCount])
		}
	}
	cnc.StoreInt64(r.limit, 0, pos+T/2)
}

func msgFor(rng *rand.Rand, producer, seq int, maxLen int) []byte {
	n := 12 + rng.IntN(300)
	if rng.IntN(20) == 0 {
		n = 12 + rng.IntN(maxLen-12) // often fragmented
	}
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b, uint32(producer))
	binary.LittleEndian.PutUint64(b[4:], uint64(seq))
	for i := 12; i < n; i++ {
		b[i] = byte(seq + i)
	}
	return b
}

// TestLogAppendReadRotation: two publishers share one log (as two clients'
// publications on one stream do) through many term rotations, with
// unfragmented and fragmented messages; the reader gets every message of
// each publisher whole and in order, and positions agree.
func TestLogAppendReadRotation(t *testing.T) {
	r := newLogRig(t, 64*1024, 1408)
	img := r.image()
	const producers, per = 2, 4000
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub := r.pub()
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for seq := 0; seq < per; {
				msg := msgFor(rng, p, seq, pub.MaxMessageLength())
				for {
					_, err := pub.Offer(msg)
					if err == nil {
						break
					}
					if !errors.Is(err, transport.ErrBackPressured) {
						t.Errorf("offer: %v", err)
						return
					}
				}
				seq++
			}
		}()
	}
	next := make([]int, producers)
	rngs := []*rand.Rand{rand.New(rand.NewPCG(0, 1)), rand.New(rand.NewPCG(1, 1))}
	cleaned := int64(-1)
	var lastPos int64
	for got := 0; got < producers*per; {
		img.poll(func(msg []byte, h transport.Header) {
			p := int(binary.LittleEndian.Uint32(msg))
			want := msgFor(rngs[p], p, next[p], r.log.TermLength/8)
			if !bytes.Equal(msg, want) {
				t.Fatalf("producer %d message %d: %d bytes, want %d", p, next[p], len(msg), len(want))
			}
			if h.Position <= lastPos || h.SessionID != 11 || h.StreamID != 22 {
				t.Fatalf("header %+v after position %d", h, lastPos)
			}
			lastPos = h.Position
			next[p]++
			got++
		}, 50)
		r.drive(img, &cleaned)
	}
	wg.Wait()
	if img.rd.Position() < 10*int64(r.log.TermLength) {
		t.Errorf("only %d bytes read: too few rotations", img.rd.Position())
	}
	if pub := r.pub(); pub.Position() != img.rd.Position() {
		t.Errorf("publisher position %d, subscriber %d", pub.Position(), img.rd.Position())
	}
}

// TestOfferRefusals: limit reached → back pressured when connected, not
// connected otherwise; oversized → ErrMessageTooLarge; closed → ErrClosed.
func TestOfferRefusals(t *testing.T) {
	r := newLogRig(t, 64*1024, 1408)
	pub := r.pub()
	cnc.StoreInt64(r.limit, 0, 0)
	if pos, err := pub.Offer([]byte("x")); !errors.Is(err, transport.ErrBackPressured) || pos != transport.BackPressured {
		t.Errorf("%d %v", pos, err)
	}
	cnc.StoreInt32(r.log.Meta, cnc.LogOffIsConnected, 0)
	if pos, err := pub.Offer([]byte("x")); !errors.Is(err, transport.ErrNotConnected) || pos != transport.NotConnected {
		t.Errorf("%d %v", pos, err)
	}
	if _, err := pub.Offer(make([]byte, 64*1024/8+1)); !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	pub.closed.Store(true)
	if _, err := pub.Offer([]byte("x")); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("closed: %v", err)
	}
}

// TestReaderSkipsOrphanFragments: a reader that joins in the middle of a
// fragmented message drops its tail and delivers the next message.
func TestReaderSkipsOrphanFragments(t *testing.T) {
	r := newLogRig(t, 64*1024, 1408)
	pub := r.pub()
	big := bytes.Repeat([]byte{7}, 5000)
	if _, err := pub.Offer(big); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Offer([]byte("after")); err != nil {
		t.Fatal(err)
	}
	img := r.image()
	img.rd = cnc.NewReader(r.log, 1408) // at the second fragment
	var got []string
	img.poll(func(msg []byte, h transport.Header) { got = append(got, string(msg)) }, 100)
	if len(got) != 1 || got[0] != "after" {
		t.Errorf("got %q", got)
	}
}

// BenchmarkLogOfferPoll: the client's per-message cost on a mapped log,
// one goroutine offering and polling (no driver, no second process).
func BenchmarkLogOfferPoll(b *testing.B) {
	r := newLogRig(b, 16<<20, 1408)
	pub, img := r.pub(), r.image()
	msg := make([]byte, 32)
	cleaned := int64(-1)
	h := func([]byte, transport.Header) {}
	b.SetBytes(32)
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	defer func() {
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}()
	for i := 0; i < b.N; {
		for k := 0; k < 256 && i < b.N; k++ {
			if _, err := pub.Offer(msg); err != nil {
				break
			}
			i++
		}
		for {
			if n, _ := img.poll(h, 256); n == 0 {
				break
			}
		}
		r.drive(img, &cleaned)
	}
}
