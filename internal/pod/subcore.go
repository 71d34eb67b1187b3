package pod

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/steadfast-pods/steadfast/nodeid"
)

// SubCore is the subscriber's delivery logic as a pure state machine: which
// publisher messages are taken in (dedup, epochs, membership), where each
// publisher's stream stands (the watermark handed to the pipeline, its end),
// and when to send hellos and acks. It touches no socket, clock or
// goroutine: the receive actor feeds it events with the time and carries out
// what it returns, and the simulation test drives the same code with a
// virtual clock and a lossy network.
//
// Every inbound event is checked before it changes anything: the sender must
// be a live publisher at exactly that epoch (an older epoch is a zombie, a
// newer one is not yet confirmed by membership), and the sequence numbers
// must be plausible. Rejected events change no state and are counted by
// reason (Rejects). Message authentication happens before the core, in the
// shell's Verifier (one place).
//
// Two-phase intake: OnBatch and OnReleased only say what is new; the caller
// hands it to the pipeline and then calls Advance. A value is never counted
// as taken in before it was handed on, so nothing is lost when the caller
// fails in between (issue 9, defect 1).
//
// It is not safe for concurrent use: the receive actor owns it.
type SubCore struct {
	cfg  SubCoreConfig
	pubs map[string]*subPub
	// members: the live publishers and their epochs, as membership last said.
	members map[string]uint64
	durVer  uint64 // version of the durable watermarks (Durable calls)
	rejects map[string]uint64
	// beatDrops: beat stamps not used for the delivery latency, by reason.
	beatDrops map[string]uint64
}

// SubCoreConfig tunes a SubCore. Zero durations take the defaults.
type SubCoreConfig struct {
	// HelloRetry: the shortest time between hellos to one publisher when
	// one is wanted (a new incarnation, a gap). Default 100 ms.
	HelloRetry time.Duration
	// QuietHello: a publisher whose unfinished stream sent nothing this long
	// gets a hello (it may not know where this subscriber stands). Default 2 s.
	QuietHello time.Duration
	// AckRepeat: an unchanged ack is repeated this often (acks travel on a
	// lossy stream). Default 1 s.
	AckRepeat time.Duration
	// MaxValues bounds the values one message may carry (plausibility).
	// Default maxChunk.
	MaxValues int
	// MaxClockSkew: a batch's beat time may be this far ahead of the
	// subscriber's clock (the publisher's clock runs ahead) and still be
	// used; further ahead it is dropped. Default 1 min.
	MaxClockSkew time.Duration
	// MaxBeatAge: a beat time older than this is dropped (an absurd stamp
	// would swamp the latency histogram's sum). Default 24 h.
	MaxBeatAge time.Duration
	// ReorderWindow: the most values per publisher held above a gap (see
	// Hold) until the gap is filled. Default 4 × MaxValues. Held values
	// are not taken in: they are not in the persistent state and not
	// acknowledged, so a crash loses only a copy the publisher still has.
	ReorderWindow int
}

func (c *SubCoreConfig) fill() {
	if c.HelloRetry <= 0 {
		c.HelloRetry = 100 * time.Millisecond
	}
	if c.QuietHello <= 0 {
		c.QuietHello = 2 * time.Second
	}
	if c.AckRepeat <= 0 {
		c.AckRepeat = time.Second
	}
	if c.MaxValues <= 0 {
		c.MaxValues = maxChunk
	}
	if c.MaxClockSkew <= 0 {
		c.MaxClockSkew = time.Minute
	}
	if c.MaxBeatAge <= 0 {
		c.MaxBeatAge = 24 * time.Hour
	}
	if c.ReorderWindow <= 0 {
		c.ReorderWindow = 4 * c.MaxValues
	}
}

// SubPubState is the part of a publisher's stream a SubCore restores from the
// subscriber's durable state (the logger's tally: one consistent cut).
type SubPubState struct {
	Epoch uint64 `msgpack:"epoch"` // highest publisher epoch taken in
	Taken uint64 `msgpack:"taken"` // every seq <= Taken was handed to the pipeline
	End   uint64 `msgpack:"end"`   // the stream's last seq (0: not known)
}

// SubCoreState is a SubCore's persistent state.
type SubCoreState struct {
	Pubs map[string]SubPubState `msgpack:"pubs"`
}

