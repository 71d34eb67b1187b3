package pod

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/steadfast-pods/steadfast/actors"
	"github.com/steadfast-pods/steadfast/nodeid"
)

// PubCore is the publisher's delivery logic as a pure state machine: the
// outbox, what it remembers of each subscriber (epoch, acknowledged
// position, when it left), one circuit breaker per live subscriber, what to
// send next to whom (values, replays, end of stream, "released"), when the
// outbox may release values, and when a subscriber gone for good is
// retired: after the retention, or earlier (after the grace) when the
// outbox is full and only departed subscribers hold it. It touches no
// socket, clock or goroutine: the publishing actor feeds it events with the
// time and carries out what it returns, and the simulation test drives the
// same code with a virtual clock.
//
// Every inbound event is checked before it changes anything: an ack or
// hello must come from a live subscriber at exactly its member epoch and
// acknowledge no more than the stream can hold; rejects change no state and
// are counted by reason (Rejects). Message authentication happens before the
// core, in the shell's Verifier (one place).
//
// Sending is a loop of Next (what to send to one subscriber now) and Result
// (how the offer went), so every decision sees the previous outcome.
//
// It is not safe for concurrent use: the publishing actor owns it.
type PubCore struct {
	cfg     PubCoreConfig
	st      *pubState
	conns   map[string]*pubConn
	members map[string]Peer
	ids     []string  // members' ids, sorted (Subscribers)
	viewAt  time.Time // the first SetMembers of this core (zero: none yet)
	genDone bool
	full    bool
	fulls   uint64
	retired uint64
	early   uint64
	rejects map[string]uint64
}

// PubCoreConfig tunes a PubCore.
type PubCoreConfig struct {
	Total uint64 // values in the whole stream; 0: unbounded
	Chunk int    // most values per message (default maxChunk)
	// MinSubscribers: subscribers known before anything is released. Once
	// the outbox released a value the gate stays open: a subscriber that
	// leaves later (scaled down, retired) does not stall the stream.
	MinSubscribers int
	// Retention: a subscriber absent from the live view this long is
	// retired (default 5 min).
	Retention time.Duration
	// Grace: a subscriber absent from the live view at least this long is
	// retired early when the outbox is full and it is what holds the
	// outbox back: every live subscriber acknowledged more than it did, so
	// the stream stalls for everyone until it returns. A scaled-down
	// subscriber never returns; a replaced one returns with its node id
	// well within the grace (seconds), and then loses nothing. 0: never
	// early (only after the retention).
	Grace          time.Duration
	EndRepeat      time.Duration // end of stream repeated until acked (default 500 ms)
	ReleasedRepeat time.Duration // "released" repeated (default 200 ms)
	Breaker        actors.BreakerConfig
}

func (c *PubCoreConfig) fill() {
	if c.Chunk <= 0 || c.Chunk > maxChunk {
		c.Chunk = maxChunk
	}
	if c.Retention <= 0 {
		c.Retention = 5 * time.Minute
	}
	if c.EndRepeat <= 0 {
		c.EndRepeat = 500 * time.Millisecond
	}
	if c.ReleasedRepeat <= 0 {
		c.ReleasedRepeat = 200 * time.Millisecond
	}
	if c.Breaker == (actors.BreakerConfig{}) {
		c.Breaker = actors.DefaultBreakerConfig()
	}
}

// Validate checks a decoded publisher state: an outbox, and subscriber
// records with valid node ids and nothing missing.
func (s *pubState) Validate() error {
	if s.Outbox == nil || s.Outbox.Cap() == 0 {
		return fmt.Errorf("%w: no outbox", ErrBadState)
	}
	if err := validOutbox(s.Outbox); err != nil {
		return err
	}
	for id, r := range s.Subs {
		if err := nodeid.Validate(id); err != nil {
			return fmt.Errorf("%w: subscriber %q: %v", ErrBadState, id, err)
		}
		if r == nil {
			return fmt.Errorf("%w: subscriber %q has no record", ErrBadState, id)
		}
		if r.Gone < 0 {
			return fmt.Errorf("%w: subscriber %q gone at %d", ErrBadState, id, r.Gone)
		}
	}
	return nil
}

