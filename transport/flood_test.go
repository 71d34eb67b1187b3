package transport

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rssBytes returns this process's resident set size (Linux), or 0.
func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// setupFlood sends SETUPs for sessions fake sessions with term length
// termLen to addr from one socket, round after round, until stop closes;
// with heartbeat, the first round also sends each session a heartbeat
// (as a publisher would once connected) so its image goes live.
func setupFlood(t *testing.T, addr string, stream int32, sessions int, termLen int32, heartbeat bool, stop <-chan struct{}) *sync.WaitGroup {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer c.Close()
		var b [64]byte
		for round := int32(0); ; round++ {
			for s := int32(0); s < int32(sessions); s++ {
				_, _ = c.WriteToUDP(encodeSetup(b[:], 0, 0x5e7000+s, stream, 1, 1, termLen, 1408, 0), to)
			}
			if heartbeat && round == 1 {
				for s := int32(0); s < int32(sessions); s++ {
					_, _ = c.WriteToUDP(encodeHeartbeat(b[:], flagsUnfrag, 0, 0x5e7000+s, stream, 1), to)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return &wg
}

// TestSetupFloodDoesNotStarvePublisher (issue 14 §4): 64 fake sessions
// announcing 64 MiB terms flood SETUPs from the same host as the real
// publishers. They neither keep a restarted publisher from getting an
// image and delivering, nor make the driver hold more log memory than its
// budget. SETUPs alone cost no log memory (images are pending until their
// first frame); fake sessions that send one heartbeat go live until the
// budget is spent, and are evicted once silent.
func TestSetupFloodDoesNotStarvePublisher(t *testing.T) {
	for _, tc := range []struct {
		name      string
		heartbeat bool
		budget    int64
	}{
		{"setups", false, 512 << 20},
		// Room for the first publisher's image and two fake ones, not
		// for the restarted publisher's on top.
		{"setups-and-heartbeat", true, 2*3*(64<<20) + 3*(4<<20) + (6 << 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeak(t)
			cfg := testConfig()
			cfg.PendingSetupHold = 200 * time.Millisecond
			cfg.ReceiveBufferBudget = tc.budget
			ds := newTestDriver(t, cfg)
			c := collect(t, ds, "aeron:udp?endpoint=127.0.0.1:0", 9)
			addr := c.sub.LocalAddr()
			cfgA := cfg
			cfgA.Seed = 11
			dpA := newTestDriver(t, cfgA)
			pubA, _ := dpA.AddPublication("aeron:udp?endpoint="+addr, 9)
			offerAll(t, pubA, "a1")
			eventually(t, 10*time.Second, "a1", func() bool { return c.count() == 1 })
			dpA.Close() // crash-like: its image stays until the liveness timeout

			runtime.GC()
			rss0 := rssBytes()
			stop := make(chan struct{})
			wg := setupFlood(t, addr, 9, 64, 64<<20, tc.heartbeat, stop)
			defer func() { close(stop); wg.Wait() }()
			var maxHeld int64
			sample := func() DriverStats {
				st := ds.Stats()
				maxHeld = max(maxHeld, st.ReceiveBufferBytes)
				return st
			}
			eventually(t, 10*time.Second, "the flood filling the limits", func() bool {
				st := sample()
				return st.PendingImages == cfg.MaxImagesPerEndpoint || st.RejectedSetups > 0
			})
			time.Sleep(500 * time.Millisecond) // fake images older than the setup hold

			cfgB := cfg
			cfgB.Seed = 22
			dpB := newTestDriver(t, cfgB)
			pubB, _ := dpB.AddPublication("aeron:udp?endpoint="+addr, 9)
			msgs := make([]string, 20)
			for i := range msgs {
				msgs[i] = fmt.Sprintf("b%d", i)
			}
			offerAll(t, pubB, msgs...)
			eventually(t, 20*time.Second, "b's messages under the flood", func() bool { sample(); return c.count() == 21 })
			for i := 0; i < 50; i++ { // keep flooding: b's image stays
				sample()
				time.Sleep(10 * time.Millisecond)
			}
			offerAll(t, pubB, "b-last")
			eventually(t, 10*time.Second, "b-last", func() bool { return c.count() == 22 })
			st := sample()
			rss1 := rssBytes()
			t.Logf("images %d pending %d rejected %d evicted %d held %d MiB (max %d MiB, budget %d MiB) RSS %d → %d MiB",
				st.Images, st.PendingImages, st.RejectedSetups, st.EvictedImages, st.ReceiveBufferBytes>>20, maxHeld>>20, tc.budget>>20, rss0>>20, rss1>>20)
			if st.EvictedImages == 0 {
				t.Fatal("nothing evicted: the restarted publisher did not need room?")
			}
			if maxHeld > tc.budget {
				t.Fatalf("held %d bytes of log memory, budget %d", maxHeld, tc.budget)
			}
			if !tc.heartbeat && maxHeld > 2*3*(4<<20) {
				t.Fatalf("SETUPs alone made the driver hold %d MiB", maxHeld>>20)
			}
			if imgs := c.sub.Images(); !slices.ContainsFunc(imgs, func(i Image) bool { return i.SessionID == pubB.SessionID() }) {
				t.Fatalf("restarted publisher has no image: %+v", imgs)
			}
			got, _, _, _ := c.snapshot()
			for i, m := range got[1:21] {
				if m != msgs[i] {
					t.Fatalf("message %d = %q, want %q", i, m, msgs[i])
				}
			}
			if rss0 > 0 && rss1-rss0 > 2*tc.budget {
				t.Fatalf("RSS grew by %d MiB under the flood (budget %d MiB)", (rss1-rss0)>>20, tc.budget>>20)
			}
		})
	}
}