// ErrBadState wraps every error of a decoded state that fails validation.
var ErrBadState = errors.New("pod: invalid state")

// Validate checks a decoded SubCoreState.
func (s SubCoreState) Validate() error {
	for id, p := range s.Pubs {
		if err := nodeid.Validate(id); err != nil {
			return fmt.Errorf("%w: publisher %q: %v", ErrBadState, id, err)
		}
		if p.End > 0 && p.Taken > p.End {
			return fmt.Errorf("%w: publisher %q taken %d beyond its end %d", ErrBadState, id, p.Taken, p.End)
		}
	}
	return nil
}

type subPub struct {
	SubPubState
	wantHello bool
	lastHello time.Time
	lastData  time.Time
	// Reordering: seen is the highest seq of a batch that arrived above a
	// gap (since gapAt), held the batches kept from those (sorted by First,
	// at most ReorderWindow values, heldN of them).
	seen  uint64
	gapAt time.Time
	held  []HeldBatch
	heldN int
	// Durable watermark (what acks report) and what was last acked.
	committed      uint64
	committedEpoch uint64
	ackedVer       uint64
	lastAck        time.Time
}

// NewSubCore returns a core restored from st (nil: empty). A state that
// fails Validate is refused.
func NewSubCore(cfg SubCoreConfig, st *SubCoreState) (*SubCore, error) {
	cfg.fill()
	c := &SubCore{cfg: cfg, pubs: map[string]*subPub{}, members: map[string]uint64{}, rejects: map[string]uint64{}, beatDrops: map[string]uint64{}}
	if st != nil {
		if err := st.Validate(); err != nil {
			return nil, err
		}
		for id, p := range st.Pubs {
			// Not yet committed: acks start with the first durable
			// snapshot of this incarnation.
			c.pubs[id] = &subPub{SubPubState: p}
		}
	}
	return c, nil
}

// State returns a copy of the persistent state.
func (c *SubCore) State() SubCoreState {
	s := SubCoreState{Pubs: make(map[string]SubPubState, len(c.pubs))}
	for id, p := range c.pubs {
		s.Pubs[id] = p.SubPubState
	}
	return s
}

// Reject reasons (the keys of Rejects).
const (
	RejectUnknownSender = "unknown-sender" // not a live publisher
	RejectStaleEpoch    = "stale-epoch"    // below the member's epoch: a zombie
	RejectFutureEpoch   = "future-epoch"   // above it: not (yet) confirmed by membership
	RejectImplausible   = "implausible"    // sequence numbers that cannot be right
)

// Rejects returns the rejected events by reason.
func (c *SubCore) Rejects() map[string]uint64 { return maps.Clone(c.rejects) }

func (c *SubCore) reject(why string) { c.rejects[why]++ }

// Peer is a live member as membership reports it.
type Peer struct {
	ID       string
	Epoch    uint64
	Endpoint string
}

// SetMembers replaces the live publishers. A publisher seen at a new epoch
// (a replacement) must learn where this subscriber stands: a hello is due.
func (c *SubCore) SetMembers(now time.Time, pubs []Peer) {
	next := make(map[string]uint64, len(pubs))
	for _, m := range pubs {
		next[m.ID] = m.Epoch
		if old, ok := c.members[m.ID]; ok && old == m.Epoch {
			continue
		}
		p := c.pub(m.ID)
		p.wantHello, p.lastHello, p.lastData, p.ackedVer = true, time.Time{}, now, 0
		// A new incarnation resends what it holds: nothing held from the
		// previous one is kept, and its gap is no longer known.
		p.held, p.heldN, p.seen = nil, 0, 0
	}
	c.members = next
}

// check admits an event from pub at epoch: a live member at exactly that
// epoch. It returns the publisher's record, or nil (counted).
func (c *SubCore) check(pub string, epoch uint64) *subPub {
	me, ok := c.members[pub]
	switch {
	case !ok:
		c.reject(RejectUnknownSender)
		return nil
	case epoch < me:
		c.reject(RejectStaleEpoch)
		return nil
	case epoch > me:
		c.reject(RejectFutureEpoch)
		return nil
	}
	p := c.pub(pub)
	if epoch < p.Epoch {
		// Membership went back to an older incarnation than one already
		// taken in from: still a zombie.
		c.reject(RejectStaleEpoch)
		return nil
	}
	return p
}

