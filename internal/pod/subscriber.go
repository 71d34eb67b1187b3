package pod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steadfast-pods/steadfast/actors"
	"github.com/steadfast-pods/steadfast/cluster"
	"github.com/steadfast-pods/steadfast/codec"
	"github.com/steadfast-pods/steadfast/internal/fizzbuzz"
	"github.com/steadfast-pods/steadfast/transport"
)

// Actor names of the subscriber pod (also the keys of its snapshot states).
const (
	actorReceive = "receive"
	actorWorker  = "worker"
	actorLogger  = "logger"
)

type itemKind uint8

const (
	itemValue itemKind = iota // Values: the values First..Last
	itemEnd                   // Last: the stream's last seq
	itemSkip                  // First..Last: values the publisher no longer had (lost)
	itemDead                  // Values[0] (seq First): a value the worker could not process
)

// segment flows receive → worker → logger: a whole batch, not a value.
// The worker fills Counts (the batch's FizzBuzz tally).
type segment struct {
	Kind        itemKind
	Pub         string
	Epoch       uint64
	First, Last uint64
	Values      []uint64 // itemValue, itemDead; from segPool, returned by the logger
	Counts      fizzbuzz.Counts
	// Beat (itemValue): the batch's beat time as the receive core admitted
	// it (unix ns; 0: none), for the delivery latency.
	Beat int64
}

// workerState survives the worker's restarts (not snapshotted: positions are
// per process). Cur is the segment being processed and CurIdx the value in
// it; if the runtime dead-letters the segment (a value that always crashes
// the worker), the head moves past CurPos and the worker reports that value
// dead and processes the rest of the segment.
type workerState struct {
	Cur    segment
	CurIdx int
	CurPos uint64
	HasCur bool
	// Done counts the values committed by the worker; the next injected
	// panic comes at value NextPanic (so a restarted worker does not panic
	// again on the same value).
	Done, NextPanic uint64
	Panics          uint64
	// PanicPos: the channel position of the segment the last injected
	// panic hit (+1; 0: none). A segment gets at most one injected panic,
	// so the runtime never mistakes injected panics for a showstopper.
	PanicPos uint64
}

// loggerState is the subscriber's source of truth: the tally, whose last
// seq per publisher is also the dedup watermark and what acks report.
type loggerState struct {
	Tally   *Tally `msgpack:"tally"`
	NextPos uint64 `msgpack:"-"` // channel position applied up to (per process)
	Lines   uint64 `msgpack:"lines"`
}

// pubCommit is a durable position for one publisher.
type pubCommit struct {
	Epoch, Seq uint64
}

type durableMark struct {
	version   uint64
	committed map[string]pubCommit
}

// ackConn is the reverse stream to one publisher (owned by receive while
// the graph runs, by finish afterwards).
type ackConn struct {
	id, endpoint string
	epoch        uint64
	pub          publication
}

type subscriber struct {
	p       *Pod
	log     *slog.Logger
	items   *actors.Chan[segment]
	results *actors.Chan[segment]
	work    *workerState
	logst   *loggerState
	core    *SubCore // owned by the receive actor while the graph runs
	pool    segPool

	finished   chan struct{}
	finishOnce sync.Once
	durableM   atomic.Pointer[durableMark]
	tallyPub   atomic.Pointer[Tally]
	// marks: the logger's watermarks as of its latest checkpoint (read
	// before a snapshot's states: acks never report more than it holds).
	marks atomic.Pointer[map[string]SubPubState]
	// coreDone: the publishers whose end the core has taken in, once it
	// says the subscriber is finished; the logger finishes when its tally
	// has applied them.
	coreDone atomic.Pointer[[]string]
	durables chan map[string]SubPubState // durable watermarks → receive (capacity 1, newest wins)

	received  atomic.Uint64 // values taken into the pipeline
	dups      atomic.Uint64 // values dropped as duplicates
	stale     atomic.Uint64 // values dropped from stale epochs
	gaps      atomic.Uint64 // batches dropped for a gap
	bad       atomic.Uint64 // undecodable messages
	processed atomic.Uint64 // values through the worker
	panics    atomic.Uint64 // injected panics
	acksOut   atomic.Uint64
	hellosOut atomic.Uint64
	rejects   atomic.Pointer[map[string]uint64]
	// beatDrops: the core's BeatDrops, for metrics; latencyClamped: samples
	// clamped to 0 by the logger.
	beatDrops      atomic.Pointer[map[string]uint64]
	latencyClamped atomic.Uint64
	// First and last time this incarnation's logger applied a value
	// (unix ns; 0: none), for throughput figures.
	firstApply atomic.Int64
	lastApply  atomic.Int64
	applied    atomic.Uint64 // logger batches applied (snapshot trigger)

	connsMu sync.Mutex
	conns   map[string]*ackConn
}

