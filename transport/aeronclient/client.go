// Package aeronclient is a client of an Aeron media driver running in
// another process (Aeron's own aeronmd, or steadfast's cmd/mediadriver): it
// attaches to the driver's directory, sends commands through cnc.dat's
// to-driver ring buffer, reads responses from its broadcast buffer, and
// publishes and subscribes through the memory-mapped log buffers the driver
// creates (layouts: docs/aeron-cnc.md, package transport/cnc).
//
// Publication and Subscription have the same methods as the embedded
// driver's (transport.Publication, transport.Subscription): Offer returns
// the same sentinel errors, Poll hands whole (reassembled) messages with a
// transport.Header.
//
// # Usage
//
//	c, err := aeronclient.Connect(aeronclient.Config{Dir: "/dev/shm/aeron-me"})
//	defer c.Close()
//	pub, err := c.AddPublication("aeron:ipc", 1001)
//	sub, err := c.AddSubscription("aeron:ipc", 1001)
//	pos, err := pub.Offer([]byte("hello"))
//	n := sub.Poll(func(msg []byte, h transport.Header) { ... }, 10)
//
// # Liveness
//
// A conductor goroutine owned by the Client reads the driver's responses,
// stores the client's heartbeat into its counter every KeepaliveInterval,
// and watches the driver's heartbeat: a driver silent for DriverTimeout (or
// one that timed this client out) closes the client, every call then
// returns an error wrapping ErrDriverTimeout (or ErrClientTimeout) and
// nothing blocks. Commands wait at most DriverTimeout for their response.
package aeronclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// Sentinel errors.
var (
	// ErrDriverTimeout: the driver stopped heartbeating (dead or hung), or
	// its cnc.dat never became ready.
	ErrDriverTimeout = errors.New("aeronclient: media driver timeout")
	// ErrClientTimeout: the driver timed this client out (it stopped
	// heartbeating for longer than the driver's client liveness timeout).
	ErrClientTimeout = errors.New("aeronclient: client timed out by the driver")
	// ErrNoDriver: no driver directory or cnc.dat where Config.Dir says.
	ErrNoDriver = errors.New("aeronclient: no media driver")
	// ErrDriver wraps an error the driver answered a command with.
	ErrDriver = errors.New("aeronclient: driver error")
	// ErrBadConfig: a Config field is out of range.
	ErrBadConfig = errors.New("aeronclient: bad config")
)

// DriverError is the driver's answer to a failed command.
type DriverError struct {
	Code    int32
	Message string
}

func (e *DriverError) Error() string {
	return fmt.Sprintf("aeronclient: driver error %d: %s", e.Code, e.Message)
}

// Unwrap makes errors.Is(err, ErrDriver) true.
func (e *DriverError) Unwrap() error { return ErrDriver }

// Config configures a Client.
type Config struct {
	// Dir is the driver's directory (Aeron's aeron.dir). Empty: $AERON_DIR
	// if set, else /dev/shm/aeron-$USER (Aeron's default).
	Dir string
	// DriverTimeout: the driver is considered dead when its heartbeat is
	// older than this, and a command fails if unanswered within it
	// (Aeron: 10 s). Default 10 s.
	DriverTimeout time.Duration
	// KeepaliveInterval is how often the client stores its heartbeat
	// (Aeron: 500 ms); it must be well below the driver's client liveness
	// timeout. Default 500 ms.
	KeepaliveInterval time.Duration
	// ConnectTimeout bounds waiting for cnc.dat to appear and become ready
	// (a driver that is starting). 0: fail at once if it is not there.
	ConnectTimeout time.Duration
	// IdleSleep is the conductor's sleep between duty cycles with nothing
	// to do. Default 1 ms.
	IdleSleep time.Duration
	// Name is appended to the heartbeat counter's label (AeronStat shows it).
	Name string
	// Logger receives rare events; nil discards.
	Logger *slog.Logger
}

func (c *Config) fill() error {
	c.Dir = cnc.ResolveDir(c.Dir)
	if c.DriverTimeout == 0 {
		c.DriverTimeout = 10 * time.Second
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = 500 * time.Millisecond
	}
	if c.IdleSleep == 0 {
		c.IdleSleep = time.Millisecond
	}
	if c.Name == "" {
		c.Name = "steadfast"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case c.DriverTimeout < 10*time.Millisecond:
		return fmt.Errorf("%w: DriverTimeout %v too short", ErrBadConfig, c.DriverTimeout)
	case c.KeepaliveInterval <= 0 || c.KeepaliveInterval >= c.DriverTimeout:
		return fmt.Errorf("%w: KeepaliveInterval %v must be in (0, DriverTimeout)", ErrBadConfig, c.KeepaliveInterval)
	case c.ConnectTimeout < 0 || c.IdleSleep < 0:
		return fmt.Errorf("%w: negative duration", ErrBadConfig)
	}
	return nil
}

