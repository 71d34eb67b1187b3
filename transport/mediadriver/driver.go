package mediadriver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// Driver is a running standalone media driver.
type Driver struct {
	cfg Config

	// Owned by the conductor goroutine after New returns.
	cncMap  *cnc.Mapping
	c       *cnc.CnC
	tx      *cnc.Transmitter
	alloc   *cnc.Allocator
	rng     *rand.Rand
	emb     *transport.Driver // created on first UDP use
	clients map[int64]*client
	pubs    map[string]*publication // shared (non-exclusive) publications by key
	allPubs map[int64]*publication  // every publication by its own registration id
	regs    map[int64]*pubReg       // every client registration of a publication
	subs    map[int64]*subscription // by registration id
	udpSubs map[string]*udpSubGroup // embedded subscriptions by channel+stream
	sys     systemCounters
	scratch []byte

	// Created by New; removed by Close.
	createdDir  bool
	createdSubs []string

	closers  sync.WaitGroup // embedded publications closing (lingering)
	stopOnce sync.Once
	stop     chan struct{}
	wake     chan struct{} // capacity 1: data for a UDP subscription
	done     chan struct{}
	closeErr error
}

type systemCounters struct {
	errors, clientTimeouts, invalidCommands []byte
}

type client struct {
	id       int64
	hbID     int32
	hbSlot   []byte
	regs     map[int64]*pubReg
	subs     map[int64]*subscription
	lastSeen int64 // ms, for clients whose counter could not be allocated
}

// pubReg is one client's registration of a (possibly shared) publication.
type pubReg struct {
	id     int64
	client *client
	pub    *publication
}

// New lays out the directory and cnc.dat and starts the conductor.
func New(cfg Config) (*Driver, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	d := &Driver{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid()))),
		clients: map[int64]*client{},
		pubs:    map[string]*publication{},
		allPubs: map[int64]*publication{},
		regs:    map[int64]*pubReg{},
		subs:    map[int64]*subscription{},
		udpSubs: map[string]*udpSubGroup{},
		stop:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	if err := d.layout(); err != nil {
		d.removeCreated()
		return nil, err
	}
	go d.run()
	return d, nil
}

// Dir is the driver's directory.
func (d *Driver) Dir() string { return d.cfg.Dir }

func (d *Driver) layout() error {
	dir := d.cfg.Dir
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("mediadriver: %w", err)
		}
		d.createdDir = true
	}
	path := filepath.Join(dir, cnc.FileName)
	reclaimed, err := d.reclaim(dir)
	if err != nil {
		return err
	}
	for _, sub := range []string{"publications", "images"} {
		p := filepath.Join(dir, sub)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(p, 0o755); err != nil {
				return fmt.Errorf("mediadriver: %w", err)
			}
			d.createdSubs = append(d.createdSubs, p)
		} else if reclaimed {
			// The dead driver's: this one removes it at Close (if empty).
			d.createdSubs = append(d.createdSubs, p)
		}
	}
	meta := cnc.Metadata{
		ToDriverLength:          d.cfg.ToDriverBufferLength + cnc.RingTrailerLength,
		ToClientsLength:         d.cfg.ToClientsBufferLength + cnc.BroadcastTrailerLength,
		CountersMetadataLength:  d.cfg.CounterValuesBufferLength * (cnc.CounterMetadataLength / cnc.CounterValueLength),
		CountersValuesLength:    d.cfg.CounterValuesBufferLength,
		ErrorLogLength:          d.cfg.ErrorLogBufferLength,
		ClientLivenessTimeoutNs: int64(d.cfg.ClientLivenessTimeout),
		StartTimestampMs:        time.Now().UnixMilli(),
		Pid:                     int64(os.Getpid()),
	}
	_ = os.Remove(path)
	m, err := cnc.CreateFile(path, cnc.FileLength(meta, os.Getpagesize()))
	if err != nil {
		return fmt.Errorf("mediadriver: %w", err)
	}
	d.cncMap = m
	// Layout sets the heartbeat before the version makes the file visible.
	c, err := cnc.Layout(m.Data, meta)
	if err != nil {
		return err
	}
	d.c = c
	if d.tx, err = cnc.NewTransmitter(c.ToClients); err != nil {
		return err
	}
	d.alloc = cnc.NewAllocator(c.Counters, 1000, func() int64 { return time.Now().UnixMilli() })
	sys := func(label string) []byte {
		id, err := d.alloc.Allocate(cnc.TypeSystem, nil, label, 0, 0, 0)
		if err != nil {
			return make([]byte, cnc.CounterValueLength)
		}
		s, _ := c.Counters.Slot(id)
		return s
	}
	d.sys.errors = sys("Errors: steadfast mediadriver")
	d.sys.clientTimeouts = sys("Client liveness timeouts")
	d.sys.invalidCommands = sys("Invalid control commands")
	d.cfg.Logger.Info("mediadriver: started", "dir", dir, "pid", os.Getpid())
	return nil
}