func newSubscriber(p *Pod) (*subscriber, error) {
	s := &subscriber{
		p: p, log: p.log,
		work:     &workerState{},
		logst:    &loggerState{Tally: NewTally()},
		finished: make(chan struct{}),
		durables: make(chan map[string]SubPubState, 1),
		conns:    map[string]*ackConn{},
	}
	s.tallyPub.Store(NewTally())
	s.rejects.Store(&map[string]uint64{})
	s.beatDrops.Store(&map[string]uint64{})
	return s, nil
}

func (s *subscriber) build(g *actors.Graph, states map[string][]byte) error {
	s.items = actors.NewChan[segment]("items", 1024)
	s.results = actors.NewChan[segment]("results", 1024)
	if b, ok := states[actorLogger]; ok {
		// Decoded into a fresh value and validated before it replaces
		// anything; a bad state fails the restore (never a panic).
		ls, err := decodeLoggerState(b)
		if err != nil {
			return err
		}
		*s.logst = *ls
	}
	// The core's watermarks are derived from the tally: one consistent cut.
	cs := s.logst.Tally.CoreState()
	core, err := NewSubCore(SubCoreConfig{}, &cs)
	if err != nil {
		return err
	}
	s.core = core
	m := cs.Pubs
	s.marks.Store(&m)
	specs := []actors.Spec{
		{Name: actorReceive, Run: s.receive, Outputs: []actors.Port{s.items}},
		{Name: actorWorker, Run: s.worker, State: s.work, Inputs: []actors.Input{s.items}, Outputs: []actors.Port{s.results},
			// Injected panics come often: a larger budget than the graph's.
			MaxRestarts: 1000, RestartWindow: 10 * time.Second},
		{Name: actorLogger, Run: s.logger, State: s.logst, Inputs: []actors.Input{s.results}},
	}
	for _, sp := range specs {
		if err := g.Add(sp); err != nil {
			return err
		}
	}
	for pub, pt := range s.logst.Tally.Pubs {
		s.log.Info("subscriber: restored", "publisher", pub, "epoch", pt.Epoch, "last_seq", pt.LastSeq, "count", pt.Count, "end_seq", pt.EndSeq)
	}
	s.tallyPub.Store(s.logst.Tally.Clone())
	return nil
}

