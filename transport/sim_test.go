package transport

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"testing"

	"github.com/steadfast-pods/steadfast/internal/simnet"
)

var (
	simSeeds = flag.Int("sim.seeds", 200, "number of seeds TestSimulation runs")
	simSeed  = flag.Uint64("sim.seed", 0, "run TestSimulation for this seed only (also env TRANSPORT_SIM_SEED)")
)

type simResult struct {
	delivered int
	virtualNs int64
	net       simnet.Stats
	naks      uint64
	rtx       uint64
}

// runSim drives a sender core and a receive endpoint core through a seeded
// lossy network on a virtual clock until every message is delivered and
// the image has gone away after end of stream. It returns an error
// describing the first violation.
func runSim(seed uint64, nMsgs int) (simResult, error) {
	var res simResult
	rng := rand.New(rand.NewPCG(seed, 1))
	faults := simnet.Faults{
		Loss:         rng.Float64() * 0.2,
		Duplicate:    rng.Float64() * 0.1,
		Reorder:      rng.Float64() * 0.3,
		MinDelay:     20_000,
		MaxDelay:     20_000 + rng.Int64N(200_000),
		ReorderDelay: rng.Int64N(2_000_000),
	}
	net := simnet.New(seed, faults)
	var clock simnet.Clock
	pubAddr := netip.MustParseAddrPort("127.0.0.1:5001")
	subAddr := netip.MustParseAddrPort("127.0.0.1:40123")

	termLen := int32(64 * 1024)
	mtu := []int{1408, 4096, 8192}[rng.IntN(3)]
	initial := int32(rng.Uint32())
	log := newLogBuffer(termLen, initial)
	app := &termAppender{log: log, sessionID: 11, streamID: 1001, maxPayload: mtu - hdrLen}
	startTC := int64(rng.IntN(4))
	app.pos = startTC<<log.shift + int64(rng.IntN(int(termLen)/32))*32
	snd := newSender(senderParams{sessionID: 11, streamID: 1001, mtu: mtu, pubWindow: int64(termLen / 2),
		heartbeat: 100e6, connTimeout: 5e9, rtxLinger: 10e6, linger: 5e9, eos: true}, log, app.pos, 0)

	ep := newRecvEndpoint(int64(rng.Uint64()))
	p := recvParams{window: 128 * 1024, nakDelay: 100_000, nakRetry: 10_000_000, smTimeout: 200e6,
		liveness: 10e9, connLive: 5e9, setupHold: 1e9, drainHold: 1e9}
	ep.subscribe(&streamSub{streamID: 1001, p: p})

	sndOut := func(b []byte) { net.Send(clock.Now(), pubAddr, subAddr, b) }
	epOut := func(b []byte, to netip.AddrPort) {
		if to != pubAddr {
			panic("control frame to the wrong address")
		}
		net.Send(clock.Now(), subAddr, to, b)
	}

	sizes := make([]int, nMsgs)
	for i := range sizes {
		switch r := rng.IntN(10); {
		case r < 6:
			sizes[i] = 8 + rng.IntN(120)
		case r < 9:
			sizes[i] = 128 + rng.IntN(2000)
		default:
			sizes[i] = 2000 + rng.IntN(maxMessageLength(termLen)-2000)
		}
	}
	msg := make([]byte, maxMessageLength(termLen))
	offered := 0
	var img *image
	var rpos int64
	var asm assembler
	var gone, available bool
	next := 0
	var verr error
	handler := func(m []byte, h Header) {
		if verr != nil {
			return
		}
		if next >= nMsgs {
			verr = fmt.Errorf("extra message after %d", nMsgs)
			return
		}
		if len(m) != sizes[next] || binary.LittleEndian.Uint32(m) != uint32(next) || m[len(m)-1] != byte(next) {
			verr = fmt.Errorf("message %d: got %d bytes (index %d), want %d bytes", next, len(m), binary.LittleEndian.Uint32(m), sizes[next])
			return
		}
		if h.SessionID != 11 || h.StreamID != 1001 || h.Position <= 0 {
			verr = fmt.Errorf("bad header %+v", h)
			return
		}
		next++
	}
	closed := false
	const limitNs = 600e9
	for steps := 0; ; steps++ {
		now := clock.Now()
		net.Deliver(now, func(pk *simnet.Packet) {
			if pk.To == subAddr {
				ep.onDatagram(pk.Data, pk.From, now, epOut)
			} else {
				snd.onControl(pk.Data, now, sndOut)
			}
		})
		for _, ev := range ep.events {
			if ev.available {
				if img != nil || available {
					return res, fmt.Errorf("second image")
				}
				img, available = ev.img, true
				rpos = img.joinPos
				if img.joinPos != startTC<<log.shift+int64(log.termOffset(app.pos)) && offered == 0 {
					return res, fmt.Errorf("join at %d, publication at %d", img.joinPos, app.pos)
				}
			} else {
				gone = true
			}
		}
		ep.events = ep.events[:0]
		// Producer: offer as much as the limit allows.
		for offered < nMsgs && !closed {
			n := sizes[offered]
			if app.required(n) > snd.producerLimit(now) {
				break
			}
			binary.LittleEndian.PutUint32(msg, uint32(offered))
			for k := 4; k < n; k++ {
				msg[k] = 0
			}
			msg[n-1] = byte(offered)
			app.append(msg[:n], 0)
			offered++
		}
		if offered == nMsgs && !closed {
			snd.close(now)
			closed = true
		}
		snd.doWork(now, app.pos, sndOut)
		if img != nil && !gone {
			readLog(img.log, &rpos, img.rebuild.Load(), 10+rng.IntN(500), &asm, img.sessionID, img.streamID, handler)
			img.subPos.Store(rpos)
			if verr != nil {
				return res, verr
			}
		}
		dl := ep.doWork(now, epOut)
		if next == nMsgs && gone && snd.finished {
			break
		}
		if now > limitNs {
			return res, fmt.Errorf("timeout at virtual %v: delivered %d/%d, offered %d, sender pos %d limit %d producer %d finished %v, image %v gone %v, in flight %d",
				now, next, nMsgs, offered, snd.pos, snd.limit, app.pos, snd.finished, img != nil, gone, net.InFlight())
		}
		// Jump to the next event (the consumer polls at least every 1 ms).
		t := min(dl, snd.nextDeadline(now), now+1_000_000)
		if at, ok := net.NextAt(); ok {
			t = min(t, at)
		}
		clock.Set(max(t, now+1000))
	}
	res.delivered = next
	res.virtualNs = clock.Now()
	res.net = net.Stats()
	res.naks = img.c.naks
	res.rtx = snd.c.retransmits
	return res, nil
}

