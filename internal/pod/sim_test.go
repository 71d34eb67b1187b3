package pod

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/actors"
	"github.com/steadfast-pods/steadfast/codec"
	"github.com/steadfast-pods/steadfast/internal/simnet"
)

// The seeded simulation of publisher cores and subscriber cores: the real
// cores and the real wire encoding, over a lossy, duplicating, reordering,
// delaying network in virtual time, with crashes and restarts of any node
// at any step, replacements from a snapshot of any age (a publisher) or any
// snapshot at least as new as its last durable one (a subscriber: what it
// acknowledged must survive), zombies that keep sending with their stale
// epoch, membership that learns of changes late, subscribers that leave
// and come back, and in half the runs (with 2 or 3 subscribers) a
// subscriber scaled down: it leaves for good, after the first release.
// Invariant: every subscriber applies every publisher's values exactly
// once, in order (its tally's closed form, no value out of order, none
// skipped), and everything completes once the faults stop (the remaining
// subscribers get the whole stream even when it is far longer than the
// outbox: a scaled-down subscriber does not stall it); only the
// scaled-down subscriber is ever retired, early.
//
// A failure prints its seed; replay one with
//
//	go test -run TestSimPubSub ./internal/pod/ -sim.seed N -v

var (
	simSeed  = flag.Uint64("sim.seed", 0, "run only this simulation seed")
	simSeeds = flag.Int("sim.seeds", 200, "simulation seeds to run")
)

func TestSimPubSub(t *testing.T) {
	if *simSeed != 0 {
		if _, err := runSim(*simSeed, t.Logf); err != nil {
			t.Fatalf("seed %d: %v", *simSeed, err)
		}
		return
	}
	n := *simSeeds
	if testing.Short() {
		n = 50
	}
	failed, scaled, early := 0, 0, 0
	for s := 1; s <= n; s++ {
		st, err := runSim(uint64(s), nil)
		if err != nil {
			t.Errorf("seed %d: %v (replay: go test -run TestSimPubSub ./internal/pod/ -sim.seed %d -v)", s, err, s)
			if failed++; failed >= 5 {
				return
			}
		}
		scaled += st.scaled
		early += st.early
	}
	t.Logf("%d seeds: %d with a subscriber scaled down, %d early retirements", n, scaled, early)
	// The scale-down path must have been exercised, or the test proves
	// nothing about it.
	if n >= 50 && (scaled == 0 || early == 0) {
		t.Errorf("%d seeds: %d scale-downs, %d early retirements: the scale-down path was not exercised", n, scaled, early)
	}
}

// simStats counts what a run exercised.
type simStats struct{ scaled, early int }

const simStep = time.Millisecond

type simMsg struct{ to string }

type simPub struct {
	id      string
	epoch   uint64
	alive   bool
	core    *PubCore
	snaps   [][]byte // every snapshot ever taken (any age may be restored)
	snapRel []bool   // whether each had released a value
	zombie  *PubCore // a stale incarnation still sending
	zEpoch  uint64
	zSteps  int
	viewLag int // steps until this node sees the current membership
}

type simSub struct {
	id       string
	epoch    uint64
	alive    bool
	member   bool // in the live view (false while it has left)
	core     *SubCore
	tally    *Tally
	queue    []simItem // handed to the pipeline, not yet applied
	snaps    []simSnap
	durable  int // index of the newest durable snapshot (-1: none)
	pendDur  int // index of a snapshot becoming durable (-1: none)
	durAt    int // step it becomes durable
	viewLag  int
	leftAt   int
	returnAt int
	scaled   bool // scaled down: stopped, out of the view for good
}

type simSnap struct{ b []byte }

type simItem struct {
	kind         itemKind
	pub          string
	epoch        uint64
	first, last  uint64
	seqs, values []uint64
}

type sim struct {
	rng     *rand.Rand
	clock   simnet.Clock
	net     *simnet.Network
	pubs    []*simPub
	subs    []*simSub
	addrs   map[string]netip.AddrPort
	names   map[netip.AddrPort]string
	total   uint64
	nsubs   int
	batch   int
	step    int
	faults  bool
	logf    func(string, ...any)
	msg     []byte
	downAt  int // step from which a subscriber is scaled down (-1: none)
	downRNG *rand.Rand
	stats   simStats
}