// receive is the thin shell around the SubCore: it polls the data stream
// (only while the pipeline has room for what a poll can bring), has p.auth
// authenticate and admit each message, lets the core decide, hands what is
// new to the worker as one segment per batch and only then advances the
// core's watermark; and it sends the hellos and acks the core schedules.
func (s *subscriber) receive(ctx *actors.Context) error {
	p := s.p
	c := s.core
	epoch := p.epoch.Load()
	var (
		b       codec.Batch
		ctl     codec.Control
		viewVer uint64
		msg     []byte
		effects []SubEffect
		idle    time.Duration
		timer   = time.NewTimer(time.Hour)
		lastRej time.Time
	)
	defer timer.Stop()
	hand := func(seg segment, n uint64) bool {
		if !s.items.TrySend(seg) {
			// Rare: polls are bounded by the room left, but held
			// batches a message releases take room too. The watermark
			// did not move, so the values come again (or stay held).
			s.pool.put(seg.Values)
			return false
		}
		s.received.Add(n)
		return true
	}
	handler := func(m []byte, _ transport.Header) {
		now := time.Now()
		body, ok := p.auth.body(m)
		if !ok {
			return
		}
		k, err := codec.Peek(body)
		if err != nil {
			s.bad.Add(1)
			return
		}
		switch k {
		case codec.KindBatch:
			if codec.DecodeBatch(body, &b) != nil {
				s.bad.Add(1)
				return
			}
			if !p.auth.admitted(m, b.Publisher, b.Epoch, cluster.RolePublisher, &s.stale, uint64(len(b.Values))) {
				return
			}
			v, skip := c.OnBatch(now, b.Publisher, b.Epoch, b.FirstSeq, len(b.Values))
			switch v {
			case Accept:
				vals := s.pool.get(len(b.Values) - skip)
				copy(vals, b.Values[skip:])
				seg := segment{Kind: itemValue, Pub: b.Publisher, Epoch: b.Epoch, First: b.FirstSeq + uint64(skip), Last: b.LastSeq(), Values: vals,
					Beat: unixNano(c.CheckBeat(now, b.Beat))}
				if hand(seg, uint64(len(vals))) {
					c.Advance(b.Publisher, b.Epoch, b.LastSeq())
					s.dups.Add(uint64(skip))
					// Batches held above the gap this one filled follow it
					// (one that cannot be handed on stays held).
					for {
						h, skip, ok := c.Held(b.Publisher)
						if !ok {
							break
						}
						vals := s.pool.get(len(h.Values) - skip)
						copy(vals, h.Values[skip:])
						seg := segment{Kind: itemValue, Pub: b.Publisher, Epoch: h.Epoch, First: h.First + uint64(skip), Last: h.Last(), Values: vals,
							Beat: unixNano(c.CheckBeat(now, h.Beat))}
						if !hand(seg, uint64(len(vals))) {
							break
						}
						c.Advance(b.Publisher, h.Epoch, h.Last())
						s.dups.Add(uint64(skip))
					}
				}
			case Duplicate:
				s.dups.Add(uint64(len(b.Values)))
			case Gap:
				s.gaps.Add(1)
				c.Hold(b.Publisher, b.Epoch, b.FirstSeq, b.Values, b.Beat)
			case Rejected:
				s.stale.Add(uint64(len(b.Values)))
			}
		case codec.KindControl:
			if codec.DecodeControl(body, &ctl) != nil {
				s.bad.Add(1)
				return
			}
			if !p.auth.admitted(m, ctl.NodeID, ctl.Epoch, cluster.RolePublisher, &s.stale, 1) {
				return
			}
			switch ctl.Type {
			case codec.ControlEndOfStream:
				switch c.OnEnd(now, ctl.NodeID, ctl.Epoch, ctl.Seq) {
				case Accept:
					if !hand(segment{Kind: itemEnd, Pub: ctl.NodeID, Epoch: ctl.Epoch, Last: ctl.Seq}, 0) {
						c.Unend(ctl.NodeID)
					}
				case Gap:
					s.gaps.Add(1)
				}
			case codec.ControlReleased:
				if from, ok := c.OnReleased(now, ctl.NodeID, ctl.Epoch, ctl.Seq); ok {
					s.log.Error("receive: publisher no longer has values this subscriber never got (lost)", "publisher", ctl.NodeID, "from", from, "to", ctl.Seq)
					if hand(segment{Kind: itemSkip, Pub: ctl.NodeID, Epoch: ctl.Epoch, First: from, Last: ctl.Seq}, 0) {
						c.Advance(ctl.NodeID, ctl.Epoch, ctl.Seq)
					}
				}
			default:
				s.bad.Add(1)
			}
		default:
			s.bad.Add(1)
		}
	}
	for {
		if ctx.IsStopping() {
			return nil
		}
		now := time.Now()
		work := 0
		// Membership, when it changed.
		members, ver, viewChanged := p.view.Watch()
		if ver != viewVer {
			viewVer = ver
			c.SetMembers(now, s.syncMembers(members))
			work++
		}
		// Durable watermarks from the snapshot loop.
		select {
		case d := <-s.durables:
			c.Durable(d)
			work++
		default:
		}
		// Poll only as many messages as the pipeline has room for (each
		// message becomes at most one segment): nothing taken in is ever
		// held outside the channel.
		if room := s.items.Cap() - s.items.Len(); room > 0 {
			work += p.sub.Poll(handler, min(room, 64))
		}
		// Hellos and acks.
		effects = c.Tick(now, effects[:0])
		work += s.sendControl(now, epoch, effects, &msg)
		if c.Finished(p.cfg.MinPublishers) && s.coreDone.Load() == nil {
			ids := c.Publishers()
			s.coreDone.Store(&ids)
			s.checkDone(s.tallyPub.Load())
		}
		if now.Sub(lastRej) >= 100*time.Millisecond {
			r := c.Rejects()
			s.rejects.Store(&r)
			bd := c.BeatDrops()
			s.beatDrops.Store(&bd)
			lastRej = now
		}
		if work > 0 {
			idle = 0
			continue
		}
		idle = min(max(2*idle, 50*time.Microsecond), time.Millisecond)
		timer.Reset(idle)
		select {
		case <-ctx.Stopping():
		case <-p.sub.Notify():
		case <-viewChanged:
		case <-timer.C:
		}
	}
}

