package transport

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/steadfast-pods/steadfast/internal/simnet"
)

// runSimRejoin: like runSim, but the receiver endpoint is replaced by a new
// one (receiver id + 1, no image) halfway through, as when a subscriber
// process restarts on the same address. The sender must be asked for a
// SETUP (0x80 SM), the new image joins at the sender's position, and from
// the first whole message after the join every message arrives once, in
// order, to the last.
func runSimRejoin(seed uint64, nMsgs int) error {
	rng := rand.New(rand.NewPCG(seed, 3))
	net := simnet.New(seed, simnet.Faults{Loss: rng.Float64() * 0.1, Duplicate: 0.05, Reorder: 0.1,
		MinDelay: 20_000, MaxDelay: 100_000, ReorderDelay: 500_000})
	var clock simnet.Clock
	pubAddr := netip.MustParseAddrPort("127.0.0.1:5001")
	subAddr := netip.MustParseAddrPort("127.0.0.1:40123")
	termLen := int32(64 * 1024)
	log := newLogBuffer(termLen, int32(rng.Uint32()))
	app := &termAppender{log: log, sessionID: 3, streamID: 9, maxPayload: 1408 - hdrLen}
	snd := newSender(senderParams{sessionID: 3, streamID: 9, mtu: 1408, pubWindow: int64(termLen / 2),
		heartbeat: 100e6, connTimeout: 5e9, rtxLinger: 10e6, linger: 5e9, eos: true}, log, 0, 0)
	p := recvParams{window: 128 * 1024, nakDelay: 100_000, nakRetry: 10_000_000, smTimeout: 200e6,
		liveness: 10e9, connLive: 5e9, setupHold: 1e9, drainHold: 1e9}
	newEP := func(id int64) *recvEndpoint {
		ep := newRecvEndpoint(id)
		ep.subscribe(&streamSub{streamID: 9, p: p})
		return ep
	}
	ep := newEP(100)
	sndOut := func(b []byte) { net.Send(clock.Now(), pubAddr, subAddr, b) }
	epOut := func(b []byte, to netip.AddrPort) { net.Send(clock.Now(), subAddr, to, b) }
	sizes := make([]int, nMsgs)
	for i := range sizes {
		sizes[i] = 8 + rng.IntN(3000) // some fragmented at MTU 1408
	}
	msg := make([]byte, 4096)
	offered, restarted := 0, false
	var img *image
	var rpos int64
	var asm assembler
	var got, before []int
	for {
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
				img, rpos, asm = ev.img, ev.img.joinPos, assembler{}
			}
		}
		ep.events = ep.events[:0]
		for offered < nMsgs && app.required(sizes[offered]) <= snd.producerLimit(now) {
			binary.LittleEndian.PutUint32(msg, uint32(offered))
			app.append(msg[:sizes[offered]], 0)
			offered++
		}
		if !restarted && offered >= nMsgs/2 {
			ep, img, restarted = newEP(101), nil, true // the old endpoint is gone
			before, got = got, nil
		}
		snd.doWork(now, app.pos, sndOut)
		if img != nil {
			readLog(img.log, &rpos, img.rebuild.Load(), 100, &asm, img.sessionID, img.streamID, func(m []byte, h Header) {
				i := int(binary.LittleEndian.Uint32(m))
				if len(m) != sizes[i] {
					got = append(got, -1)
				}
				got = append(got, i)
			})
			img.subPos.Store(rpos)
		}
		dl := ep.doWork(now, epOut)
		if len(got) > 0 && got[len(got)-1] == nMsgs-1 {
			break
		}
		if now > 300e9 {
			return fmt.Errorf("timeout: delivered %d, offered %d, restarted %v, image %v, setup requests %d", len(got), offered, restarted, img != nil, snd.c.setupRequests)
		}
		t := min(dl, snd.nextDeadline(now), now+1_000_000)
		if at, ok := net.NextAt(); ok {
			t = min(t, at)
		}
		clock.Set(max(t, now+1000))
	}
	if snd.c.setupRequests == 0 {
		return fmt.Errorf("the sender never saw a 0x80 SM")
	}
	// Before the restart: 0, 1, 2, ... without gaps; after it: one
	// contiguous run from the join to the last message.
	for k, i := range before {
		if i != k {
			return fmt.Errorf("before the restart message %d arrived as #%d", i, k)
		}
	}
	for k, i := range got {
		if i < 0 || i != got[0]+k {
			return fmt.Errorf("after the rejoin: %v...", got[:min(len(got), k+3)])
		}
	}
	if got[0] > nMsgs/2+nMsgs/4 || got[0] < len(before) {
		return fmt.Errorf("rejoined image delivered from message %d (%d before the restart)", got[0], len(before))
	}
	return nil
}

func TestSimulationRejoin(t *testing.T) {
	n := 50
	if testing.Short() {
		n = 10
	}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		if err := runSimRejoin(seed, 600); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}