func (c *SubCore) pub(id string) *subPub {
	p := c.pubs[id]
	if p == nil {
		p = &subPub{}
		c.pubs[id] = p
	}
	return p
}

// OnBatch classifies a batch of n values first..first+n-1 from pub at epoch.
// On Accept the values from index skip on are new and follow the
// watermark: hand them on, then call Advance(pub, epoch, last). Nothing
// changes on any other verdict except the hello wanted after a gap.
func (c *SubCore) OnBatch(now time.Time, pub string, epoch, first uint64, n int) (v Verdict, skip int) {
	if n <= 0 || n > c.cfg.MaxValues || first == 0 || first+uint64(n)-1 < first {
		c.reject(RejectImplausible)
		return Rejected, 0
	}
	p := c.check(pub, epoch)
	if p == nil {
		return Rejected, 0
	}
	last := first + uint64(n) - 1
	if p.End > 0 && last > p.End {
		c.reject(RejectImplausible)
		return Rejected, 0
	}
	p.lastData = now
	switch {
	case last <= p.Taken:
		return Duplicate, 0
	case first > p.Taken+1:
		// Something in between is missing, or only reordered: a hello
		// (replay after Taken) goes once the gap has lasted HelloRetry,
		// and again every HelloRetry while it lasts (a lost hello costs
		// one retry, not QuietHello).
		if p.seen <= p.Taken {
			p.gapAt = now
		}
		p.seen = max(p.seen, last)
		return Gap, 0
	}
	return Accept, int(p.Taken + 1 - first)
}

// Reasons a batch's beat time is not used (the keys of BeatDrops).
const (
	BeatMissing = "missing" // unstamped: a publisher of an older version, or a value restored from a snapshot without beat times
	BeatFuture  = "future"  // more than MaxClockSkew ahead of now
	BeatTooOld  = "too-old" // more than MaxBeatAge before now
)

// CheckBeat judges the beat time of an accepted batch (unix ns, on the
// publisher's clock) at now, on this subscriber's clock: it returns the
// beat time to measure the delivery latency from, or the zero time when
// there is none or it is implausible (counted by reason in BeatDrops).
// A beat up to MaxClockSkew ahead of now is kept: hosts' clocks differ,
// and the latency is then clamped to 0 (see deliveryLatency). The values
// are delivered whatever the verdict.
func (c *SubCore) CheckBeat(now time.Time, beat int64) time.Time {
	if beat <= 0 {
		c.beatDrops[BeatMissing]++
		return time.Time{}
	}
	bt := time.Unix(0, beat)
	switch {
	case bt.Sub(now) > c.cfg.MaxClockSkew:
		c.beatDrops[BeatFuture]++
		return time.Time{}
	case now.Sub(bt) > c.cfg.MaxBeatAge:
		c.beatDrops[BeatTooOld]++
		return time.Time{}
	}
	return bt
}

// BeatDrops returns the beat times not used, by reason.
func (c *SubCore) BeatDrops() map[string]uint64 { return maps.Clone(c.beatDrops) }

// deliveryLatency is the delivery latency of a value beaten at beat and
// applied at now: now - beat, clamped to 0 when the publisher's clock is
// ahead (clamped reports it). ok is false when beat is the zero time.
func deliveryLatency(now, beat time.Time) (d time.Duration, clamped, ok bool) {
	if beat.IsZero() {
		return 0, false, false
	}
	d = now.Sub(beat)
	if d < 0 {
		return 0, true, true
	}
	return d, false, true
}

// Advance records that pub's values up to seq, from epoch, were handed on.
// Held batches it covers are dropped.
func (c *SubCore) Advance(pub string, epoch, seq uint64) {
	p := c.pub(pub)
	p.Taken = max(p.Taken, seq)
	p.Epoch = max(p.Epoch, epoch)
	p.prune()
}

// HeldBatch is a batch kept above a gap (see Hold).
type HeldBatch struct {
	Epoch  uint64
	First  uint64
	Values []uint64
	Beat   int64 // as the batch carried it (unix ns)
}

// Last is the seq of the batch's last value.
func (h HeldBatch) Last() uint64 { return h.First + uint64(len(h.Values)) - 1 }

// prune drops the held batches at or below the watermark.
func (p *subPub) prune() {
	i := 0
	for _, h := range p.held {
		if h.Last() > p.Taken {
			p.held[i] = h
			i++
		} else {
			p.heldN -= len(h.Values)
		}
	}
	clear(p.held[i:])
	p.held = p.held[:i]
}

