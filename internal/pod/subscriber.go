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
	itemValue itemKind = iota
	itemEnd            // Seq: the stream's last seq
	itemSkip           // Value..Seq: values the publisher no longer had
	itemDead           // a value the worker could not process
)

// item flows receive → worker → logger.
type item struct {
	Kind  itemKind
	Cat   Category
	Pub   string
	Epoch uint64
	Seq   uint64
	Value uint64
}

// workerState survives the worker's restarts (not snapshotted: positions are
// per process). Cur is the value being processed; if the runtime dead-letters
// it, the head moves past CurPos and the worker reports it to the logger.
type workerState struct {
	Cur        item
	CurPos     uint64
	HasCur     bool
	Dead       []item // detected dead letters not yet forwarded
	SincePanic uint64
	Panics     uint64
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
	ackedSeq     uint64 // last committed seq acknowledged
	ackedVer     uint64
	lastAck      time.Time
	wantHello    bool
	lastHello    time.Time
	lastData     time.Time
}

type subscriber struct {
	p       *Pod
	log     *slog.Logger
	items   *actors.Chan[item]
	results *actors.Chan[item]
	work    *workerState
	logst   *loggerState
	dedup   *Dedup

	finished   chan struct{}
	finishOnce sync.Once
	durableM   atomic.Pointer[durableMark]
	tallyPub   atomic.Pointer[Tally]

	received  atomic.Uint64 // values taken into the pipeline
	dups      atomic.Uint64 // values dropped as duplicates
	stale     atomic.Uint64 // values dropped from stale epochs
	gaps      atomic.Uint64 // batches dropped for a gap
	bad       atomic.Uint64 // undecodable messages
	processed atomic.Uint64 // values through the worker
	panics    atomic.Uint64 // injected panics
	acksOut   atomic.Uint64
	hellosOut atomic.Uint64
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
		dedup:    NewDedup(),
		finished: make(chan struct{}),
		conns:    map[string]*ackConn{},
	}
	s.tallyPub.Store(NewTally())
	return s, nil
}

func (s *subscriber) build(g *actors.Graph, states map[string][]byte) error {
	s.items = actors.NewChan[item]("items", 8192)
	s.results = actors.NewChan[item]("results", 8192)
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
	if b, ok := states[actorLogger]; ok {
		if err := g.RestoreStates(map[string][]byte{actorLogger: b}); err != nil {
			return err
		}
	}
	if s.logst.Tally == nil || s.logst.Tally.Pubs == nil {
		s.logst.Tally = NewTally()
	}
	// The receive watermark is derived from the tally: one consistent cut.
	for pub, pt := range s.logst.Tally.Pubs {
		s.dedup.Set(pub, pt.Epoch, pt.LastSeq)
		s.log.Info("subscriber: restored", "publisher", pub, "epoch", pt.Epoch, "last_seq", pt.LastSeq, "count", pt.Count, "end_seq", pt.EndSeq)
	}
	s.tallyPub.Store(s.logst.Tally.Clone())
	return nil
}