// pubConn is the volatile side of one subscriber: its breaker and counters.
type pubConn struct {
	br       *actors.Breaker
	endpoint string
	highest  uint64 // highest seq ever offered (to count replays)
	lastEnd  time.Time
	lastRel  time.Time
	endDue   bool // a hello came: the subscriber may lack the end of stream
	sent     uint64
	replayed uint64
}

// NewPubCore returns a core over st (restored or new). A state that fails
// Validate is refused.
func NewPubCore(cfg PubCoreConfig, st *pubState) (*PubCore, error) {
	cfg.fill()
	if err := st.Validate(); err != nil {
		return nil, err
	}
	if st.Subs == nil {
		st.Subs = map[string]*SubRecord{}
	}
	return &PubCore{cfg: cfg, st: st, conns: map[string]*pubConn{}, members: map[string]Peer{}, rejects: map[string]uint64{}}, nil
}

// Outbox returns the outbox (read it; change it only through the core).
func (c *PubCore) Outbox() *Outbox { return c.st.Outbox }

// Rejects returns the rejected events by reason.
func (c *PubCore) Rejects() map[string]uint64 { return maps.Clone(c.rejects) }

// Retired returns how many subscribers were retired (early ones included).
func (c *PubCore) Retired() uint64 { return c.retired }

// RetiredEarly returns how many subscribers were retired early: within the
// retention, because the outbox was full and only they held it.
func (c *PubCore) RetiredEarly() uint64 { return c.early }

// FullEvents returns how many times the outbox became full.
func (c *PubCore) FullEvents() uint64 { return c.fulls }

// GenDone records that the generator produced the whole stream.
func (c *PubCore) GenDone() { c.genDone = true }

// Append adds generated values first.. to the outbox (all or nothing),
// generated by beats the heartbeat emitted at beat (the zero time:
// unknown); Next stamps the messages that carry them with it. Values at or
// below the outbox's last seq (regenerated after a restore) are skipped.
func (c *PubCore) Append(beat time.Time, first uint64, values []uint64) error {
	ob := c.st.Outbox
	if first <= ob.Last() {
		k := ob.Last() - first + 1
		if k >= uint64(len(values)) {
			return nil
		}
		values, first = values[k:], ob.Last()+1
	}
	if err := ob.Append(first, values); err != nil {
		return err
	}
	ob.MarkBeat(first, unixNano(beat))
	c.noteFull()
	return nil
}

// AppendSeqs adds the generated values first..first+n-1 of a replayable
// source whose value is its seq (the pods' generator), as one run: nothing
// per value is copied or kept. Like Append it takes their beat time, skips
// values at or below the outbox's last seq and appends all or nothing.
func (c *PubCore) AppendSeqs(beat time.Time, first, n uint64) error {
	if n == 0 {
		return nil
	}
	ob := c.st.Outbox
	end := first + n - 1
	if end < first {
		return fmt.Errorf("pod: generated seqs %d+%d overflow", first, n)
	}
	if first <= ob.Last() {
		if end <= ob.Last() {
			return nil
		}
		first = ob.Last() + 1
	}
	if end-first >= uint64(ob.Free()) {
		return fmt.Errorf("%w: %d values, %d free", ErrOutboxFull, end-first+1, ob.Free())
	}
	if err := ob.AppendRun(first, first, int(end-first+1)); err != nil {
		return err
	}
	ob.MarkBeat(first, unixNano(beat))
	c.noteFull()
	return nil
}

func (c *PubCore) noteFull() {
	f := c.st.Outbox.Free() == 0
	if f && !c.full {
		c.fulls++
	}
	c.full = f
}

// ConnChange is what a membership change asks of the shell's transport.
type ConnChange struct {
	ID       string
	Endpoint string // "" : close the publication
}