func incr(slot []byte) { cnc.AddInt64(slot, 0, 1) }

// reclaim decides, as Aeron's drivers do, whether a cnc.dat already in dir
// belongs to a live driver: if its driver heartbeat is younger than
// DriverTimeout the directory is refused (ErrActive). Otherwise (a stale
// heartbeat: the driver was killed or hung; -1: it shut down; or a file
// that does not even open as a cnc.dat) the directory is reclaimed: the old
// cnc.dat and the log buffers the dead driver left in publications/ and
// images/ are removed. Nothing else in dir is touched.
func (d *Driver) reclaim(dir string) (bool, error) {
	path := filepath.Join(dir, cnc.FileName)
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	var age, pid int64 = -1, 0
	m, err := cnc.MapFile(path)
	if err == nil {
		var c *cnc.CnC
		if c, err = cnc.Open(m.Data); err == nil {
			age, pid = time.Now().UnixMilli()-c.ToDriver.ConsumerHeartbeat(), c.Meta.Pid
		}
		_ = m.Close()
	}
	if err == nil && age < d.cfg.DriverTimeout.Milliseconds() {
		return false, fmt.Errorf("%w: %s (pid %d, heartbeat %d ms old, driver timeout %v)", ErrActive, dir, pid, max(age, 0), d.cfg.DriverTimeout)
	}
	removed := 0
	for _, sub := range []string{"publications", "images"} {
		logs, _ := filepath.Glob(filepath.Join(dir, sub, "*.logbuffer"))
		for _, l := range logs {
			if os.Remove(l) == nil {
				removed++
			}
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("mediadriver: reclaiming %s: %w", dir, err)
	}
	d.cfg.Logger.Warn("mediadriver: reclaimed the directory of a dead driver", "dir", dir, "pid", pid,
		"heartbeat_age_ms", age, "cnc_error", err, "log_buffers_removed", removed)
	return true, nil
}

// Close stops the conductor, closes every publication and subscription
// (UDP ones linger as the embedded driver's Close does), and removes what
// New created: cnc.dat, log buffers, and the directories it made. Safe to
// call twice.
func (d *Driver) Close() error {
	d.stopOnce.Do(func() { close(d.stop) })
	<-d.done
	return d.closeErr
}

// Done is closed once the conductor has stopped.
func (d *Driver) Done() <-chan struct{} { return d.done }

func (d *Driver) shutdown() {
	for _, p := range d.allPubs {
		d.freePublication(p)
	}
	for _, s := range d.subs {
		d.freeSubscription(s)
	}
	if d.emb != nil {
		_ = d.emb.Close()
	}
	d.closers.Wait()
	if d.cncMap != nil {
		// A heartbeat of -1 tells clients the driver shut down (they stop
		// at once instead of after their driver timeout).
		d.c.ToDriver.SetConsumerHeartbeat(-1)
		_ = d.cncMap.Close()
	}
	d.removeCreated()
	d.cfg.Logger.Info("mediadriver: stopped", "dir", d.cfg.Dir)
}

func (d *Driver) removeCreated() {
	if d.cncMap != nil {
		_ = os.Remove(filepath.Join(d.cfg.Dir, cnc.FileName))
	}
	for i := len(d.createdSubs) - 1; i >= 0; i-- {
		_ = os.Remove(d.createdSubs[i])
	}
	if d.createdDir {
		_ = os.Remove(d.cfg.Dir)
	}
}

// run is the conductor duty cycle.
func (d *Driver) run() {
	defer close(d.done)
	defer d.shutdown()
	idle := 0
	lastLiveness := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-d.stop:
			return
		default:
		}
		now := time.Now()
		nowMs := now.UnixMilli()
		d.c.ToDriver.SetConsumerHeartbeat(nowMs)
		work, err := d.c.ToDriver.Read(d.onCommand, 16)
		if err != nil {
			// A corrupt record: skip the whole ring's unread part is not
			// possible safely; count it and go on (the head did not move
			// past it, so report once per cycle at most).
			incr(d.sys.errors)
			d.cfg.Logger.Error("mediadriver: to-driver buffer", "err", err)
		}
		work += d.ipcDuty(now)
		work += d.udpDuty(now)
		if now.Sub(lastLiveness) >= 50*time.Millisecond {
			lastLiveness = now
			d.checkClients(nowMs)
		}
		if work > 0 {
			idle = 0
			continue
		}
		// Back off as Aeron's idle strategy does: a few yields, then
		// sleeps doubling from 1 us up to IdleSleep. Data arriving on a
		// UDP subscription wakes the conductor at once (wake); client logs
		// and commands in shared memory can only be polled.
		idle++
		if idle <= idleYields {
			runtime.Gosched()
			continue
		}
		sleep := min(time.Microsecond<<min(idle-idleYields-1, 20), d.cfg.IdleSleep)
		timer.Reset(sleep)
		select {
		case <-d.stop:
			return
		case <-d.wake:
			idle = 0
		case <-timer.C:
		}
	}
}