// TestSimulation: every message delivered exactly once and in order, for
// many seeds, through loss up to 20 %, duplication, reordering and delay.
// Reproduce a failure with: go test ./transport -run TestSimulation -sim.seed=N
func TestSimulation(t *testing.T) {
	seeds := make([]uint64, 0, *simSeeds)
	one := *simSeed
	if v := os.Getenv("TRANSPORT_SIM_SEED"); v != "" && one == 0 {
		one, _ = strconv.ParseUint(v, 10, 64)
	}
	if one != 0 {
		seeds = append(seeds, one)
	} else {
		for s := 1; s <= *simSeeds; s++ {
			seeds = append(seeds, uint64(s))
		}
	}
	nMsgs := 1000
	if testing.Short() {
		nMsgs = 200
	}
	var naks, rtx uint64
	for _, seed := range seeds {
		res, err := runSim(seed, nMsgs)
		if err != nil {
			t.Fatalf("seed %d: %v\nreproduce: go test ./transport -run TestSimulation -sim.seed=%d", seed, err, seed)
		}
		naks += res.naks
		rtx += res.rtx
	}
	if len(seeds) > 20 && (naks == 0 || rtx == 0) {
		t.Fatalf("no loss repaired across %d seeds (naks %d, retransmits %d)", len(seeds), naks, rtx)
	}
	t.Logf("%d seeds, %d NAKs, %d retransmissions", len(seeds), naks, rtx)
}