// SetMembers replaces the live subscribers. It returns the publications to
// open (new endpoint) and close (gone), sorted by id. A subscriber seen for
// the first time gets a record; one that left has its departure noted (see
// Tick for retirement).
func (c *PubCore) SetMembers(now time.Time, subs []Peer, out []ConnChange) []ConnChange {
	if c.viewAt.IsZero() {
		c.viewAt = now
	}
	next := make(map[string]Peer, len(subs))
	for _, m := range subs {
		next[m.ID] = m
	}
	for _, id := range slices.Sorted(maps.Keys(next)) {
		m := next[id]
		r := c.st.Subs[id]
		if r == nil {
			r = &SubRecord{Epoch: m.Epoch}
			c.st.Subs[id] = r
		}
		r.Gone = 0
		cn := c.conns[id]
		if cn == nil {
			br, err := actors.NewBreaker(c.cfg.Breaker, m.Epoch)
			if err != nil {
				continue // the config was validated by fill's defaults
			}
			cn = &pubConn{br: br}
			c.conns[id] = cn
		}
		cn.br.MemberAlive(now, m.Epoch)
		if cn.endpoint != m.Endpoint {
			cn.endpoint = m.Endpoint
			out = append(out, ConnChange{ID: id, Endpoint: m.Endpoint})
		}
	}
	// Every record of a subscriber not in the view is marked gone, not
	// only those of members that just left: after a restore the records
	// come from the snapshot, and one whose subscriber left in between is
	// in no view of this incarnation (unmarked, it would hold the outbox
	// for ever).
	for _, id := range slices.Sorted(maps.Keys(c.st.Subs)) {
		if _, ok := next[id]; ok {
			continue
		}
		if r := c.st.Subs[id]; r.Gone == 0 {
			r.Gone = now.UnixNano()
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.members)) {
		if _, ok := next[id]; ok {
			continue
		}
		if cn := c.conns[id]; cn != nil {
			cn.br.MemberDead(now, cn.br.Epoch())
			if cn.endpoint != "" {
				cn.endpoint = ""
				out = append(out, ConnChange{ID: id})
			}
		}
	}
	c.members = next
	c.ids = slices.Sorted(maps.Keys(next))
	return out
}

// check admits an ack or hello: from a live subscriber at exactly its
// member epoch, acknowledging no more than the stream can hold.
func (c *PubCore) check(from string, epoch, seq uint64) *SubRecord {
	m, ok := c.members[from]
	switch {
	case !ok:
		c.rejects[RejectUnknownSender]++
		return nil
	case epoch < m.Epoch:
		c.rejects[RejectStaleEpoch]++
		return nil
	case epoch > m.Epoch:
		c.rejects[RejectFutureEpoch]++
		return nil
	}
	limit := c.cfg.Total
	if limit == 0 {
		limit = c.st.Outbox.Last() + uint64(c.st.Outbox.Cap())
	}
	if seq > limit {
		c.rejects[RejectImplausible]++
		return nil
	}
	r := c.st.Subs[from]
	if r == nil || epoch < r.Epoch {
		c.rejects[RejectStaleEpoch]++
		return nil
	}
	return r
}

// OnAck handles a subscriber's ack: everything up to committed is durable
// there. It reports whether the ack was accepted.
func (c *PubCore) OnAck(now time.Time, from string, epoch, committed uint64) bool {
	r := c.check(from, epoch, committed)
	if r == nil {
		return false
	}
	r.Epoch = epoch
	c.st.Acks++
	r.Acked = max(r.Acked, committed)
	if cn := c.conns[from]; cn != nil {
		cn.br.Heard(now, epoch, committed, false)
	}
	return true
}

// OnHello handles a subscriber's hello: replay after seq. It reports whether
// it was accepted.
func (c *PubCore) OnHello(now time.Time, from string, epoch, seq uint64) bool {
	r := c.check(from, epoch, seq)
	if r == nil {
		return false
	}
	r.Epoch = epoch
	if cn := c.conns[from]; cn != nil {
		cn.br.Heard(now, epoch, seq, true)
		// An ack of the whole stream does not say the end of stream
		// arrived (the subscriber may have restored a snapshot taken
		// before it): a subscriber that still asks gets it again.
		cn.endDue = true
	}
	return true
}

// SendKind says what a PubSend carries.
type SendKind uint8

const (
	SendValues   SendKind = iota + 1 // outbox values First..First+N-1
	SendReleased                     // "values up to Seq are no longer held"
	SendEnd                          // end of stream at Seq
)

// PubSend is one message the shell offers to a subscriber.
type PubSend struct {
	Kind  SendKind
	To    string
	First uint64
	N     int
	Seq   uint64
	// Beat (SendValues): when the beat that generated the value at First
	// was emitted (never later than the truth; zero: unknown). Replays
	// carry the original time, so a value held through a subscriber's
	// outage shows the whole wait as latency.
	Beat time.Time
}

// unixNano is t in unix nanoseconds, 0 for the zero time or any time not
// after the epoch (an unknown beat).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixNano(), 0)
}