// idleYields is how many idle conductor cycles yield before it sleeps.
const idleYields = 8

// nudge wakes the conductor if it sleeps.
func (d *Driver) nudge() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// ---- responses ----

func (d *Driver) transmit(typ int32, msg []byte) {
	if err := d.tx.Transmit(typ, msg); err != nil {
		incr(d.sys.errors)
		d.cfg.Logger.Error("mediadriver: broadcast", "type", typ, "err", err)
	}
}

func (d *Driver) sendError(corr int64, code int32, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.cfg.Logger.Warn("mediadriver: command refused", "correlation", corr, "code", code, "msg", msg)
	d.scratch = cnc.ErrorResponse{CorrelationID: corr, Code: code, Message: msg}.Encode(d.scratch[:0])
	d.transmit(cnc.RspOnError, d.scratch)
}

func (d *Driver) sendSuccess(corr int64) {
	d.scratch = cnc.EncodeInt64Response(d.scratch[:0], corr)
	d.transmit(cnc.RspOnOperationSuccess, d.scratch)
}

// ---- commands ----

func (d *Driver) onCommand(typ int32, msg []byte) {
	corr, err := cnc.DecodeCorrelated(msg)
	if err != nil {
		incr(d.sys.invalidCommands)
		return
	}
	cl := d.clientFor(corr.ClientID)
	switch typ {
	case cnc.CmdAddPublication, cnc.CmdAddExclusivePublication:
		cmd, err := cnc.DecodePublicationCommand(msg)
		if err != nil {
			d.malformed(corr.CorrelationID, err)
			return
		}
		d.addPublication(cl, cmd, typ == cnc.CmdAddExclusivePublication)
	case cnc.CmdRemovePublication:
		cmd, err := cnc.DecodeRemoveCommand(msg)
		if err != nil {
			d.malformed(corr.CorrelationID, err)
			return
		}
		reg := d.regs[cmd.RegistrationID]
		if reg == nil || reg.client != cl {
			d.sendError(corr.CorrelationID, cnc.ErrCodeUnknownPublication, "unknown publication %d", cmd.RegistrationID)
			return
		}
		d.removeReg(reg)
		d.sendSuccess(corr.CorrelationID)
	case cnc.CmdAddSubscription:
		cmd, err := cnc.DecodeSubscriptionCommand(msg)
		if err != nil {
			d.malformed(corr.CorrelationID, err)
			return
		}
		d.addSubscription(cl, cmd)
	case cnc.CmdRemoveSubscription:
		cmd, err := cnc.DecodeRemoveCommand(msg)
		if err != nil {
			d.malformed(corr.CorrelationID, err)
			return
		}
		s := d.subs[cmd.RegistrationID]
		if s == nil || s.client != cl {
			d.sendError(corr.CorrelationID, cnc.ErrCodeUnknownSubscription, "unknown subscription %d", cmd.RegistrationID)
			return
		}
		d.freeSubscription(s)
		d.sendSuccess(corr.CorrelationID)
	case cnc.CmdClientKeepalive:
		// clientFor refreshed it.
	case cnc.CmdClientClose:
		d.closeClient(cl, false)
	default:
		incr(d.sys.invalidCommands)
		d.sendError(corr.CorrelationID, cnc.ErrCodeUnknownCommand, "command type %#x not supported", typ)
	}
}

func (d *Driver) malformed(corr int64, err error) {
	incr(d.sys.invalidCommands)
	d.sendError(corr, cnc.ErrCodeMalformedCommand, "%v", err)
}

