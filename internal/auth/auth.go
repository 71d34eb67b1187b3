package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Trailer layout, appended to every pod message after its codec body:
//
//	 0       4               12                              28
//	+-------+---------------+-------------------------------+
//	| salt  | counter       | tag                           |
//	+-------+---------------+-------------------------------+
//
// salt (4 bytes) and counter (8, big-endian) form the 12-byte AES-GCM
// nonce. salt is random per Sealer, so two processes that ever sealed as
// the same incarnation would still not repeat a nonce (with probability
// 1−2⁻³²); counter is the sender incarnation's message counter (1, 2, …,
// shared by all its recipients), the replay window's index. tag is
// AES-256-GCM's tag over no plaintext with the body as additional data
// (GMAC), under the key of the pair (sender id and epoch, recipient id and
// epoch) derived with HKDF-SHA256 from the cluster key: a message is good
// for one recipient incarnation only. The HKDF info string names the
// layout's version.
const (
	SaltLen    = 4
	CounterLen = 8
	NonceLen   = SaltLen + CounterLen
	TagLen     = 16
	TrailerLen = NonceLen + TagLen
)

// MaxIDLen bounds node ids (the same bound as codec.MaxIDLen and nodeid).
const MaxIDLen = 64

// MinKeyLen is the shortest cluster key accepted (memberlist's AES-128).
const MinKeyLen = 16

// Domain separation: the cluster key is also memberlist's AES key; the
// pod-message keys are derived from it under these labels.
const (
	hkdfSalt = "steadfast data plane"
	hkdfInfo = "steadfast pod message key v2 (AES-256-GCM, sender to recipient)\x00"
)

// Errors. Every rejection wraps exactly one of them.
var (
	ErrKey         = errors.New("auth: bad cluster key")
	ErrShort       = errors.New("auth: message shorter than its trailer")
	ErrBadTag      = errors.New("auth: tag does not verify")
	ErrReplay      = errors.New("auth: replayed or too old")
	ErrStaleEpoch  = errors.New("auth: sender epoch older than one already authenticated")
	ErrBadPeer     = errors.New("auth: bad peer id")
	ErrTooManyPeer = errors.New("auth: too many senders")
	ErrExhausted   = errors.New("auth: message counter exhausted")
)

// Peer is one incarnation of a node: its node id and epoch.
type Peer struct {
	ID    string
	Epoch uint64
}

func (p Peer) valid() bool { return p.ID != "" && len(p.ID) <= MaxIDLen }

// Keys holds the pseudorandom keys extracted from the cluster key(s): the
// first key seals, every key verifies (a key being rotated in or out).
// Immutable after NewKeys; safe for concurrent use.
type Keys struct {
	prks [][]byte
}

// NewKeys extracts the data-plane keys from cluster keys (the primary
// first). Each key must have at least MinKeyLen bytes.
func NewKeys(clusterKeys ...[]byte) (*Keys, error) {
	if len(clusterKeys) == 0 {
		return nil, fmt.Errorf("%w: none", ErrKey)
	}
	k := &Keys{}
	for i, ck := range clusterKeys {
		if len(ck) < MinKeyLen {
			return nil, fmt.Errorf("%w: key %d has %d bytes, want at least %d", ErrKey, i, len(ck), MinKeyLen)
		}
		prk, err := hkdf.Extract(sha256.New, ck, []byte(hkdfSalt))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKey, err)
		}
		k.prks = append(k.prks, prk)
	}
	return k, nil
}

// pairAEAD derives the AES-256-GCM of messages from → to under the i-th
// cluster key.
func (k *Keys) pairAEAD(i int, from, to Peer) cipher.AEAD {
	info := make([]byte, 0, len(hkdfInfo)+2*(8+1+MaxIDLen))
	info = append(info, hkdfInfo...)
	for _, p := range []Peer{from, to} {
		info = binary.BigEndian.AppendUint64(info, p.Epoch)
		info = append(info, byte(len(p.ID)))
		info = append(info, p.ID...)
	}
	key, err := hkdf.Expand(sha256.New, k.prks[i], string(info), 32)
	if err != nil { // only for lengths beyond 255 hash blocks
		panic("auth: hkdf expand: " + err.Error())
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		panic("auth: aes: " + err.Error()) // 32-byte key: cannot fail
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		panic("auth: gcm: " + err.Error())
	}
	return g
}

// maxRecipients bounds a Sealer's cache of per-recipient keys (it is
// emptied when full: recipients are the live members).
const maxRecipients = 1024