// ackTerm: the ack stream carries a few small messages a second, so its
// publication (and the publisher's image of it) uses the smallest term:
// 3×64 KiB instead of 3×4 MiB on each side. Its linger is short for the
// reason given at dataTerm.
const ackTerm = "|term-length=65536|linger=500ms"

// syncMembers keeps one reverse publication per live publisher and returns
// the live publishers for the core.
func (s *subscriber) syncMembers(members []cluster.Member) []Peer {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	var peers []Peer
	seen := map[string]bool{}
	for _, m := range members {
		if m.Role != cluster.RolePublisher || m.Self {
			continue
		}
		peers = append(peers, Peer{ID: m.NodeID, Epoch: m.Epoch, Endpoint: m.DataEndpoint})
		seen[m.NodeID] = true
		c := s.conns[m.NodeID]
		if c == nil {
			c = &ackConn{id: m.NodeID}
			s.conns[m.NodeID] = c
		}
		if c.endpoint != m.DataEndpoint || c.pub == nil {
			if c.pub != nil {
				if err := c.pub.Close(); err != nil {
					s.log.Warn("receive: close ack publication", "publisher", m.NodeID, "err", err)
				}
				c.pub = nil
			}
			pub, err := s.p.driver.AddPublication(channelURI(m.DataEndpoint)+ackTerm, AckStream)
			if err != nil {
				s.log.Error("receive: ack publication", "publisher", m.NodeID, "endpoint", m.DataEndpoint, "err", err)
				continue
			}
			c.pub, c.endpoint = pub, m.DataEndpoint
		}
		if c.epoch != m.Epoch {
			s.log.Info("receive: publisher", "publisher", m.NodeID, "epoch", m.Epoch, "endpoint", m.DataEndpoint)
			c.epoch = m.Epoch
		}
	}
	for id, c := range s.conns {
		if !seen[id] && c.pub != nil {
			if err := c.pub.Close(); err != nil {
				s.log.Warn("receive: close ack publication", "publisher", id, "err", err)
			}
			c.pub, c.endpoint = nil, ""
			s.log.Info("receive: publisher left", "publisher", id)
		}
	}
	return peers
}

// sendControl sends the hellos and acks the core scheduled; it returns the
// messages sent.
func (s *subscriber) sendControl(now time.Time, epoch uint64, effects []SubEffect, msg *[]byte) int {
	if len(effects) == 0 {
		return 0
	}
	sent := 0
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	for _, e := range effects {
		c := s.conns[e.To]
		if c == nil || c.pub == nil {
			continue
		}
		if s.offerControl(c, epoch, e, msg) == nil {
			s.core.Sent(now, e)
			sent++
		}
	}
	return sent
}