// fromUnixNano is the inverse of unixNano (0: the zero time).
func fromUnixNano(ns int64) time.Time {
	if ns <= 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Next returns the next message for subscriber id at now, if any: values
// from its breaker's cursor (as many as the outbox holds up to Chunk: when
// the transport is busy, beats that piled up go out together), a
// "released" notice when the cursor is below what the outbox still holds,
// or the end of stream. Report the outcome with Result.
func (c *PubCore) Next(now time.Time, id string) (PubSend, bool) {
	cn := c.conns[id]
	if cn == nil || cn.endpoint == "" || !cn.br.CanOffer() {
		return PubSend{}, false
	}
	ob := c.st.Outbox
	next := cn.br.Next()
	switch {
	case next < ob.First():
		if now.Sub(cn.lastRel) < c.cfg.ReleasedRepeat {
			return PubSend{}, false
		}
		return PubSend{Kind: SendReleased, To: id, Seq: ob.First() - 1}, true
	case next <= ob.Last():
		return PubSend{Kind: SendValues, To: id, First: next, N: int(min(ob.Last()-next+1, uint64(c.cfg.Chunk))),
			Beat: fromUnixNano(ob.BeatAt(next))}, true
	}
	cn.br.CaughtUp(now, ob.Last())
	r := c.st.Subs[id]
	if c.genDone && c.cfg.Total > 0 && next > c.cfg.Total && r != nil && (r.Acked < c.cfg.Total || cn.endDue) &&
		now.Sub(cn.lastEnd) >= c.cfg.EndRepeat {
		return PubSend{Kind: SendEnd, To: id, Seq: c.cfg.Total}, true
	}
	return PubSend{}, false
}

// Result records how offering s went: fail 0 is success.
func (c *PubCore) Result(now time.Time, s PubSend, fail actors.OfferFailure) {
	cn := c.conns[s.To]
	if cn == nil {
		return
	}
	if fail != 0 {
		cn.br.Failed(now, fail)
		return
	}
	switch s.Kind {
	case SendReleased:
		cn.lastRel = now
		cn.br.Heard(now, cn.br.Epoch(), s.Seq, false)
	case SendEnd:
		cn.lastEnd, cn.endDue = now, false
	case SendValues:
		last := s.First + uint64(s.N) - 1
		cn.sent += uint64(s.N)
		c.st.Sent += uint64(s.N)
		if s.First <= cn.highest {
			r := min(cn.highest, last) - s.First + 1
			cn.replayed += r
			c.st.Replay += r
		}
		cn.highest = max(cn.highest, last)
		cn.br.Offered(now, last, c.st.Outbox.Last())
	}
}

// Retirement is a subscriber record Tick dropped.
type Retirement struct {
	ID    string
	Acked uint64        // the last value it acknowledged
	Gone  time.Duration // how long it had been out of the live view
	// Early: retired within the retention because the outbox was full and
	// it held it (see PubCoreConfig.Grace).
	Early bool
	// ReleasedTo: the outbox released values up to here in the same Tick;
	// Acked+1..ReleasedTo are values it never acknowledged and will never
	// get (more follow unless it returns). 0 when nothing it lacked was
	// released.
	ReleasedTo uint64
}

// Tick retires subscribers gone longer than the retention, and those gone
// longer than the grace that hold a full outbox back (returned: those of
// the retention first, each group sorted by id), and releases what every
// remaining subscriber has acknowledged. It returns the number of values
// released.
func (c *PubCore) Tick(now time.Time) (retired []Retirement, released int) {
	for _, id := range slices.Sorted(maps.Keys(c.st.Subs)) {
		r := c.st.Subs[id]
		if gone := c.goneFor(now, r); gone >= c.cfg.Retention {
			retired = c.retire(retired, id, r, gone, false)
		}
	}
	if c.cfg.Grace > 0 && c.st.Outbox.Free() == 0 {
		retired = c.retireEarly(now, retired)
	}
	if c.gateOpen(len(c.st.Subs)) {
		low := ^uint64(0)
		for _, r := range c.st.Subs {
			low = min(low, r.Acked)
		}
		released = c.st.Outbox.Release(low)
		c.noteFull()
	}
	if released > 0 {
		to := c.st.Outbox.First() - 1
		for i := range retired {
			if to > retired[i].Acked {
				retired[i].ReleasedTo = to
			}
		}
	}
	return retired, released
}

// gateOpen reports whether the outbox may release with n subscriber
// records: at least one, and MinSubscribers of them until the first value
// was released (the outbox's first seq never goes back, in snapshots too).
func (c *PubCore) gateOpen(n int) bool {
	return n > 0 && (n >= c.cfg.MinSubscribers || c.st.Outbox.First() > 1)
}

// goneFor returns how long r has been out of the live view (-1: it is a
// member).
func (c *PubCore) goneFor(now time.Time, r *SubRecord) time.Duration {
	if r.Gone == 0 {
		return -1
	}
	return max(now.Sub(time.Unix(0, r.Gone)), 0)
}

func (c *PubCore) retire(out []Retirement, id string, r *SubRecord, gone time.Duration, early bool) []Retirement {
	delete(c.st.Subs, id)
	delete(c.conns, id)
	c.retired++
	if early {
		c.early++
	}
	return append(out, Retirement{ID: id, Acked: r.Acked, Gone: gone, Early: early})
}

// retireEarly retires, when the outbox is full, every subscriber out of
// the view for at least the grace that acknowledged less than every live
// subscriber (the grace counted from no earlier than this core's first view:
// a restored record may say it left long ago while its subscriber is back,
// in a view this core has not seen yet): those records alone keep the outbox from releasing, and the
// generator waits for them. Nothing is retired when the live subscribers
// could not release anyway (none, or fewer than MinSubscribers before the
// first release): that would lose values for nobody's benefit.
func (c *PubCore) retireEarly(now time.Time, out []Retirement) []Retirement {
	liveLow, live := ^uint64(0), 0
	for _, r := range c.st.Subs {
		if r.Gone == 0 {
			liveLow = min(liveLow, r.Acked)
			live++
		}
	}
	if !c.gateOpen(live) {
		return out
	}
	if c.viewAt.IsZero() {
		return out
	}
	for _, id := range slices.Sorted(maps.Keys(c.st.Subs)) {
		r := c.st.Subs[id]
		gone := c.goneFor(now, r)
		if gone >= 0 && now.Sub(c.viewAt) >= c.cfg.Grace && gone >= c.cfg.Grace && r.Acked < liveLow {
			out = c.retire(out, id, r, gone, true)
		}
	}
	return out
}

// Complete reports whether the whole stream was generated and acknowledged
// by every subscriber (at least MinSubscribers of them, or at least one once
// values were released).
func (c *PubCore) Complete() bool {
	if c.cfg.Total == 0 || c.st.Outbox.Last() < c.cfg.Total || !c.gateOpen(len(c.st.Subs)) {
		return false
	}
	for _, r := range c.st.Subs {
		if r.Acked < c.cfg.Total {
			return false
		}
	}
	return true
}

// Subscribers returns the ids of the live subscribers, sorted. The slice
// is the core's (the publishing actor asks for it at every turn of its
// loop): read it, do not change it; SetMembers replaces it.
func (c *PubCore) Subscribers() []string { return c.ids }

// Status returns the core's state for metrics.
func (c *PubCore) Status() pubStatus {
	ob := c.st.Outbox
	s := pubStatus{OutboxLen: ob.Len(), OutboxCap: ob.Cap(), OutboxFirst: ob.First(), Last: ob.Last(),
		Complete: c.Complete(), OutboxFull: ob.Free() == 0}
	for _, id := range slices.Sorted(maps.Keys(c.st.Subs)) {
		r := c.st.Subs[id]
		ss := SubStatus{ID: id, Epoch: r.Epoch, Acked: r.Acked, State: actors.BreakerOpen}
		if cn := c.conns[id]; cn != nil {
			ss.State, ss.Next, ss.Opens, ss.Replays = cn.br.State(), cn.br.Next(), cn.br.Opens(), cn.br.Replays()
			ss.Sent, ss.Replayed = cn.sent, cn.replayed
		}
		s.Subs = append(s.Subs, ss)
	}
	return s
}

// BreakerState returns subscriber id's breaker state (Open if unknown).
func (c *PubCore) BreakerState(id string) actors.BreakerState {
	if cn := c.conns[id]; cn != nil {
		return cn.br.State()
	}
	return actors.BreakerOpen
}