// Client is attached to one media driver.
type Client struct {
	cfg      Config
	mapping  *cnc.Mapping
	cnc      *cnc.CnC
	rx       *cnc.Receiver
	clientID int64

	mu      sync.Mutex // guards pending, subs, pubs, closed, err
	pending map[int64]*pendingCmd
	subs    map[int64]*Subscription // by registration id
	pubs    map[*Publication]struct{}
	closed  bool
	err     error // terminal error (driver dead, client timed out, closed)
	dead    atomic.Bool
	hbID    int32
	lastHB  time.Time
	stop    chan struct{}
	done    chan struct{}
	cmdBuf  []byte
	cmdMu   sync.Mutex // guards cmdBuf

	// useMu guards the cnc.dat mapping against Close: API calls that
	// touch it hold it for reading; Close unmaps under the write lock.
	useMu    sync.RWMutex
	unmapped bool // guarded by useMu

	lingerMu  sync.Mutex // guards lingering
	lingering []lingered
}

// lingered is a log mapping waiting to be unmapped.
type lingered struct {
	m  *cnc.Mapping
	at time.Time
}

// mappingLinger is how long a closed publication's log stays mapped.
const mappingLinger = 3 * time.Second

// lingerUnmap unmaps m after mappingLinger (or at Client.Close).
func (c *Client) lingerUnmap(m *cnc.Mapping) {
	c.lingerMu.Lock()
	c.lingering = append(c.lingering, lingered{m, time.Now().Add(mappingLinger)})
	c.lingerMu.Unlock()
}

// unmapDue unmaps lingering mappings whose time has come (all with force).
func (c *Client) unmapDue(now time.Time, force bool) {
	c.lingerMu.Lock()
	defer c.lingerMu.Unlock()
	keep := c.lingering[:0]
	for _, l := range c.lingering {
		if force || now.After(l.at) {
			_ = l.m.Close()
		} else {
			keep = append(keep, l)
		}
	}
	c.lingering = keep
}

type pendingCmd struct {
	done chan struct{}
	typ  int32
	msg  []byte // response body (copied)
	err  error
}