// receive polls the data stream, dedups, and feeds the pipeline; it also
// owns the reverse streams (acks and hellos) to the publishers.
func (s *subscriber) receive(ctx *actors.Context) error {
	p := s.p
	epoch := p.epoch.Load()
	var (
		b       codec.Batch
		ctl     codec.Control
		pending []item
		pi      int
		viewVer uint64
		msg     []byte
		idle    time.Duration
		timer   = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
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
			if !p.clus.Epochs().Accept(b.Publisher, b.Epoch) {
				s.stale.Add(uint64(len(b.Values)))
				return
			}
			v, skip := s.dedup.Check(b.Publisher, b.Epoch, b.FirstSeq, len(b.Values))
			s.noteData(b.Publisher, now)
			switch v {
			case Accept:
				for i, val := range b.Values[skip:] {
					pending = append(pending, item{Kind: itemValue, Pub: b.Publisher, Epoch: b.Epoch, Seq: b.FirstSeq + uint64(skip+i), Value: val})
				}
				s.dedup.Advance(b.Publisher, b.LastSeq())
				s.dups.Add(uint64(skip))
			case Duplicate:
				s.dups.Add(uint64(len(b.Values)))
			case StaleEpoch:
				s.stale.Add(uint64(len(b.Values)))
			case Gap:
				s.gaps.Add(1)
				s.wantHello(b.Publisher)
			}
		case codec.KindControl:
			if codec.DecodeControl(body, &ctl) != nil {
				s.bad.Add(1)
				return
			}
			if !p.auth.admitted(m, ctl.NodeID, ctl.Epoch, cluster.RolePublisher, &s.stale, 1) {
				return
			}
			if !p.clus.Epochs().Accept(ctl.NodeID, ctl.Epoch) {
				s.stale.Add(1)
				return
			}
			mk := s.dedup.Mark(ctl.NodeID)
			var wm uint64
			if mk != nil {
				if ctl.Epoch < mk.Epoch {
					s.stale.Add(1)
					return
				}
				wm = mk.Watermark
			}
			switch ctl.Type {
			case codec.ControlEndOfStream:
				if wm >= ctl.Seq {
					pending = append(pending, item{Kind: itemEnd, Pub: ctl.NodeID, Epoch: ctl.Epoch, Seq: ctl.Seq})
				} else {
					s.gaps.Add(1)
					s.wantHello(ctl.NodeID)
				}
			case codec.ControlHello:
				// The publisher no longer has values up to ctl.Seq.
				if wm < ctl.Seq {
					s.log.Error("receive: publisher no longer has values this subscriber never got", "publisher", ctl.NodeID, "from", wm+1, "to", ctl.Seq)
					pending = append(pending, item{Kind: itemSkip, Pub: ctl.NodeID, Epoch: ctl.Epoch, Value: wm + 1, Seq: ctl.Seq})
					s.dedup.Advance(ctl.NodeID, ctl.Seq)
				}
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
		// Hand on what was received before polling more: the pending
		// items survive restarts of this behaviour (closure state).
		if pi < len(pending) {
			k := s.items.SendBatch(pending[pi:])
			pi += k
			work += k
			if pi == len(pending) {
				for _, it := range pending {
					if it.Kind == itemValue {
						s.received.Add(1)
					}
				}
				pending, pi = pending[:0], 0
			}
		}
		if pi == len(pending) {
			work += p.sub.Poll(handler, 16)
		}
		if members, ver := p.view.Load(); ver != viewVer {
			viewVer = ver
			s.syncMembers(now, members)
			work++
		}
		work += s.sendControl(now, epoch, &msg)
		if work > 0 {
			idle = 0
			continue
		}
		idle = min(max(2*idle, 50*time.Microsecond), time.Millisecond)
		timer.Reset(idle)
		select {
		case <-ctx.Stopping():
		case <-p.sub.Notify():
		case <-timer.C:
		}
	}
}

func (s *subscriber) noteData(pub string, now time.Time) {
	s.connsMu.Lock()
	if c := s.conns[pub]; c != nil {
		c.lastData = now
	}
	s.connsMu.Unlock()
}

func (s *subscriber) wantHello(pub string) {
	s.connsMu.Lock()
	if c := s.conns[pub]; c != nil {
		c.wantHello = true
	}
	s.connsMu.Unlock()
}

// syncMembers keeps one reverse publication per live publisher.
func (s *subscriber) syncMembers(now time.Time, members []cluster.Member) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	seen := map[string]bool{}
	for _, m := range members {
		if m.Role != cluster.RolePublisher || m.Self {
			continue
		}
		seen[m.NodeID] = true
		c := s.conns[m.NodeID]
		if c == nil {
			c = &ackConn{id: m.NodeID}
			s.conns[m.NodeID] = c
		}
		if c.endpoint != m.DataEndpoint || c.epoch != m.Epoch || c.pub == nil {
			if c.endpoint != m.DataEndpoint || c.pub == nil {
				if c.pub != nil {
					_ = c.pub.Close()
					c.pub = nil
				}
				pub, err := s.p.driver.AddPublication(channelURI(m.DataEndpoint), AckStream)
				if err != nil {
					s.log.Error("receive: ack publication", "publisher", m.NodeID, "endpoint", m.DataEndpoint, "err", err)
					continue
				}
				c.pub, c.endpoint = pub, m.DataEndpoint
			}
			s.log.Info("receive: publisher", "publisher", m.NodeID, "epoch", m.Epoch, "endpoint", m.DataEndpoint)
			c.epoch = m.Epoch
			// A new incarnation must learn where this subscriber stands.
			c.wantHello, c.lastHello, c.lastData, c.ackedVer = true, time.Time{}, now, 0
		}
	}
	for id, c := range s.conns {
		if !seen[id] && c.pub != nil {
			_ = c.pub.Close()
			c.pub = nil
			c.endpoint = ""
			s.log.Info("receive: publisher left", "publisher", id)
		}
	}
}