// simGrace: the publishers' grace before a departed subscriber holding a
// full outbox is retired early. Longer than any absence of a subscriber
// that comes back (550 steps of at most 3 ms, plus the view's lag): those
// must never be retired.
const simGrace = 3 * time.Second

func (s *sim) now() time.Time { return time.Unix(0, s.clock.Now()) }

func (s *sim) log(format string, args ...any) {
	if s.logf != nil {
		s.logf("step %d: "+format, append([]any{s.step}, args...)...)
	}
}

func runSim(seed uint64, logf func(string, ...any)) (simStats, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	s := &sim{
		rng:    rng,
		addrs:  map[string]netip.AddrPort{},
		names:  map[netip.AddrPort]string{},
		total:  uint64(200 + rng.IntN(800)),
		batch:  1 + rng.IntN(40),
		logf:   logf,
		downAt: -1,
	}
	s.clock.Set(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	s.net = simnet.New(seed, simnet.Faults{
		Loss: rng.Float64() * 0.2, Duplicate: rng.Float64() * 0.1, Reorder: rng.Float64() * 0.3,
		MinDelay: int64(100 * time.Microsecond), MaxDelay: int64(time.Duration(1+rng.IntN(5)) * time.Millisecond),
		ReorderDelay: int64(10 * time.Millisecond),
	})
	np, ns := 1+rng.IntN(2), 1+rng.IntN(3)
	s.nsubs = ns
	port := uint16(1)
	addr := func(id string) {
		a := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port)
		port++
		s.addrs[id], s.names[a] = a, id
	}
	for i := range np {
		p := &simPub{id: fmt.Sprintf("pub-%d", i+1)}
		addr(p.id)
		s.pubs = append(s.pubs, p)
		if err := s.startPub(p, nil); err != nil {
			return s.stats, err
		}
	}
	for i := range ns {
		sb := &simSub{id: fmt.Sprintf("sub-%d", i+1), member: true, durable: -1, pendDur: -1}
		addr(sb.id)
		s.subs = append(s.subs, sb)
		if err := s.startSub(sb, -1); err != nil {
			return s.stats, err
		}
	}
	// The scale-down draws from its own source: runs without one replay
	// exactly as they did before scale-downs were simulated.
	s.downRNG = rand.New(rand.NewPCG(seed^0xd0, seed))
	if ns >= 2 && s.downRNG.IntN(2) == 0 {
		s.downAt = s.downRNG.IntN(1500)
	}
	s.log("total %d batch %d pubs %d subs %d", s.total, s.batch, np, ns)
	const faultSteps, maxSteps = 2500, 40000
	for s.step = 0; s.step < maxSteps; s.step++ {
		s.faults = s.step < faultSteps
		if s.faults {
			if err := s.inject(); err != nil {
				return s.stats, err
			}
		}
		s.scaleDown()
		s.clock.Advance(int64(simStep) * int64(1+rng.IntN(3)))
		s.deliver()
		for _, p := range s.pubs {
			if err := s.runPub(p); err != nil {
				return s.stats, err
			}
		}
		for _, sb := range s.subs {
			if err := s.runSub(sb); err != nil {
				return s.stats, err
			}
		}
		if !s.faults && s.done() {
			return s.stats, s.check()
		}
	}
	return s.stats, fmt.Errorf("not complete after %d steps: %s", maxSteps, s.progress())
}

// scaleDown stops a subscriber for good at downAt, or as soon after as
// every publisher released a value (before that, MinSubscribers says the
// publishers wait for all of them: scaling down then is a configuration
// error, not what is simulated).
func (s *sim) scaleDown() {
	if s.downAt < 0 || s.step < s.downAt {
		return
	}
	for _, p := range s.pubs {
		if !p.alive || p.core.Outbox().First() == 1 {
			return
		}
	}
	var live []*simSub
	for _, sb := range s.subs {
		if sb.alive {
			live = append(live, sb)
		}
	}
	sb := live[s.downRNG.IntN(len(live))]
	sb.alive, sb.member, sb.scaled = false, false, true
	s.downAt = -1
	s.stats.scaled++
	s.log("%s is scaled down: stopped, out of the view for good", sb.id)
	s.changed()
}