// offerControl encodes, seals and offers one hello or ack. Caller holds
// connsMu.
func (s *subscriber) offerControl(c *ackConn, epoch uint64, e SubEffect, msg *[]byte) error {
	var err error
	switch e.Kind {
	case SendHello:
		*msg, err = codec.AppendControl((*msg)[:0], &codec.Control{Type: codec.ControlHello, NodeID: s.p.id, Epoch: epoch, Seq: e.Seq})
	default:
		*msg, err = codec.AppendAck((*msg)[:0], &codec.Ack{Subscriber: s.p.id, SubscriberEpoch: epoch, Publisher: e.To, PublisherEpoch: e.Epoch, Committed: e.Seq})
	}
	if err == nil {
		*msg, err = s.p.auth.seal(*msg, c.id, c.epoch)
	}
	if err != nil {
		s.log.Error("receive: encode control", "publisher", c.id, "err", err)
		return err
	}
	if _, err := c.pub.Offer(*msg); err != nil {
		return err
	}
	if e.Kind == SendHello {
		s.hellosOut.Add(1)
	} else {
		s.acksOut.Add(1)
	}
	return nil
}

// worker runs FizzBuzz a segment at a time, with failure injection.
func (s *subscriber) worker(ctx *actors.Context) error {
	st := actors.StateOf[workerState](ctx)
	cfg := s.p.cfg
	buf := make([]segment, 64)
	out := make([]segment, 0, 128)
	if st.NextPanic == 0 && cfg.PanicEvery > 0 {
		st.NextPanic = st.Done + cfg.PanicEvery
	}
	if f := s.items.Forwarded(); f > 0 {
		// Crashed between SendFor and Commit: the output went out.
		s.items.Commit(f)
		st.HasCur = false
	}
	for {
		n := s.items.PeekBatch(buf)
		head := s.items.HeadPos()
		if st.HasCur && st.CurPos+1 == head {
			// The runtime moved Cur to the dead letters (the head passed it
			// without a commit of ours): report the value that crashed the
			// worker, and process the rest of the segment.
			out = s.splitDead(out[:0], st)
			st.HasCur = false
			if !s.results.SendFor(ctx, s.items, 0, out) {
				return nil
			}
			continue
		}
		if n == 0 {
			if !s.items.WaitAvailable(ctx, 1) {
				return nil
			}
			continue
		}
		out = out[:0]
		values := uint64(0)
		for i, seg := range buf[:n] {
			if seg.Kind == itemValue {
				st.Cur, st.CurPos, st.HasCur = seg, head+uint64(i), true
				seg.Counts = s.classify(st, seg.Values, st.Done+values, true)
				values += uint64(len(seg.Values))
			}
			out = append(out, seg)
		}
		if !s.results.SendFor(ctx, s.items, n, out) {
			return nil
		}
		st.HasCur = false
		st.Done += values
		s.items.Commit(n)
		s.processed.Add(values)
		s.p.markDelivering()
	}
}

// classify counts a batch of values by FizzBuzz category. With inject, it
// panics where the failure injection says (every PanicEvery values, and on
// the showstopper value); st.CurIdx says which value it was working on.
func (s *subscriber) classify(st *workerState, vals []uint64, done uint64, inject bool) fizzbuzz.Counts {
	cfg := s.p.cfg
	var k fizzbuzz.Counts
	for i, v := range vals {
		if inject {
			st.CurIdx = i
			if cfg.PanicEvery > 0 && done+uint64(i)+1 >= st.NextPanic && st.PanicPos != st.CurPos+1 {
				st.PanicPos = st.CurPos + 1
				st.NextPanic = done + uint64(i) + 1 + cfg.PanicEvery
				st.Panics++
				s.panics.Add(1)
				panic(fmt.Sprintf("injected: panic every %d values (value %d)", cfg.PanicEvery, v))
			}
			if cfg.Showstopper != 0 && v == cfg.Showstopper {
				panic(fmt.Sprintf("injected: showstopper value %d", v))
			}
		}
		k.Add(v)
	}
	return k
}