// sendControl sends due hellos and acks; it returns the messages sent.
func (s *subscriber) sendControl(now time.Time, epoch uint64, msg *[]byte) int {
	dm := s.durableM.Load()
	sent := 0
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	for _, c := range s.conns {
		if c.pub == nil {
			continue
		}
		mk := s.dedup.Mark(c.id)
		var wm uint64
		if mk != nil {
			wm = mk.Watermark
		}
		ended := s.endedFor(c.id)
		// A hello asks the publisher to replay from wm+1: on a new
		// incarnation, after a gap, and when a stream that has not ended
		// went quiet.
		quiet := !ended && now.Sub(c.lastData) > 2*time.Second && now.Sub(c.lastHello) > 2*time.Second
		if (c.wantHello && now.Sub(c.lastHello) >= 100*time.Millisecond) || quiet {
			ctl := codec.Control{Type: codec.ControlHello, NodeID: s.p.id, Epoch: epoch, Seq: wm}
			b, _ := codec.AppendControl((*msg)[:0], &ctl)
			b, err := s.p.auth.seal(b, c.id, c.epoch)
			*msg = b
			if err != nil {
				continue
			}
			if _, err := c.pub.Offer(b); err == nil {
				c.wantHello, c.lastHello = false, now
				s.hellosOut.Add(1)
				sent++
			}
		}
		if dm == nil {
			continue
		}
		pc := dm.committed[c.id]
		if dm.version != c.ackedVer || now.Sub(c.lastAck) >= time.Second {
			ack := codec.Ack{Subscriber: s.p.id, SubscriberEpoch: epoch, Publisher: c.id, PublisherEpoch: pc.Epoch, Committed: pc.Seq}
			b, err := codec.AppendAck((*msg)[:0], &ack)
			if err == nil {
				b, err = s.p.auth.seal(b, c.id, c.epoch)
			}
			if err != nil {
				continue
			}
			*msg = b
			if _, err := c.pub.Offer(b); err == nil {
				c.ackedVer, c.ackedSeq, c.lastAck = dm.version, pc.Seq, now
				s.acksOut.Add(1)
				sent++
			}
		}
	}
	return sent
}

func (s *subscriber) endedFor(pub string) bool {
	return s.tallyPub.Load().Ended(pub)
}

// worker runs FizzBuzz, with failure injection.
func (s *subscriber) worker(ctx *actors.Context) error {
	st := actors.StateOf[workerState](ctx)
	cfg := s.p.cfg
	buf := make([]item, 256)
	out := make([]item, 0, 512)
	if f := s.items.Forwarded(); f > 0 {
		// Crashed between SendFor and Commit: the output went out.
		s.items.Commit(f)
		st.HasCur, st.Dead = false, st.Dead[:0]
	}
	for {
		n := s.items.PeekBatch(buf)
		head := s.items.HeadPos()
		if st.HasCur && st.CurPos+1 == head {
			// The runtime moved Cur to the dead letters (the head passed it
			// without a commit of ours).
			st.Dead = append(st.Dead, item{Kind: itemDead, Pub: st.Cur.Pub, Epoch: st.Cur.Epoch, Seq: st.Cur.Seq, Value: st.Cur.Value})
			st.HasCur = false
		}
		if n == 0 {
			if len(st.Dead) > 0 {
				if !s.results.SendFor(ctx, s.items, 0, st.Dead) {
					return nil
				}
				st.Dead = st.Dead[:0]
			}
			if !s.items.WaitAvailable(ctx, 1) {
				return nil
			}
			continue
		}
		out = append(out[:0], st.Dead...)
		for i, it := range buf[:n] {
			if it.Kind == itemValue {
				st.Cur, st.CurPos, st.HasCur = it, head+uint64(i), true
				if cfg.PanicEvery > 0 {
					st.SincePanic++
					if st.SincePanic >= cfg.PanicEvery {
						st.SincePanic = 0
						st.Panics++
						s.panics.Add(1)
						panic(fmt.Sprintf("injected: panic every %d values (value %d of %s)", cfg.PanicEvery, it.Value, it.Pub))
					}
				}
				if cfg.Showstopper != 0 && it.Value == cfg.Showstopper {
					panic(fmt.Sprintf("injected: showstopper value %d of %s", it.Value, it.Pub))
				}
				it.Cat = Classify(it.Value)
			}
			out = append(out, it)
		}
		if !s.results.SendFor(ctx, s.items, n, out) {
			return nil
		}
		st.HasCur, st.Dead = false, st.Dead[:0]
		s.items.Commit(n)
		for _, it := range buf[:n] {
			if it.Kind == itemValue {
				s.processed.Add(1)
			}
		}
	}
}