func (s *sim) progress() string {
	out := ""
	for _, sb := range s.subs {
		for _, p := range s.pubs {
			pt := sb.tally.Pubs[p.id]
			if pt == nil {
				out += fmt.Sprintf(" %s←%s: nothing;", sb.id, p.id)
				continue
			}
			out += fmt.Sprintf(" %s←%s: last %d end %d taken %d committed %d;", sb.id, p.id, pt.LastSeq, pt.EndSeq, sb.core.Taken(p.id), sb.core.Committed(p.id))
		}
	}
	for _, p := range s.pubs {
		st := p.core.Status()
		out += fmt.Sprintf(" %s: outbox %d..%d subs %+v rejects %v;", p.id, st.OutboxFirst, st.Last, st.Subs, p.core.Rejects())
	}
	return out
}

// --- membership ---------------------------------------------------------

func (s *sim) livePubs() []Peer {
	var out []Peer
	for _, p := range s.pubs {
		if p.alive {
			out = append(out, Peer{ID: p.id, Epoch: p.epoch, Endpoint: s.addrs[p.id].String()})
		}
	}
	return out
}

func (s *sim) liveSubs() []Peer {
	var out []Peer
	for _, sb := range s.subs {
		if sb.alive && sb.member {
			out = append(out, Peer{ID: sb.id, Epoch: sb.epoch, Endpoint: s.addrs[sb.id].String()})
		}
	}
	return out
}

// changed: every node learns the new view after its own random lag.
func (s *sim) changed() {
	for _, p := range s.pubs {
		p.viewLag = 1 + s.rng.IntN(30)
	}
	for _, sb := range s.subs {
		sb.viewLag = 1 + s.rng.IntN(30)
	}
}

// --- faults ---------------------------------------------------------------

func (s *sim) inject() error {
	r := s.rng.Float64()
	switch {
	case r < 0.004: // crash and restart (or replace) a publisher
		p := s.pubs[s.rng.IntN(len(s.pubs))]
		if !p.alive {
			return nil
		}
		if s.rng.IntN(3) == 0 {
			p.zombie, p.zEpoch, p.zSteps = p.core, p.epoch, 5+s.rng.IntN(50)
		}
		var snap []byte
		if len(p.snaps) > 0 && s.rng.IntN(4) != 0 {
			i := s.rng.IntN(len(p.snaps)) // any age
			snap = p.snaps[i]
			if s.stats.scaled > 0 && !p.snapRel[i] {
				// After a scale-down, a publisher whose state predates
				// its first release would wait for MinSubscribers again,
				// more than remain: a real one restores its newest state.
				return nil
			}
		} else if s.stats.scaled > 0 {
			return nil // likewise, a publisher with no state at all
		}
		s.log("%s epoch %d crashes (zombie %v); restores a snapshot of %d bytes", p.id, p.epoch, p.zombie != nil, len(snap))
		return s.startPub(p, snap)
	case r < 0.008: // crash and restart a subscriber
		sb := s.subs[s.rng.IntN(len(s.subs))]
		if !sb.alive {
			return nil
		}
		// Any snapshot at least as new as the newest durable one.
		from := -1
		if sb.durable >= 0 {
			from = sb.durable + s.rng.IntN(len(sb.snaps)-sb.durable)
		} else if len(sb.snaps) > 0 && s.rng.IntN(2) == 0 {
			from = s.rng.IntN(len(sb.snaps))
		}
		s.log("%s epoch %d crashes; restores snapshot %d (durable %d)", sb.id, sb.epoch, from, sb.durable)
		return s.startSub(sb, from)
	case r < 0.010: // a subscriber leaves the view for a while, then returns
		sb := s.subs[s.rng.IntN(len(s.subs))]
		if sb.member && sb.alive {
			sb.member, sb.returnAt = false, s.step+50+s.rng.IntN(500)
			s.log("%s leaves the view until step %d", sb.id, sb.returnAt)
			s.changed()
		}
	}
	return nil
}

// --- publisher ----------------------------------------------------------------