// splitDead turns the dead-lettered segment st.Cur into what the logger
// needs: its values before the one that crashed the worker, that value as
// dead, and the values after it.
func (s *subscriber) splitDead(out []segment, st *workerState) []segment {
	cur, i := st.Cur, st.CurIdx
	if i >= len(cur.Values) {
		i = len(cur.Values) - 1
	}
	if i < 0 {
		return out
	}
	part := func(vals []uint64, first uint64) {
		if len(vals) == 0 {
			return
		}
		cp := s.pool.get(len(vals))
		copy(cp, vals)
		out = append(out, segment{Kind: itemValue, Pub: cur.Pub, Epoch: cur.Epoch, First: first, Last: first + uint64(len(vals)) - 1,
			Values: cp, Counts: s.classify(st, vals, 0, false), Beat: cur.Beat})
	}
	part(cur.Values[:i], cur.First)
	dead := s.pool.get(1)
	dead[0] = cur.Values[i]
	out = append(out, segment{Kind: itemDead, Pub: cur.Pub, Epoch: cur.Epoch, First: cur.First + uint64(i), Last: cur.First + uint64(i), Values: dead})
	part(cur.Values[i+1:], cur.First+uint64(i)+1)
	s.processed.Add(uint64(len(cur.Values)))
	s.p.markDelivering()
	return out
}

// logger applies results to the tally a segment at a time and logs progress.
func (s *subscriber) logger(ctx *actors.Context) error {
	st := actors.StateOf[loggerState](ctx)
	log := s.log.With("actor", actorLogger)
	buf := make([]segment, 256)
	debug := log.Enabled(context.Background(), slog.LevelDebug)
	var lastCk, lastPub, lastLog time.Time
	dirty := false
	publish := func(now time.Time) {
		t := st.Tally.Clone()
		s.tallyPub.Store(t)
		lastPub = now
		s.checkDone(t)
	}
	checkpoint := func() error {
		if err := ctx.Checkpoint(); err != nil {
			return err
		}
		m := st.Tally.CoreState().Pubs
		s.marks.Store(&m)
		dirty = false
		return nil
	}
	for {
		n := s.results.PeekBatch(buf)
		now := time.Now()
		if n == 0 {
			// Idle: checkpoint and publish only what changed since.
			if dirty {
				if err := checkpoint(); err != nil {
					return err
				}
				publish(now)
			}
			if !s.results.WaitAvailable(ctx, 1) {
				if dirty {
					return checkpoint()
				}
				return nil
			}
			continue
		}
		head := s.results.HeadPos()
		ended := false
		for i, seg := range buf[:n] {
			pos := head + uint64(i)
			if pos < st.NextPos {
				continue // applied before a crash, not yet committed
			}
			switch seg.Kind {
			case itemValue:
				st.Tally.ApplyBatch(seg.Pub, seg.Epoch, seg.First, seg.Last, seg.Counts)
				st.Lines += uint64(len(seg.Values))
				if d, clamped, ok := deliveryLatency(now, fromUnixNano(seg.Beat)); ok {
					s.p.hist.latency.Observe(d.Seconds())
					if clamped {
						s.latencyClamped.Add(1)
					}
				}
				if debug {
					for j, v := range seg.Values {
						log.Debug(Line(v, Classify(v)), "publisher", seg.Pub, "seq", seg.First+uint64(j))
					}
				}
			case itemDead:
				st.Tally.DeadLetter(seg.Pub, seg.Epoch, seg.First, seg.Values[0])
				log.Warn("logger: value dead-lettered by the worker", "publisher", seg.Pub, "seq", seg.First, "value", seg.Values[0])
			case itemSkip:
				st.Tally.Skip(seg.Pub, seg.Epoch, seg.First, seg.Last)
			case itemEnd:
				st.Tally.End(seg.Pub, seg.Epoch, seg.Last)
				ended = true
				log.Info("logger: end of stream", "publisher", seg.Pub, "end_seq", seg.Last, "ended", st.Tally.Ended(seg.Pub))
			}
			st.NextPos = pos + 1
		}
		for _, seg := range buf[:n] {
			s.pool.put(seg.Values)
		}
		clear(buf[:n])
		s.results.Commit(n)
		s.applied.Add(1)
		if ns := now.UnixNano(); s.firstApply.Load() == 0 {
			s.firstApply.Store(ns)
			s.lastApply.Store(ns)
		} else {
			s.lastApply.Store(ns)
		}
		ctx.MarkDirty()
		dirty = true
		if now.Sub(lastCk) >= fastSnapshot || ended {
			if err := checkpoint(); err != nil {
				return err
			}
			lastCk = now
		}
		if now.Sub(lastPub) >= 100*time.Millisecond || ended {
			publish(now)
		}
		if now.Sub(lastLog) >= 2*time.Second {
			lastLog = now
			s.logProgress(log, st.Tally)
		}
	}
}