// Connect attaches to the driver in cfg.Dir.
func Connect(cfg Config) (*Client, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.Dir, cnc.FileName)
	deadline := time.Now().Add(cfg.ConnectTimeout)
	var (
		m   *cnc.Mapping
		c   *cnc.CnC
		err error
	)
	for {
		m, err = cnc.MapFile(path)
		if err == nil {
			c, err = cnc.Open(m.Data)
			if err == nil && c.ToDriver.ConsumerHeartbeat() == 0 {
				// Laid out but not yet heartbeating: a driver starting.
				err = fmt.Errorf("%w: no driver heartbeat yet", cnc.ErrNotReady)
			}
			if err == nil {
				break
			}
			_ = m.Close()
		}
		if !time.Now().Before(deadline) {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%w: %s: %v", ErrNoDriver, cfg.Dir, err)
			}
			if errors.Is(err, cnc.ErrNotReady) {
				return nil, fmt.Errorf("%w: %s: %v", ErrDriverTimeout, path, err)
			}
			return nil, fmt.Errorf("aeronclient: %s: %w", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	nowMs := time.Now().UnixMilli()
	if hb := c.ToDriver.ConsumerHeartbeat(); nowMs-hb > cfg.DriverTimeout.Milliseconds() {
		_ = m.Close()
		return nil, fmt.Errorf("%w: %s: driver heartbeat is %d ms old (pid %d)", ErrDriverTimeout, cfg.Dir, nowMs-hb, c.Meta.Pid)
	}
	rx, err := cnc.NewReceiver(c.ToClients)
	if err != nil {
		_ = m.Close()
		return nil, err
	}
	rx.SkipToTail()
	cl := &Client{
		cfg:     cfg,
		mapping: m,
		cnc:     c,
		rx:      rx,
		pending: make(map[int64]*pendingCmd),
		subs:    make(map[int64]*Subscription),
		pubs:    make(map[*Publication]struct{}),
		hbID:    -1,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	cl.clientID = c.ToDriver.NextCorrelationID()
	// A keepalive makes the driver register us (and allocate our heartbeat
	// counter) right away.
	if err := cl.send(cnc.CmdClientKeepalive, func(b []byte) []byte {
		return cnc.Correlated{ClientID: cl.clientID, CorrelationID: c.ToDriver.NextCorrelationID()}.Encode(b)
	}); err != nil {
		_ = m.Close()
		return nil, err
	}
	cl.lastHB = time.Now()
	go cl.run()
	return cl, nil
}

// ClientID is the id the driver knows this client by.
func (c *Client) ClientID() int64 { return c.clientID }

// Dir is the driver directory.
func (c *Client) Dir() string { return c.cfg.Dir }

// DriverPid is the driver process id from cnc.dat.
func (c *Client) DriverPid() int64 { return c.cnc.Meta.Pid }

// CloseClient tells the driver that client id is gone (CLIENT_CLOSE on its
// behalf), so it releases that client's publications and subscriptions now
// rather than after its client liveness timeout. For an earlier client of
// this process that gave up on a driver that was only stalled: its
// subscriptions, no longer polled, would otherwise limit the images they
// share with the new client once those are a window ahead of them.
func (c *Client) CloseClient(id int64) error {
	return c.send(cnc.CmdClientClose, func(b []byte) []byte {
		return cnc.Correlated{ClientID: id, CorrelationID: c.cnc.ToDriver.NextCorrelationID()}.Encode(b)
	})
}

// Err returns the terminal error once the client is no longer usable
// (driver timeout, client timeout, closed), else nil.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// use runs f while the cnc.dat mapping is guaranteed to stay mapped, or
// returns ErrClosed once the client is closed.
func (c *Client) use(f func() error) error {
	c.useMu.RLock()
	defer c.useMu.RUnlock()
	if c.unmapped {
		if err := c.Err(); err != nil && !errors.Is(err, transport.ErrClosed) {
			return fmt.Errorf("%w: %w", transport.ErrClosed, err)
		}
		return transport.ErrClosed
	}
	return f()
}

// send writes one command into the to-driver ring buffer, retrying briefly
// while it is full.
func (c *Client) send(typ int32, enc func([]byte) []byte) error {
	return c.use(func() error { return c.sendLocked(typ, enc) })
}

func (c *Client) sendLocked(typ int32, enc func([]byte) []byte) error {
	c.cmdMu.Lock()
	defer c.cmdMu.Unlock()
	c.cmdBuf = enc(c.cmdBuf[:0])
	deadline := time.Now().Add(c.cfg.DriverTimeout)
	for {
		err := c.cnc.ToDriver.Write(typ, c.cmdBuf)
		if !errors.Is(err, cnc.ErrFull) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: to-driver buffer full for %v", ErrDriverTimeout, c.cfg.DriverTimeout)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// request sends a command and waits for the response correlated with it.
func (c *Client) request(typ int32, enc func(corr int64) func([]byte) []byte) (int64, *pendingCmd, error) {
	var corr int64
	p := &pendingCmd{done: make(chan struct{})}
	err := c.use(func() error {
		corr = c.cnc.ToDriver.NextCorrelationID()
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return err
		}
		c.pending[corr] = p
		c.mu.Unlock()
		return c.sendLocked(typ, enc(corr))
	})
	if err != nil {
		c.mu.Lock()
		delete(c.pending, corr)
		c.mu.Unlock()
		return corr, nil, err
	}
	t := time.NewTimer(c.cfg.DriverTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return corr, p, p.err
	case <-t.C:
		c.mu.Lock()
		delete(c.pending, corr)
		c.mu.Unlock()
		return corr, nil, fmt.Errorf("%w: no response to command %#x (correlation %d) within %v", ErrDriverTimeout, typ, corr, c.cfg.DriverTimeout)
	}
}

// run is the conductor: responses, heartbeat, driver liveness.
func (c *Client) run() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		work := 0
		for i := 0; i < 64; i++ {
			ok, err := c.rx.Receive(c.onResponse)
			if err != nil {
				c.cfg.Logger.Warn("aeronclient: broadcast", "err", err)
			}
			if !ok {
				break
			}
			work++
		}
		now := time.Now()
		c.unmapDue(now, false)
		if err := c.checkLiveness(now); err != nil {
			c.fail(err)
			return
		}
		if work == 0 {
			select {
			case <-c.stop:
				return
			case <-time.After(c.cfg.IdleSleep):
			}
		}
	}
}

func (c *Client) checkLiveness(now time.Time) error {
	if now.Sub(c.lastHB) < c.cfg.KeepaliveInterval {
		return nil
	}
	c.lastHB = now
	nowMs := now.UnixMilli()
	hb := c.cnc.ToDriver.ConsumerHeartbeat()
	if hb == -1 {
		return fmt.Errorf("%w: the media driver shut down (pid %d)", ErrDriverTimeout, c.cnc.Meta.Pid)
	}
	if age := nowMs - hb; age > c.cfg.DriverTimeout.Milliseconds() {
		return fmt.Errorf("%w: driver heartbeat %d ms old > %v (pid %d)", ErrDriverTimeout, age, c.cfg.DriverTimeout, c.cnc.Meta.Pid)
	}
	ctr := c.cnc.Counters
	if c.hbID < 0 {
		if id := ctr.FindHeartbeat(c.clientID); id >= 0 {
			c.hbID = id
			_ = ctr.AppendToLabel(id, " name="+c.cfg.Name+" version=steadfast")
		} else {
			// Not registered yet (or the driver lost us): keepalive.
			return c.send(cnc.CmdClientKeepalive, func(b []byte) []byte {
				return cnc.Correlated{ClientID: c.clientID, CorrelationID: c.cnc.ToDriver.NextCorrelationID()}.Encode(b)
			})
		}
	} else if !ctr.HeartbeatActive(c.hbID, c.clientID) {
		return fmt.Errorf("%w: heartbeat counter %d was closed by the driver", ErrClientTimeout, c.hbID)
	}
	slot, err := ctr.Slot(c.hbID)
	if err != nil {
		return err
	}
	cnc.StoreInt64(slot, 0, nowMs)
	return nil
}

// onResponse runs on the conductor goroutine for every broadcast record.
func (c *Client) onResponse(typ int32, msg []byte) {
	switch typ {
	case cnc.RspOnPublicationReady, cnc.RspOnExclusivePublicationRead, cnc.RspOnSubscriptionReady, cnc.RspOnOperationSuccess:
		corr, err := cnc.DecodeInt64Response(msg)
		if err == nil {
			c.complete(corr, typ, msg, nil)
		}
	case cnc.RspOnError:
		r, err := cnc.DecodeErrorResponse(msg)
		if err == nil {
			c.complete(r.CorrelationID, typ, nil, &DriverError{Code: r.Code, Message: r.Message})
		}
	case cnc.RspOnAvailableImage:
		r, err := cnc.DecodeImageReady(msg)
		if err != nil {
			c.cfg.Logger.Warn("aeronclient: bad available-image response", "err", err)
			return
		}
		c.mu.Lock()
		s := c.subs[r.SubscriptionID]
		c.mu.Unlock()
		if s != nil {
			s.onAvailable(r)
		}
	case cnc.RspOnUnavailableImage:
		r, err := cnc.DecodeImageMessage(msg)
		if err != nil {
			return
		}
		c.mu.Lock()
		s := c.subs[r.SubscriptionID]
		c.mu.Unlock()
		if s != nil {
			s.onUnavailable(r.CorrelationID)
		}
	case cnc.RspOnClientTimeout:
		if id, err := cnc.DecodeInt64Response(msg); err == nil && id == c.clientID {
			c.fail(fmt.Errorf("%w: client %d", ErrClientTimeout, id))
		}
	}
}

func (c *Client) complete(corr int64, typ int32, msg []byte, err error) {
	c.mu.Lock()
	p := c.pending[corr]
	delete(c.pending, corr)
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.typ, p.err = typ, err
	p.msg = append([]byte(nil), msg...)
	close(p.done)
}

// fail makes the client unusable with err and releases its mappings.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.dead.Store(true)
	pending := c.pending
	c.pending = map[int64]*pendingCmd{}
	c.mu.Unlock()
	c.cfg.Logger.Error("aeronclient: client stopped", "err", err)
	for _, p := range pending {
		p.err = err
		close(p.done)
	}
	// Publications and images refuse further use; their mappings are
	// released by Close (a Poll or Offer may be running right now).
}