// Hold keeps a copy of a batch OnBatch just called a Gap (values first..,
// from pub at epoch, beat as it carried) until the gap below it is filled,
// so a reordered network costs no replay of what already arrived. It
// reports whether the batch is held: not when the reorder window is full,
// when pub is not a live member at exactly epoch, or when the batch does
// not lie above the watermark (the same checks as OnBatch: Hold admits
// nothing OnBatch would not). A held batch is not taken in: Held hands it
// out once it follows the watermark.
func (c *SubCore) Hold(pub string, epoch, first uint64, values []uint64, beat int64) bool {
	n := len(values)
	p := c.pubs[pub]
	if p == nil || n <= 0 || n > c.cfg.MaxValues || first <= p.Taken+1 || first+uint64(n)-1 < first ||
		(p.End > 0 && first+uint64(n)-1 > p.End) {
		return false
	}
	if me, ok := c.members[pub]; !ok || me != epoch || epoch < p.Epoch {
		return false
	}
	i, found := slices.BinarySearchFunc(p.held, first, func(h HeldBatch, f uint64) int { return cmp.Compare(h.First, f) })
	if found && p.held[i].Last() >= first+uint64(n)-1 {
		return true // already held
	}
	if p.heldN+n > c.cfg.ReorderWindow {
		return false
	}
	h := HeldBatch{Epoch: epoch, First: first, Values: slices.Clone(values), Beat: beat}
	if found {
		p.heldN -= len(p.held[i].Values)
		p.held[i] = h
	} else {
		p.held = slices.Insert(p.held, i, h)
	}
	p.heldN += n
	return true
}

// Held returns pub's held batch that now follows the watermark, if any,
// and skip: its values from index skip on are new. Hand them on and call
// Advance(pub, h.Epoch, h.Last()) (which drops it); then call Held again.
// If the hand-off fails, the batch stays held.
func (c *SubCore) Held(pub string) (h HeldBatch, skip int, ok bool) {
	p := c.pubs[pub]
	if p == nil {
		return HeldBatch{}, 0, false
	}
	p.prune()
	if len(p.held) == 0 || p.held[0].First > p.Taken+1 {
		return HeldBatch{}, 0, false
	}
	h = p.held[0]
	return h, int(p.Taken + 1 - h.First), true
}

// HeldValues returns how many values are held above a gap for pub.
func (c *SubCore) HeldValues(pub string) int {
	if p := c.pubs[pub]; p != nil {
		return p.heldN
	}
	return 0
}

// OnEnd handles pub's end of stream at seq. Accept: everything up to seq was
// taken in; hand the end on (the core records it). Gap: values are missing,
// a hello is due.
func (c *SubCore) OnEnd(now time.Time, pub string, epoch, seq uint64) Verdict {
	if seq == 0 {
		c.reject(RejectImplausible)
		return Rejected
	}
	p := c.check(pub, epoch)
	if p == nil {
		return Rejected
	}
	if p.End > 0 && seq != p.End {
		c.reject(RejectImplausible)
		return Rejected
	}
	p.lastData = now
	if p.Taken < seq {
		p.wantHello = true
		return Gap
	}
	if p.End == seq {
		return Duplicate
	}
	p.End = seq
	p.Epoch = max(p.Epoch, epoch)
	return Accept
}

// OnReleased handles pub saying it no longer holds its values up to seq. If
// this subscriber never took some of them in, they are lost: ok is true and
// from..seq are the lost values; hand a skip on, then Advance(pub, epoch,
// seq).
func (c *SubCore) OnReleased(now time.Time, pub string, epoch, seq uint64) (from uint64, ok bool) {
	p := c.check(pub, epoch)
	if p == nil {
		return 0, false
	}
	if p.End > 0 && seq > p.End {
		c.reject(RejectImplausible)
		return 0, false
	}
	p.lastData = now
	if seq <= p.Taken {
		return 0, false
	}
	return p.Taken + 1, true
}

// Durable installs the watermarks of a durable snapshot (per publisher: its
// epoch and last seq): acks report them from now on.
func (c *SubCore) Durable(committed map[string]SubPubState) {
	c.durVer++
	for id, d := range committed {
		p := c.pubs[id]
		if p == nil {
			continue
		}
		p.committed, p.committedEpoch = d.Taken, d.Epoch
	}
}