// logger applies results to the tally and logs progress.
func (s *subscriber) logger(ctx *actors.Context) error {
	st := actors.StateOf[loggerState](ctx)
	log := s.log.With("actor", actorLogger)
	buf := make([]item, 1024)
	debug := log.Enabled(context.Background(), slog.LevelDebug)
	var lastCk, lastPub, lastLog time.Time
	publish := func(now time.Time) {
		s.tallyPub.Store(st.Tally.Clone())
		lastPub = now
		s.checkDone()
	}
	for {
		n := s.results.PeekBatch(buf)
		now := time.Now()
		if n == 0 {
			ctx.MarkDirty()
			_ = ctx.Checkpoint()
			publish(now)
			if !s.results.WaitAvailable(ctx, 1) {
				return nil
			}
			continue
		}
		head := s.results.HeadPos()
		ended := false
		for i, it := range buf[:n] {
			pos := head + uint64(i)
			if pos < st.NextPos {
				continue // applied before a crash, not yet committed
			}
			switch it.Kind {
			case itemValue:
				st.Tally.Apply(it.Pub, it.Epoch, it.Seq, it.Value, it.Cat)
				st.Lines++
				if debug {
					log.Debug(Line(it.Value, it.Cat), "publisher", it.Pub, "seq", it.Seq)
				}
			case itemDead:
				st.Tally.DeadLetter(it.Pub, it.Epoch, it.Seq, it.Value)
				log.Warn("logger: value dead-lettered by the worker", "publisher", it.Pub, "seq", it.Seq, "value", it.Value)
			case itemSkip:
				st.Tally.Skip(it.Pub, it.Epoch, it.Value, it.Seq)
			case itemEnd:
				st.Tally.End(it.Pub, it.Epoch, it.Seq)
				ended = true
				log.Info("logger: end of stream", "publisher", it.Pub, "end_seq", it.Seq, "ended", st.Tally.Ended(it.Pub))
			}
			st.NextPos = pos + 1
		}
		s.results.Commit(n)
		s.applied.Add(1)
		if ns := now.UnixNano(); s.firstApply.Load() == 0 {
			s.firstApply.Store(ns)
			s.lastApply.Store(ns)
		} else {
			s.lastApply.Store(ns)
		}
		ctx.MarkDirty()
		if now.Sub(lastCk) >= 10*time.Millisecond || ended {
			_ = ctx.Checkpoint()
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

// checkDone closes finished when every publisher's stream is complete:
// at least MinPublishers ended, every publisher in the tally ended, and every
// publisher in the live view is in the tally.
func (s *subscriber) checkDone() {
	t := s.tallyPub.Load()
	ended := 0
	for id := range t.Pubs {
		if !t.Ended(id) {
			return
		}
		ended++
	}
	if ended < s.p.cfg.MinPublishers {
		return
	}
	members, _ := s.p.view.Load()
	for _, m := range members {
		if m.Role == cluster.RolePublisher && !t.Ended(m.NodeID) {
			return
		}
	}
	s.finishOnce.Do(func() { close(s.finished) })
}

// durable is called with the states of a durable snapshot: its logger tally
// is what acks may now report.
func (s *subscriber) durable(states map[string][]byte, _ cluster.Durable) {
	b, ok := states[actorLogger]
	if !ok {
		return
	}
	var ls loggerState
	if err := codec.Unmarshal(b, &ls); err != nil || ls.Tally == nil {
		s.log.Error("subscriber: durable snapshot has an unreadable tally", "err", err)
		return
	}
	dm := &durableMark{committed: map[string]pubCommit{}}
	if old := s.durableM.Load(); old != nil {
		dm.version = old.version + 1
	} else {
		dm.version = 1
	}
	for id, pt := range ls.Tally.Pubs {
		dm.committed[id] = pubCommit{Epoch: pt.Epoch, Seq: pt.LastSeq}
	}
	s.durableM.Store(dm)
}

// finish runs after the graph stopped: final acks (when the final snapshot
// is durable), then the reverse publications close (drain, end of stream).
func (s *subscriber) finish(durable bool) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	dm := s.durableM.Load()
	epoch := s.p.epoch.Load()
	var msg []byte
	for _, c := range s.conns {
		if c.pub == nil {
			continue
		}
		if durable && dm != nil {
			pc := dm.committed[c.id]
			ack := codec.Ack{Subscriber: s.p.id, SubscriberEpoch: epoch, Publisher: c.id, PublisherEpoch: pc.Epoch, Committed: pc.Seq}
			b, err := codec.AppendAck(msg[:0], &ack)
			if err == nil {
				b, err = s.p.auth.seal(b, c.id, c.epoch)
			}
			if err == nil {
				msg = b
				deadline := time.Now().Add(time.Second)
				for {
					_, err := c.pub.Offer(b)
					if err == nil || !errors.Is(err, transport.ErrBackPressured) || time.Now().After(deadline) {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
		}
		_ = c.pub.Close()
		c.pub = nil
	}
}

// tallyNow returns the logger's tally (call after the graph stopped).
func (s *subscriber) tallyNow() *Tally { return s.logst.Tally.Clone() }