func (s *subscriber) logProgress(log *slog.Logger, t *Tally) {
	ids := make([]string, 0, len(t.Pubs))
	for id := range t.Pubs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		pt := t.Pubs[id]
		log.Info("progress", "publisher", id, "last_seq", pt.LastSeq, "count", pt.Count, "fizz", pt.Fizz, "buzz", pt.Buzz,
			"fizzbuzz", pt.FizzBuzz, "values", pt.Plain, "dead", pt.DeadCount, "end_seq", pt.EndSeq)
	}
}

// checkDone closes finished once the core said the subscriber is finished
// (at least MinPublishers ended, every live or known publisher ended) and
// the logger's tally t has applied each of those ends.
func (s *subscriber) checkDone(t *Tally) {
	ids := s.coreDone.Load()
	if ids == nil {
		return
	}
	for _, id := range *ids {
		if !t.Ended(id) {
			return
		}
	}
	s.finishOnce.Do(func() { close(s.finished) })
}

// preSnapshot is called before the snapshot's states are taken: the
// logger's watermarks as of its latest checkpoint, which the states hold
// (or something newer).
func (s *subscriber) preSnapshot() map[string]SubPubState { return *s.marks.Load() }

// durable is called once a snapshot taken after preSnapshot returned marks
// is durable: those watermarks are what acks may now report.
func (s *subscriber) durable(marks map[string]SubPubState) {
	dm := &durableMark{committed: map[string]pubCommit{}}
	if old := s.durableM.Load(); old != nil {
		dm.version = old.version + 1
	} else {
		dm.version = 1
	}
	for id, m := range marks {
		dm.committed[id] = pubCommit{Epoch: m.Epoch, Seq: m.Taken}
	}
	s.durableM.Store(dm)
	// Newest wins: replace an undelivered older one.
	select {
	case <-s.durables:
	default:
	}
	select {
	case s.durables <- marks:
	default:
	}
}

// finish runs after the graph stopped: final acks (when the final snapshot
// is durable), then the reverse publications close (drain, end of stream).
func (s *subscriber) finish(durable bool) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	select {
	case d := <-s.durables:
		s.core.Durable(d)
	default:
	}
	epoch := s.p.epoch.Load()
	var msg []byte
	acks := map[string]SubEffect{}
	for _, e := range s.core.FinalAcks() {
		acks[e.To] = e
	}
	for _, c := range s.conns {
		if c.pub == nil {
			continue
		}
		if e, ok := acks[c.id]; ok && durable && s.durableM.Load() != nil {
			deadline := time.Now().Add(time.Second)
			for {
				err := s.offerControl(c, epoch, e, &msg)
				if err == nil || !errors.Is(err, transport.ErrBackPressured) || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		if err := c.pub.Close(); err != nil {
			s.log.Warn("receive: close ack publication", "publisher", c.id, "err", err)
		}
		c.pub = nil
	}
}

// tallyNow returns the logger's tally (call after the graph stopped).
func (s *subscriber) tallyNow() *Tally { return s.logst.Tally.Clone() }