// Sealer appends trailers to the messages of one sender incarnation. Safe
// for concurrent use.
type Sealer struct {
	keys *Keys
	self Peer
	salt [SaltLen]byte

	mu      sync.Mutex // guards aeads, lastTo, lastG, counter and nonce
	aeads   map[Peer]cipher.AEAD
	lastTo  Peer
	lastG   cipher.AEAD
	counter uint64
	nonce   [NonceLen]byte
}

// NewSealer returns the sealer of self (this node's id and epoch), keyed by
// the primary cluster key.
func (k *Keys) NewSealer(self Peer) (*Sealer, error) {
	if !self.valid() {
		return nil, fmt.Errorf("%w: %q", ErrBadPeer, self.ID)
	}
	s := &Sealer{keys: k, self: self, aeads: map[Peer]cipher.AEAD{}}
	if _, err := rand.Read(s.salt[:]); err != nil {
		return nil, fmt.Errorf("auth: salt: %w", err)
	}
	copy(s.nonce[:], s.salt[:])
	return s, nil
}

// Self returns the incarnation this sealer signs for.
func (s *Sealer) Self() Peer { return s.self }

// Seal appends the trailer for recipient to to msg, whose whole content is
// the message body, and returns the extended slice. It does not allocate
// when msg has room for TrailerLen more bytes and to was sealed for before.
func (s *Sealer) Seal(msg []byte, to Peer) ([]byte, error) {
	if !to.valid() {
		return msg, fmt.Errorf("%w: %q", ErrBadPeer, to.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counter == ^uint64(0) {
		return msg, ErrExhausted
	}
	g := s.lastG
	if to != s.lastTo || g == nil { // most messages go to the last recipient: no map hash
		g = s.aeads[to]
	}
	if g == nil {
		if len(s.aeads) >= maxRecipients {
			clear(s.aeads)
		}
		g = s.keys.pairAEAD(0, s.self, to)
		s.aeads[to] = g
	}
	s.lastTo, s.lastG = to, g
	s.counter++
	binary.BigEndian.PutUint64(s.nonce[SaltLen:], s.counter)
	body := len(msg)
	msg = append(msg, s.nonce[:]...)
	// The tag goes after the nonce; the body is the additional data.
	return g.Seal(msg, s.nonce[:], nil, msg[:body]), nil
}

// Body returns msg without its trailer, or false when msg is too short to
// carry one.
func Body(msg []byte) ([]byte, bool) {
	if len(msg) < TrailerLen {
		return nil, false
	}
	return msg[:len(msg)-TrailerLen], true
}

// VerifierConfig bounds a Verifier.
type VerifierConfig struct {
	// MaxSenders bounds the senders remembered (one replay window each).
	// Only authenticated messages add a sender. Default 1024.
	MaxSenders int
}

// Window is the replay window in messages: a message whose counter is this
// far or further below the highest accepted from its sender is refused.
const Window = 256

// Verifier checks the trailers of messages sent to one receiver
// incarnation. A message that fails changes nothing. Safe for concurrent
// use.
type Verifier struct {
	keys *Keys
	self Peer
	max  int

	mu      sync.Mutex // guards senders and scratch
	senders map[string]*senderState
	scratch [0]byte // Open's destination: the plaintext is empty

	stats struct {
		ok, short, badTag, replay, stale, badPeer, full atomic.Uint64
	}
}

// senderState is the authenticated state of one sender: its newest
// authenticated epoch, the key that verified it, and its replay window.
type senderState struct {
	epoch uint64
	aead  cipher.AEAD
	win   window
}

// NewVerifier returns the verifier of messages sent to self.
func (k *Keys) NewVerifier(self Peer, cfg VerifierConfig) (*Verifier, error) {
	if !self.valid() {
		return nil, fmt.Errorf("%w: %q", ErrBadPeer, self.ID)
	}
	if cfg.MaxSenders == 0 {
		cfg.MaxSenders = 1024
	}
	if cfg.MaxSenders < 1 {
		return nil, fmt.Errorf("auth: MaxSenders %d: want >= 1", cfg.MaxSenders)
	}
	return &Verifier{keys: k, self: self, max: cfg.MaxSenders, senders: map[string]*senderState{}}, nil
}

// Self returns the incarnation this verifier accepts messages for.
func (v *Verifier) Self() Peer { return v.self }

// Verify checks msg (body and trailer) as a message from sender to this
// verifier's node: the tag must verify under the key of (sender, this
// node), the sender's epoch must not be older than one already
// authenticated, and its counter must not have been seen (within Window
// below the highest). Only then is the counter recorded. On failure it
// returns an error wrapping one of ErrShort, ErrBadPeer, ErrStaleEpoch,
// ErrBadTag, ErrReplay or ErrTooManyPeer, counts it, and changes nothing.
func (v *Verifier) Verify(msg []byte, from Peer) error {
	if len(msg) < TrailerLen {
		v.stats.short.Add(1)
		return ErrShort
	}
	if !from.valid() {
		v.stats.badPeer.Add(1)
		return ErrBadPeer
	}
	body := msg[:len(msg)-TrailerLen]
	nonce := msg[len(body) : len(body)+NonceLen]
	tag := msg[len(body)+NonceLen:]
	counter := binary.BigEndian.Uint64(nonce[SaltLen:])

	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.senders[from.ID]
	if st != nil && from.Epoch < st.epoch {
		v.stats.stale.Add(1)
		return ErrStaleEpoch
	}
	if st != nil && from.Epoch == st.epoch {
		if _, err := st.aead.Open(v.scratch[:0], nonce, tag, body); err != nil {
			v.stats.badTag.Add(1)
			return ErrBadTag
		}
		if !st.win.fresh(counter) {
			v.stats.replay.Add(1)
			return ErrReplay
		}
		st.win.mark(counter)
		v.stats.ok.Add(1)
		return nil
	}
	// A new sender, or a newer incarnation of one: derive its key.
	if st == nil && len(v.senders) >= v.max {
		// Checked before the (costly) derivation; an authentic newcomer
		// is refused too, and counted.
		v.stats.full.Add(1)
		return ErrTooManyPeer
	}
	for i := range v.keys.prks {
		g := v.keys.pairAEAD(i, from, v.self)
		if _, err := g.Open(v.scratch[:0], nonce, tag, body); err != nil {
			continue
		}
		ns := &senderState{epoch: from.Epoch, aead: g}
		if !ns.win.fresh(counter) {
			v.stats.replay.Add(1)
			return ErrReplay
		}
		ns.win.mark(counter)
		v.senders[from.ID] = ns
		v.stats.ok.Add(1)
		return nil
	}
	v.stats.badTag.Add(1)
	return ErrBadTag
}

// Stats counts a Verifier's outcomes.
type Stats struct {
	OK         uint64 // messages verified
	Short      uint64 // too short for a trailer
	BadTag     uint64 // tag did not verify (forged, corrupted, wrong key or wrong recipient)
	Replay     uint64 // counter seen before or too old
	StaleEpoch uint64 // sender epoch older than an authenticated one
	BadPeer    uint64 // empty or too long sender id
	Full       uint64 // a new sender refused: MaxSenders reached
}

// Rejected is the sum of every rejection.
func (s Stats) Rejected() uint64 {
	return s.Short + s.BadTag + s.Replay + s.StaleEpoch + s.BadPeer + s.Full
}

// Stats returns the counts so far.
func (v *Verifier) Stats() Stats {
	return Stats{
		OK: v.stats.ok.Load(), Short: v.stats.short.Load(), BadTag: v.stats.badTag.Load(),
		Replay: v.stats.replay.Load(), StaleEpoch: v.stats.stale.Load(), BadPeer: v.stats.badPeer.Load(),
		Full: v.stats.full.Load(),
	}
}

// window is an anti-replay sliding window (RFC 4303 §3.4.3 style): top is
// the highest counter accepted; bit i of bits says whether top-i was seen.
type window struct {
	top  uint64
	bits [Window / 64]uint64
}

// fresh reports whether counter may be accepted: not 0, above top, or
// within Window below it and not seen.
func (w *window) fresh(c uint64) bool {
	switch {
	case c == 0:
		return false
	case c > w.top:
		return true
	}
	d := w.top - c
	if d >= Window {
		return false
	}
	return w.bits[d/64]&(1<<(d%64)) == 0
}

// mark records counter (which fresh accepted).
func (w *window) mark(c uint64) {
	if c > w.top {
		w.shift(c - w.top)
		w.top = c
	}
	d := w.top - c
	w.bits[d/64] |= 1 << (d % 64)
}

// shift moves the window up by n: bit i becomes bit i+n.
func (w *window) shift(n uint64) {
	if n >= Window {
		w.bits = [Window / 64]uint64{}
		return
	}
	words, bits := int(n/64), n%64
	for i := len(w.bits) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = w.bits[j] << bits
			if bits > 0 && j-1 >= 0 {
				v |= w.bits[j-1] >> (64 - bits)
			}
		}
		w.bits[i] = v
	}
}
