package auth

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

var (
	key1 = []byte("0123456789abcdef0123456789abcdef")
	key2 = []byte("fedcba9876543210fedcba9876543210")
	pub  = Peer{ID: "publisher-1", Epoch: 5}
	sub  = Peer{ID: "subscriber-1", Epoch: 7}
)

func mustKeys(t testing.TB, ks ...[]byte) *Keys {
	t.Helper()
	k, err := NewKeys(ks...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSealer(t testing.TB, k *Keys, p Peer) *Sealer {
	t.Helper()
	s, err := k.NewSealer(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustVerifier(t testing.TB, k *Keys, p Peer) *Verifier {
	t.Helper()
	v, err := k.NewVerifier(p, VerifierConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func seal(t testing.TB, s *Sealer, body string, to Peer) []byte {
	t.Helper()
	m, err := s.Seal([]byte(body), to)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSealVerify(t *testing.T) {
	k := mustKeys(t, key1)
	s := mustSealer(t, k, pub)
	v := mustVerifier(t, k, sub)
	m := seal(t, s, "batch body", sub)
	if len(m) != len("batch body")+TrailerLen {
		t.Fatalf("sealed length %d", len(m))
	}
	if b, ok := Body(m); !ok || string(b) != "batch body" {
		t.Fatalf("Body = %q %v", b, ok)
	}
	if err := v.Verify(m, pub); err != nil {
		t.Fatal(err)
	}
	if st := v.Stats(); st.OK != 1 || st.Rejected() != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Every single-byte change, a wrong claimed sender, a wrong recipient or a
// wrong key fails with ErrBadTag, counts, and changes nothing: the genuine
// message still verifies afterwards.
func TestTamperRejected(t *testing.T) {
	k := mustKeys(t, key1)
	s := mustSealer(t, k, pub)
	m := seal(t, s, "an ack body", sub)
	v := mustVerifier(t, k, sub)
	n := 0
	for i := range m {
		bad := bytes.Clone(m)
		bad[i] ^= 0x01
		if err := v.Verify(bad, pub); !errors.Is(err, ErrBadTag) {
			t.Fatalf("byte %d flipped: %v, want ErrBadTag", i, err)
		}
		n++
	}
	for _, from := range []Peer{{"publisher-2", 5}, {"publisher-1", 6}, {"publisher-1", 1 << 40}} {
		if err := v.Verify(m, from); !errors.Is(err, ErrBadTag) {
			t.Fatalf("claimed sender %+v: %v", from, err)
		}
		n++
	}
	for _, to := range []Peer{{"subscriber-2", 7}, {"subscriber-1", 8}} {
		if err := mustVerifier(t, k, to).Verify(m, pub); !errors.Is(err, ErrBadTag) {
			t.Fatalf("recipient %+v: %v", to, err)
		}
	}
	if err := mustVerifier(t, mustKeys(t, key2), sub).Verify(m, pub); !errors.Is(err, ErrBadTag) {
		t.Fatalf("other key: %v", err)
	}
	if st := v.Stats(); st.BadTag != uint64(n) || st.OK != 0 {
		t.Fatalf("stats %+v, want %d bad tags", st, n)
	}
	if err := v.Verify(m, pub); err != nil {
		t.Fatalf("genuine message after rejections: %v", err)
	}
}

func TestReplayRejected(t *testing.T) {
	k := mustKeys(t, key1)
	s := mustSealer(t, k, pub)
	v := mustVerifier(t, k, sub)
	var msgs [][]byte
	for range Window + 10 {
		msgs = append(msgs, seal(t, s, "hello", sub))
	}
	// Out of order within the window is fine (a sender's counter is shared
	// by its recipients; a reconnect may reorder).
	if err := v.Verify(msgs[20], pub); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(msgs[10], pub); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{20, 10} {
		if err := v.Verify(msgs[i], pub); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay of %d: %v", i, err)
		}
	}
	if err := v.Verify(msgs[len(msgs)-1], pub); err != nil {
		t.Fatal(err)
	}
	// Now msgs[0..9] are more than Window below the highest: refused.
	if err := v.Verify(msgs[0], pub); !errors.Is(err, ErrReplay) {
		t.Fatalf("older than the window: %v", err)
	}
	if err := v.Verify(msgs[len(msgs)-Window+1], pub); err != nil {
		t.Fatalf("oldest inside the window: %v", err)
	}
	if st := v.Stats(); st.Replay != 3 || st.OK != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// A newer authenticated incarnation replaces the older one; the older one's
// messages are then refused, even genuine ones.
func TestEpochs(t *testing.T) {
	k := mustKeys(t, key1)
	v := mustVerifier(t, k, sub)
	old := mustSealer(t, k, pub)
	oldMsg := seal(t, old, "x", sub)
	oldMsg2 := seal(t, old, "y", sub)
	if err := v.Verify(oldMsg, pub); err != nil {
		t.Fatal(err)
	}
	// A forged newer epoch changes nothing.
	forged := append([]byte("x"), make([]byte, TrailerLen)...)
	forged[1+NonceLen-1] = 9 // counter 9
	if err := v.Verify(forged, Peer{pub.ID, 1 << 62}); !errors.Is(err, ErrBadTag) {
		t.Fatal(err)
	}
	if err := v.Verify(oldMsg2, pub); err != nil {
		t.Fatalf("old epoch after a forged newer one: %v", err)
	}
	newer := Peer{pub.ID, pub.Epoch + 1}
	nw := mustSealer(t, k, newer)
	if err := v.Verify(seal(t, nw, "z", sub), newer); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(seal(t, old, "w", sub), pub); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("old incarnation after a newer one: %v", err)
	}
	// The new incarnation's counter restarts at 1: its window is its own.
	if err := v.Verify(seal(t, nw, "z2", sub), newer); err != nil {
		t.Fatal(err)
	}
}

func TestRotation(t *testing.T) {
	old, both, next := mustKeys(t, key1), mustKeys(t, key2, key1), mustKeys(t, key2)
	v := mustVerifier(t, both, sub)
	if err := v.Verify(seal(t, mustSealer(t, old, pub), "a", sub), pub); err != nil {
		t.Fatalf("old key against (new, old): %v", err)
	}
	p2 := Peer{"publisher-2", 1}
	if err := v.Verify(seal(t, mustSealer(t, next, p2), "b", sub), p2); err != nil {
		t.Fatalf("new key against (new, old): %v", err)
	}
	// (new, old) seals with new: an old-only receiver refuses, a new-only accepts.
	m := seal(t, mustSealer(t, both, pub), "c", sub)
	if err := mustVerifier(t, old, sub).Verify(m, pub); !errors.Is(err, ErrBadTag) {
		t.Fatal(err)
	}
	if err := mustVerifier(t, next, sub).Verify(m, pub); err != nil {
		t.Fatal(err)
	}
}

func TestMaxSenders(t *testing.T) {
	k := mustKeys(t, key1)
	v, err := k.NewVerifier(sub, VerifierConfig{MaxSenders: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"a", "b", "c"} {
		p := Peer{id, 1}
		err := v.Verify(seal(t, mustSealer(t, k, p), "m", sub), p)
		if want := i < 2; (err == nil) != want {
			t.Fatalf("sender %s: %v", id, err)
		}
		if i == 2 && !errors.Is(err, ErrTooManyPeer) {
			t.Fatal(err)
		}
	}
	// Known senders still pass, newer epochs of known senders too.
	p := Peer{"a", 2}
	if err := v.Verify(seal(t, mustSealer(t, k, p), "m", sub), p); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := NewKeys(); !errors.Is(err, ErrKey) {
		t.Fatal(err)
	}
	if _, err := NewKeys([]byte("short")); !errors.Is(err, ErrKey) {
		t.Fatal(err)
	}
	k := mustKeys(t, key1)
	long := string(bytes.Repeat([]byte("x"), MaxIDLen+1))
	if _, err := k.NewSealer(Peer{"", 1}); !errors.Is(err, ErrBadPeer) {
		t.Fatal(err)
	}
	if _, err := k.NewVerifier(Peer{long, 1}, VerifierConfig{}); !errors.Is(err, ErrBadPeer) {
		t.Fatal(err)
	}
	s := mustSealer(t, k, pub)
	if _, err := s.Seal(nil, Peer{long, 1}); !errors.Is(err, ErrBadPeer) {
		t.Fatal(err)
	}
	v := mustVerifier(t, k, sub)
	if err := v.Verify(make([]byte, TrailerLen-1), pub); !errors.Is(err, ErrShort) {
		t.Fatal(err)
	}
	if err := v.Verify(make([]byte, TrailerLen), Peer{long, 1}); !errors.Is(err, ErrBadPeer) {
		t.Fatal(err)
	}
	if _, ok := Body(make([]byte, 3)); ok {
		t.Fatal("Body of a short message")
	}
	s.counter = ^uint64(0)
	if _, err := s.Seal(nil, sub); !errors.Is(err, ErrExhausted) {
		t.Fatal(err)
	}
}

// The window against a naive model: a set of every counter accepted and
// the highest one.
func TestWindowModel(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		r := rand.New(rand.NewPCG(seed, 0))
		var w window
		seen := map[uint64]bool{}
		var top uint64
		for range 5000 {
			var c uint64
			switch r.IntN(4) {
			case 0:
				c = top + 1 + uint64(r.IntN(3*Window))
			default:
				c = top - uint64(r.IntN(Window+10))
				if c > top { // wrapped below 0
					c = uint64(r.IntN(3))
				}
			}
			want := c != 0 && !seen[c] && (c > top || top-c < Window)
			if got := w.fresh(c); got != want {
				t.Fatalf("seed %d: fresh(%d) = %v, want %v (top %d)", seed, c, got, want, top)
			}
			if want {
				w.mark(c)
				seen[c] = true
				top = max(top, c)
			}
		}
	}
}

// FuzzVerify: no input panics, and nothing forged verifies.
func FuzzVerify(f *testing.F) {
	k, _ := NewKeys(key1)
	s, _ := k.NewSealer(pub)
	good, _ := s.Seal([]byte("body"), sub)
	f.Add(good, pub.ID, pub.Epoch)
	f.Add([]byte{}, "", uint64(0))
	f.Add(make([]byte, TrailerLen), "x", uint64(1))
	f.Fuzz(func(t *testing.T, msg []byte, id string, epoch uint64) {
		v, _ := k.NewVerifier(sub, VerifierConfig{})
		err := v.Verify(msg, Peer{id, epoch})
		// Only a message sealed with the key verifies: the seed (sealed in
		// whichever process added it; the salt differs between processes).
		if b, _ := Body(msg); err == nil && !(string(b) == "body" && id == pub.ID && epoch == pub.Epoch) {
			t.Fatalf("a forged message verified: %x from %q/%d", msg, id, epoch)
		}
		if b, ok := Body(msg); ok && len(b) != len(msg)-TrailerLen {
			t.Fatal("Body length")
		}
	})
}