// clientFor returns the client with id, registering it (and its heartbeat
// counter) on first sight.
func (d *Driver) clientFor(id int64) *client {
	now := time.Now().UnixMilli()
	if cl := d.clients[id]; cl != nil {
		cl.lastSeen = now
		return cl
	}
	cl := &client{id: id, hbID: -1, regs: map[int64]*pubReg{}, subs: map[int64]*subscription{}, lastSeen: now}
	key := binary.LittleEndian.AppendUint64(nil, uint64(id))
	hb, err := d.alloc.Allocate(cnc.TypeClientHeartbeat, key, fmt.Sprintf("client-heartbeat: id=%d", id), id, 0, 0)
	if err == nil {
		cl.hbID = hb
		cl.hbSlot, _ = d.c.Counters.Slot(hb)
		cnc.StoreInt64(cl.hbSlot, 0, now)
		d.scratch = binary.LittleEndian.AppendUint64(d.scratch[:0], uint64(id))
		d.scratch = binary.LittleEndian.AppendUint32(d.scratch, uint32(hb))
		d.transmit(cnc.RspOnCounterReady, d.scratch)
	} else {
		incr(d.sys.errors)
		d.cfg.Logger.Error("mediadriver: no heartbeat counter for client", "client", id, "err", err)
	}
	d.clients[id] = cl
	d.cfg.Logger.Info("mediadriver: client attached", "client", id)
	return cl
}

// checkClients times out clients whose heartbeat is too old.
func (d *Driver) checkClients(nowMs int64) {
	timeout := d.cfg.ClientLivenessTimeout.Milliseconds()
	for _, cl := range d.clients {
		last := cl.lastSeen
		if cl.hbSlot != nil {
			last = max(last, cnc.LoadInt64(cl.hbSlot, 0))
		}
		if nowMs-last > timeout {
			incr(d.sys.clientTimeouts)
			d.closeClient(cl, true)
		}
	}
}

// closeClient releases everything a client registered; timedOut also
// tells it so.
func (d *Driver) closeClient(cl *client, timedOut bool) {
	for _, reg := range cl.regs {
		d.removeReg(reg)
	}
	for _, s := range cl.subs {
		d.freeSubscription(s)
	}
	if cl.hbID >= 0 {
		_ = d.alloc.Free(cl.hbID)
		d.scratch = binary.LittleEndian.AppendUint64(d.scratch[:0], uint64(cl.id))
		d.scratch = binary.LittleEndian.AppendUint32(d.scratch, uint32(cl.hbID))
		d.transmit(cnc.RspOnUnavailableCounter, d.scratch)
	}
	if timedOut {
		d.scratch = cnc.EncodeInt64Response(d.scratch[:0], cl.id)
		d.transmit(cnc.RspOnClientTimeout, d.scratch)
	}
	delete(d.clients, cl.id)
	d.cfg.Logger.Info("mediadriver: client gone", "client", cl.id, "timed_out", timedOut)
}

// streamKey is the counter key of stream position counters.
func streamKey(reg int64, session, stream int32, channel string) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(reg))
	b = binary.LittleEndian.AppendUint32(b, uint32(session))
	b = binary.LittleEndian.AppendUint32(b, uint32(stream))
	ch := channel
	if max := cnc.CounterMaxKeyLength - 20; len(ch) > max {
		ch = ch[:max]
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ch)))
	return append(b, ch...)
}

// streamCounter allocates a stream position counter labelled as Aeron's.
func (d *Driver) streamCounter(typ int32, name string, reg int64, session, stream int32, channel, suffix string) (int32, []byte, error) {
	label := fmt.Sprintf("%s: %d %d %d %s%s", name, reg, session, stream, channel, suffix)
	id, err := d.alloc.Allocate(typ, streamKey(reg, session, stream, channel), label, reg, 0, 0)
	if err != nil {
		return -1, nil, err
	}
	slot, err := d.c.Counters.Slot(id)
	return id, slot, err
}

func (d *Driver) freeCounter(id int32) {
	if id >= 0 {
		_ = d.alloc.Free(id)
	}
}

// newLog creates and lays out a log buffer file.
func (d *Driver) newLog(sub string, id int64, p cnc.LogParams) (*cnc.Mapping, *cnc.Log, string, error) {
	path := filepath.Join(d.cfg.Dir, sub, fmt.Sprintf("%d.logbuffer", id))
	p.PageSize = 4096
	m, err := cnc.CreateFile(path, cnc.LogLength(p.TermLength, p.PageSize))
	if err != nil {
		return nil, nil, "", err
	}
	l, err := cnc.InitLog(m.Data, p)
	if err != nil {
		_ = m.Close()
		_ = os.Remove(path)
		return nil, nil, "", err
	}
	return m, l, path, nil
}

func (d *Driver) nextID() int64 { return d.c.ToDriver.NextCorrelationID() }