// Close closes every publication and subscription, tells the driver the
// client is going, stops the conductor and unmaps cnc.dat and the log
// buffers. Calls on the client and its publications and subscriptions
// after Close return ErrClosed; calls racing with Close must not happen
// (Offer and Poll work on the mappings Close removes). Safe to call twice.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closed = true
	alive := c.err == nil
	var pubs []*Publication
	for p := range c.pubs {
		pubs = append(pubs, p)
	}
	var subs []*Subscription
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, p := range pubs {
		p.release(alive)
	}
	for _, s := range subs {
		s.release(alive)
	}
	if alive {
		_ = c.send(cnc.CmdClientClose, func(b []byte) []byte {
			return cnc.Correlated{ClientID: c.clientID, CorrelationID: c.cnc.ToDriver.NextCorrelationID()}.Encode(b)
		})
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = transport.ErrClosed
	}
	c.dead.Store(true)
	c.mu.Unlock()
	close(c.stop)
	<-c.done
	c.useMu.Lock()
	defer c.useMu.Unlock()
	c.unmapped = true
	c.unmapDue(time.Time{}, true)
	return c.mapping.Close()
}

// wait polls cond every interval until it is true, ctx ends or the client
// dies.
func (c *Client) wait(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(200 * time.Microsecond)
	defer t.Stop()
	for !cond() {
		if err := c.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