func (s *sim) startPub(p *simPub, snap []byte) error {
	st := &pubState{Subs: map[string]*SubRecord{}}
	ob, err := NewOutbox(64+s.rng.IntN(256), 1)
	if err != nil {
		return err
	}
	st.Outbox = ob
	if snap != nil {
		if err := codec.Unmarshal(snap, st); err != nil {
			return fmt.Errorf("%s restore: %w", p.id, err)
		}
	}
	core, err := NewPubCore(PubCoreConfig{Total: s.total, MinSubscribers: s.nsubs, Chunk: 1 + s.rng.IntN(64), Retention: time.Hour, Grace: simGrace}, st)
	if err != nil {
		return err
	}
	p.core, p.alive = core, true
	p.epoch++
	s.changed()
	return nil
}

func (s *sim) runPub(p *simPub) error {
	now := s.now()
	if p.zombie != nil {
		s.sendPub(p.id, p.zEpoch, p.zombie, now)
		if p.zSteps--; p.zSteps <= 0 {
			p.zombie = nil
		}
	}
	if !p.alive {
		return nil
	}
	if p.viewLag > 0 {
		if p.viewLag--; p.viewLag == 0 {
			for _, ch := range p.core.SetMembers(now, s.liveSubs(), nil) {
				_ = ch // publications are implicit in the simulation
			}
		}
	}
	// Generator: up to one beat into the outbox when it has room.
	ob := p.core.Outbox()
	if next := ob.Last() + 1; next <= s.total && s.rng.IntN(2) == 0 {
		n := min(uint64(s.batch), s.total-next+1, uint64(ob.Free()))
		if n > 0 && next%2 == 0 {
			// As the publishing actor does (value = seq, one run); the
			// choice uses no randomness, so seeds replay as before.
			if err := p.core.AppendSeqs(next, n); err != nil {
				return fmt.Errorf("%s append: %w", p.id, err)
			}
		} else if n > 0 {
			vals := make([]uint64, n)
			for i := range vals {
				vals[i] = next + uint64(i)
			}
			if err := p.core.Append(next, vals); err != nil {
				return fmt.Errorf("%s append: %w", p.id, err)
			}
		}
	}
	if ob.Last() >= s.total {
		p.core.GenDone()
	}
	s.sendPub(p.id, p.epoch, p.core, now)
	retired, _ := p.core.Tick(now)
	for _, r := range retired {
		if sb := s.sub(r.ID); !r.Early || sb == nil || !sb.scaled {
			return fmt.Errorf("%s retired %+v: only the scaled-down subscriber may be retired (early)", p.id, r)
		}
		s.stats.early++
		s.log("%s retires %s early: %+v", p.id, r.ID, r)
	}
	if s.rng.IntN(20) == 0 {
		b, err := codec.Marshal(p.core.st)
		if err != nil {
			return err
		}
		p.snaps = append(p.snaps, b)
		p.snapRel = append(p.snapRel, p.core.Outbox().First() > 1)
	}
	return nil
}

func (s *sim) sendPub(id string, epoch uint64, core *PubCore, now time.Time) {
	var vals []uint64
	for _, to := range core.Subscribers() {
		for range 8 {
			e, ok := core.Next(now, to)
			if !ok {
				break
			}
			if s.rng.IntN(50) == 0 {
				core.Result(now, e, actors.FailBackPressured)
				break
			}
			switch e.Kind {
			case SendValues:
				vals = core.Outbox().Range(vals[:0], e.First, e.N)
				s.msg = codec.AppendBatch(s.msg[:0], &codec.Batch{Publisher: id, Epoch: epoch, FirstSeq: e.First, Values: vals})
			case SendReleased:
				s.log("%s epoch %d tells %s: released up to %d (status %+v)", id, epoch, to, e.Seq, core.Status())
				s.msg, _ = codec.AppendControl(s.msg[:0], &codec.Control{Type: codec.ControlReleased, NodeID: id, Epoch: epoch, Seq: e.Seq})
			case SendEnd:
				s.msg, _ = codec.AppendControl(s.msg[:0], &codec.Control{Type: codec.ControlEndOfStream, NodeID: id, Epoch: epoch, Seq: e.Seq})
			}
			s.net.Send(s.clock.Now(), s.addrs[id], s.addrs[to], s.msg)
			core.Result(now, e, 0)
		}
	}
}

// --- subscriber ---------------------------------------------------------------

func (s *sim) sub(id string) *simSub {
	for _, sb := range s.subs {
		if sb.id == id {
			return sb
		}
	}
	return nil
}

