package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// framePair is a connected UDP publication and subscription on one driver.
func framePair(t *testing.T, channelParams string) (*Publication, *Subscription) {
	t.Helper()
	d := newTestDriver(t, testConfig())
	sub, err := d.AddSubscription("aeron:udp?endpoint=127.0.0.1:0", 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	pub, err := d.AddPublication("aeron:udp?endpoint="+sub.LocalAddr()+channelParams, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	eventually(t, 10*time.Second, "connected", pub.IsConnected)
	return pub, sub
}

// clientFrames lays out msgs as a client's log would from term offset
// off: one DATA frame each (payloads up to maxPayload), header fields
// other than length, flags and type left as garbage (AppendFrames
// rewrites them).
func clientFrames(off int32, maxPayload int, msgs ...string) []byte {
	var b []byte
	for _, m := range msgs {
		rest := []byte(m)
		flags := flagBegin
		for {
			chunk := min(len(rest), maxPayload)
			if chunk == len(rest) {
				flags |= flagEnd
			}
			f := make([]byte, align32(hdrLen+chunk))
			putDataHeader(f, int32(hdrLen+chunk), flags, typeData, -1, -2, -3, -4, 99)
			copy(f[hdrLen:], rest[:chunk])
			b = append(b, f...)
			off += int32(len(f))
			rest = rest[chunk:]
			flags = 0
			if len(rest) == 0 {
				break
			}
		}
	}
	return b
}

// receive polls sub until it delivered n messages.
func receive(t *testing.T, sub *Subscription, n int) []string {
	t.Helper()
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(got) < n {
		if sub.Poll(func(m []byte, _ Header) { got = append(got, string(m)) }, 64) == 0 {
			if err := sub.Wait(ctx); err != nil {
				t.Fatalf("got %d of %d messages: %v", len(got), n, err)
			}
		}
	}
	return got
}

func TestAppendFramesReachesSubscriber(t *testing.T) {
	pub, sub := framePair(t, "|mtu=1408")
	big := string(bytes.Repeat([]byte("x"), 3000)) // fragmented at 1376
	msgs := []string{"one", "", big, "four"}
	frames := clientFrames(0, pub.MaxPayloadLength(), msgs...)
	n, err := pub.AppendFrames(pub.Position(), frames)
	if err != nil || n != len(frames) {
		t.Fatalf("AppendFrames = %d, %v; want %d", n, err, len(frames))
	}
	if pub.Position() != int64(len(frames)) {
		t.Fatalf("position %d, want %d", pub.Position(), len(frames))
	}
	if st := pub.Stats(); st.MessagesOffered != uint64(len(msgs)) {
		t.Fatalf("offered %d, want %d", st.MessagesOffered, len(msgs))
	}
	got := receive(t, sub, len(msgs))
	if fmt.Sprint(got) != fmt.Sprint(msgs) {
		t.Fatalf("got %q", got)
	}
}

func TestAppendFramesRefusesMalformed(t *testing.T) {
	pub, _ := framePair(t, "|mtu=1408")
	good := clientFrames(0, pub.MaxPayloadLength(), "ok")
	for name, mutate := range map[string]func(f []byte){
		"short length":   func(f []byte) { putI32(f, 0, hdrLen-1) },
		"zero length":    func(f []byte) { putI32(f, 0, 0) },
		"past the run":   func(f []byte) { putI32(f, 0, int32(len(f)+1)) },
		"unknown type":   func(f []byte) { f[6] = 9 },
		"over the MTU":   func(f []byte) { putI32(f, 0, 1408+32) },
		"negative (wip)": func(f []byte) { putI32(f, 0, -64) },
	} {
		t.Run(name, func(t *testing.T) {
			bad := clientFrames(0, pub.MaxPayloadLength(), "bad")
			if name == "over the MTU" {
				bad = append(bad, make([]byte, 1408)...)
			}
			mutate(bad)
			pos := pub.Position()
			if n, err := pub.AppendFrames(pos, bad); n != 0 || !errors.Is(err, ErrBadFrame) {
				t.Fatalf("malformed first frame: %d, %v", n, err)
			}
			// Good frames before a bad one go; the bad one is reported next.
			run := append(append([]byte(nil), good...), bad...)
			n, err := pub.AppendFrames(pos, run)
			if n != len(good) || err != nil {
				t.Fatalf("good then bad: %d, %v; want %d, nil", n, err, len(good))
			}
			if n, err := pub.AppendFrames(pos+int64(n), run[n:]); n != 0 || !errors.Is(err, ErrBadFrame) {
				t.Fatalf("then: %d, %v", n, err)
			}
		})
	}
	if n, err := pub.AppendFrames(pub.Position()+32, good); n != 0 || !errors.Is(err, ErrBadFrame) {
		t.Fatalf("wrong position: %d, %v", n, err)
	}
	if n, err := pub.AppendFrames(pub.Position(), nil); n != 0 || !errors.Is(err, ErrBadFrame) {
		t.Fatalf("no frames: %d, %v", n, err)
	}
}

func TestAppendFramesFlowControl(t *testing.T) {
	d := newTestDriver(t, testConfig())
	pub, err := d.AddPublication("aeron:udp?endpoint=127.0.0.1:9|term-length=64k", 7)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if n, err := pub.AppendFrames(0, clientFrames(0, 1000, "x")); n != 0 || !errors.Is(err, ErrNotConnected) {
		t.Fatalf("no subscriber: %d, %v", n, err)
	}

	pub, sub := framePair(t, "|term-length=64k")
	// More than the window (32 KiB): only what fits under the limit goes,
	// on a frame boundary; the rest follows as the subscriber reads.
	msgs := make([]string, 1000) // 1000 × 64 bytes
	for i := range msgs {
		msgs[i] = fmt.Sprintf("message %04d", i)
	}
	frames := clientFrames(0, pub.MaxPayloadLength(), msgs...)
	n, err := pub.AppendFrames(0, frames)
	if err != nil || n == 0 || n >= len(frames) || n%64 != 0 {
		t.Fatalf("first run: %d, %v (of %d)", n, err, len(frames))
	}
	var got []string
	pos := int64(n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(got) < len(msgs) {
		if pos < int64(len(frames)) {
			k, err := pub.AppendFrames(pos, frames[pos:])
			if err != nil && !errors.Is(err, ErrBackPressured) {
				t.Fatal(err)
			}
			pos += int64(k)
		}
		if sub.Poll(func(m []byte, _ Header) { got = append(got, string(m)) }, 64) == 0 {
			wctx, c := context.WithTimeout(ctx, 5*time.Millisecond)
			_ = sub.Wait(wctx)
			c()
			if ctx.Err() != nil {
				t.Fatalf("got %d of %d", len(got), len(msgs))
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(msgs) {
		t.Fatal("messages out of order or changed")
	}
}

func TestPollFrames(t *testing.T) {
	pub, sub := framePair(t, "|term-length=64k")
	msgs := []string{"alpha", "beta", "gamma", "delta"}
	for _, m := range msgs {
		for {
			if _, err := pub.Offer([]byte(m)); err == nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	var blocks [][]byte
	var img Image
	deadline := time.Now().Add(10 * time.Second)
	taken := 0
	for taken < 4*64 && time.Now().Before(deadline) {
		taken += sub.PollFrames(func(b FrameBlock) int {
			if b.InitialTermID != pub.InitialTermID() || int(b.TermLength) != pub.TermLength() || b.SessionID != pub.SessionID() {
				t.Errorf("block of session %d term %d/%d, want %d %d/%d", b.SessionID, b.InitialTermID, b.TermLength,
					pub.SessionID(), pub.InitialTermID(), pub.TermLength())
			}
			if b.Position != int64(taken) {
				t.Errorf("block at %d, want %d", b.Position, taken)
			}
			// Take one frame at a time.
			blocks = append(blocks, append([]byte(nil), b.Frames[:64]...))
			return 64
		})
		time.Sleep(time.Millisecond)
	}
	if len(blocks) != len(msgs) {
		t.Fatalf("%d blocks", len(blocks))
	}
	for i, f := range blocks {
		if getFrameLength(f) != int32(hdrLen+len(msgs[i])) || string(f[hdrLen:hdrLen+len(msgs[i])]) != msgs[i] ||
			getI32(f, 8) != int32(64*i) || getI32(f, 12) != pub.SessionID() {
			t.Fatalf("frame %d: % x", i, f[:hdrLen])
		}
	}
	imgs := sub.Images()
	if len(imgs) != 1 {
		t.Fatalf("%d images", len(imgs))
	}
	img = imgs[0]
	if img.Position != 4*64 || img.InitialTermID != pub.InitialTermID() || int(img.TermLength) != pub.TermLength() {
		t.Fatalf("image %+v", img)
	}
}