// Ended reports whether pub's stream ended and everything up to its end was
// taken in.
func (c *SubCore) Ended(pub string) bool {
	p := c.pubs[pub]
	return p != nil && p.End > 0 && p.Taken >= p.End
}

// Finished reports whether the subscriber is done: at least minPublishers
// streams ended, and every publisher that is a live member or that this
// subscriber took values from has ended. A sender that was never a live
// member creates no record, so it cannot hold completion back (issue 9,
// defect 2).
func (c *SubCore) Finished(minPublishers int) bool {
	ended := 0
	for id, p := range c.pubs {
		_, live := c.members[id]
		if p.Taken == 0 && p.End == 0 && !live {
			continue // a record with nothing in it (a departed publisher that sent nothing)
		}
		if !c.Ended(id) {
			return false
		}
		ended++
	}
	for id := range c.members {
		if !c.Ended(id) {
			return false
		}
	}
	return ended >= minPublishers
}

// ControlKind says what a SubEffect sends.
type ControlKind uint8

const (
	SendHello ControlKind = iota + 1 // ask to replay after Seq
	SendAck                          // Seq is durable here
)

// SubEffect is a control message the shell sends to a publisher.
type SubEffect struct {
	Kind  ControlKind
	To    string
	Epoch uint64 // the publisher epoch the ack is for
	Seq   uint64
	ver   uint64
}

// Tick returns the hellos and acks due at now, appended to out, sorted by
// publisher. The shell reports each one it sent with Sent (an unsent one is
// due again at the next Tick).
func (c *SubCore) Tick(now time.Time, out []SubEffect) []SubEffect {
	ids := slices.Sorted(maps.Keys(c.members))
	for _, id := range ids {
		p := c.pub(id)
		quiet := !c.Ended(id) && now.Sub(p.lastData) > c.cfg.QuietHello && now.Sub(p.lastHello) > c.cfg.QuietHello
		gap := p.seen > p.Taken && now.Sub(p.gapAt) >= c.cfg.HelloRetry
		if ((p.wantHello || gap) && now.Sub(p.lastHello) >= c.cfg.HelloRetry) || quiet {
			out = append(out, SubEffect{Kind: SendHello, To: id, Seq: p.Taken})
		}
		if c.durVer > 0 && (p.ackedVer != c.durVer || now.Sub(p.lastAck) >= c.cfg.AckRepeat) {
			out = append(out, SubEffect{Kind: SendAck, To: id, Epoch: p.committedEpoch, Seq: p.committed, ver: c.durVer})
		}
	}
	return out
}

// Sent records that e went out at now.
func (c *SubCore) Sent(now time.Time, e SubEffect) {
	p := c.pubs[e.To]
	if p == nil {
		return
	}
	switch e.Kind {
	case SendHello:
		p.wantHello, p.lastHello = false, now
	case SendAck:
		p.ackedVer, p.lastAck = e.ver, now
	}
}

// FinalAcks returns the acks to send when the subscriber stops (its final
// snapshot durable): one per publisher it knows.
func (c *SubCore) FinalAcks() []SubEffect {
	var out []SubEffect
	for _, id := range slices.Sorted(maps.Keys(c.pubs)) {
		p := c.pubs[id]
		out = append(out, SubEffect{Kind: SendAck, To: id, Epoch: p.committedEpoch, Seq: p.committed, ver: c.durVer})
	}
	return out
}

// Taken returns pub's watermark (0: none).
func (c *SubCore) Taken(pub string) uint64 {
	if p := c.pubs[pub]; p != nil {
		return p.Taken
	}
	return 0
}

// Committed returns pub's durable watermark (what acks report).
func (c *SubCore) Committed(pub string) uint64 {
	if p := c.pubs[pub]; p != nil {
		return p.committed
	}
	return 0
}

// Unend undoes an accepted end of stream the caller could not hand on.
func (c *SubCore) Unend(pub string) {
	if p := c.pubs[pub]; p != nil {
		p.End = 0
	}
}

// Publishers returns, sorted, the publishers Finished waits for: the live
// ones and those this subscriber took values from.
func (c *SubCore) Publishers() []string {
	var out []string
	for id, p := range c.pubs {
		if _, live := c.members[id]; live || p.Taken > 0 || p.End > 0 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