func (s *sim) startSub(sb *simSub, from int) error {
	sb.tally = NewTally()
	if from >= 0 {
		var ls loggerState
		if err := codec.Unmarshal(sb.snaps[from].b, &ls); err != nil {
			return err
		}
		if err := ls.Tally.Validate(); err != nil {
			return err
		}
		sb.tally = ls.Tally
		sb.snaps = sb.snaps[:from+1] // later ones are gone with the disk
		if sb.durable > from {
			return fmt.Errorf("%s restored snapshot %d below its durable %d", sb.id, from, sb.durable)
		}
	}
	st := sb.tally.CoreState()
	core, err := NewSubCore(SubCoreConfig{}, &st)
	if err != nil {
		return err
	}
	sb.core, sb.alive, sb.queue, sb.pendDur = core, true, nil, -1
	if from >= 0 && from == sb.durable {
		sb.core.Durable(st.Pubs)
	}
	sb.epoch++
	s.changed()
	return nil
}

func (s *sim) runSub(sb *simSub) error {
	now := s.now()
	if !sb.member && s.step >= sb.returnAt && sb.alive {
		sb.member = true
		s.changed()
	}
	if !sb.alive {
		return nil
	}
	if sb.viewLag > 0 {
		if sb.viewLag--; sb.viewLag == 0 {
			sb.core.SetMembers(now, s.livePubs())
		}
	}
	// Logger: apply what the pipeline holds, in order.
	for len(sb.queue) > 0 && s.rng.IntN(4) != 0 {
		it := sb.queue[0]
		sb.queue = sb.queue[1:]
		switch it.kind {
		case itemValue:
			for i, seq := range it.seqs {
				sb.tally.Apply(it.pub, it.epoch, seq, it.values[i], Classify(it.values[i]))
			}
		case itemSkip:
			sb.tally.Skip(it.pub, it.epoch, it.first, it.last)
		case itemEnd:
			sb.tally.End(it.pub, it.epoch, it.last)
		}
		for id, pt := range sb.tally.Pubs {
			if pt.OutOfOrder > 0 || pt.Skipped > 0 {
				return fmt.Errorf("%s←%s: out of order %d, skipped %d at seq %d", sb.id, id, pt.OutOfOrder, pt.Skipped, pt.LastSeq)
			}
		}
	}
	// Snapshots: taken now and then; one becomes durable a while later.
	if sb.pendDur >= 0 && s.step >= sb.durAt {
		var ls loggerState
		if err := codec.Unmarshal(sb.snaps[sb.pendDur].b, &ls); err != nil {
			return err
		}
		sb.durable, sb.pendDur = sb.pendDur, -1
		sb.core.Durable(ls.Tally.CoreState().Pubs)
	}
	if s.rng.IntN(10) == 0 {
		b, err := codec.Marshal(&loggerState{Tally: sb.tally})
		if err != nil {
			return err
		}
		sb.snaps = append(sb.snaps, simSnap{b: b})
		if sb.pendDur < 0 && s.rng.IntN(3) != 0 {
			sb.pendDur, sb.durAt = len(sb.snaps)-1, s.step+1+s.rng.IntN(20)
		}
	}
	for _, e := range sb.core.Tick(now, nil) {
		switch e.Kind {
		case SendHello:
			s.msg, _ = codec.AppendControl(s.msg[:0], &codec.Control{Type: codec.ControlHello, NodeID: sb.id, Epoch: sb.epoch, Seq: e.Seq})
		case SendAck:
			s.msg, _ = codec.AppendAck(s.msg[:0], &codec.Ack{Subscriber: sb.id, SubscriberEpoch: sb.epoch, Publisher: e.To, PublisherEpoch: e.Epoch, Committed: e.Seq})
		}
		if s.rng.IntN(30) == 0 {
			continue // back-pressured: due again
		}
		s.net.Send(s.clock.Now(), s.addrs[sb.id], s.addrs[e.To], s.msg)
		sb.core.Sent(now, e)
	}
	return nil
}

// deliver hands every datagram due to its node (dead nodes drop them).
func (s *sim) deliver() {
	now := s.now()
	s.net.Deliver(s.clock.Now(), func(pk *simnet.Packet) {
		to := s.names[pk.To]
		for _, p := range s.pubs {
			if p.id == to && p.alive {
				s.pubIn(p, now, pk.Data)
			}
		}
		for _, sb := range s.subs {
			if sb.id == to && sb.alive {
				s.subIn(sb, now, pk.Data)
			}
		}
	})
}

func (s *sim) pubIn(p *simPub, now time.Time, m []byte) {
	k, _ := codec.Peek(m)
	switch k {
	case codec.KindAck:
		var a codec.Ack
		if codec.DecodeAck(m, &a) == nil && a.Publisher == p.id {
			p.core.OnAck(now, a.Subscriber, a.SubscriberEpoch, a.Committed)
		}
	case codec.KindControl:
		var c codec.Control
		if codec.DecodeControl(m, &c) == nil && c.Type == codec.ControlHello {
			p.core.OnHello(now, c.NodeID, c.Epoch, c.Seq)
		}
	}
}

func (s *sim) subIn(sb *simSub, now time.Time, m []byte) {
	k, _ := codec.Peek(m)
	switch k {
	case codec.KindBatch:
		var b codec.Batch
		if codec.DecodeBatch(m, &b) != nil {
			return
		}
		v, skip := sb.core.OnBatch(now, b.Publisher, b.Epoch, b.FirstSeq, len(b.Values))
		if v != Accept {
			return
		}
		it := simItem{kind: itemValue, pub: b.Publisher, epoch: b.Epoch}
		for i, val := range b.Values[skip:] {
			it.seqs = append(it.seqs, b.FirstSeq+uint64(skip+i))
			it.values = append(it.values, val)
		}
		sb.queue = append(sb.queue, it)
		sb.core.Advance(b.Publisher, b.Epoch, b.LastSeq())
	case codec.KindControl:
		var c codec.Control
		if codec.DecodeControl(m, &c) != nil {
			return
		}
		switch c.Type {
		case codec.ControlEndOfStream:
			if sb.core.OnEnd(now, c.NodeID, c.Epoch, c.Seq) == Accept {
				sb.queue = append(sb.queue, simItem{kind: itemEnd, pub: c.NodeID, epoch: c.Epoch, last: c.Seq})
			}
		case codec.ControlReleased:
			if from, ok := sb.core.OnReleased(now, c.NodeID, c.Epoch, c.Seq); ok {
				sb.queue = append(sb.queue, simItem{kind: itemSkip, pub: c.NodeID, epoch: c.Epoch, first: from, last: c.Seq})
				sb.core.Advance(c.NodeID, c.Epoch, c.Seq)
			}
		}
	}
}

// --- end --------------------------------------------------------------------------

func (s *sim) done() bool {
	for _, sb := range s.subs {
		if sb.scaled {
			continue
		}
		if !sb.alive || len(sb.queue) > 0 || !sb.core.Finished(len(s.pubs)) {
			return false
		}
		for _, p := range s.pubs {
			if !sb.tally.Ended(p.id) {
				return false
			}
		}
	}
	for _, p := range s.pubs {
		if !p.core.Complete() && !s.completeButScaled(p) {
			return false
		}
	}
	return true
}

// completeButScaled reports whether p has the whole stream acknowledged by
// every subscriber but the scaled-down one, whose record it still keeps
// (its outbox never filled after it left: nothing to retire it for until
// the retention).
func (s *sim) completeButScaled(p *simPub) bool {
	st := p.core.Status()
	if st.Last < s.total {
		return false
	}
	kept := false
	for _, ss := range st.Subs {
		if sb := s.sub(ss.ID); sb != nil && sb.scaled {
			kept = true
		} else if ss.Acked < s.total {
			return false
		}
	}
	return kept
}

func (s *sim) check() error {
	for _, sb := range s.subs {
		if sb.scaled {
			continue
		}
		ids := make([]string, 0, len(sb.tally.Pubs))
		for id := range sb.tally.Pubs {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		if len(ids) != len(s.pubs) {
			return fmt.Errorf("%s has tallies for %v", sb.id, ids)
		}
		for _, id := range ids {
			if r := Check(sb.tally.Pubs[id], s.total, nil); !r.OK() {
				return fmt.Errorf("%s←%s: %+v", sb.id, id, r)
			}
		}
	}
	return nil
}
