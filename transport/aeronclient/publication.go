package aeronclient

import (
	"fmt"
	"path/filepath"
	"sync/atomic"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// Publication appends messages to a log buffer the driver sends from (UDP)
// or its subscribers read (IPC), by Aeron's log-append protocol: any number
// of publications, in any processes, may share one log.
type Publication struct {
	c         *Client
	channel   string
	streamID  int32
	sessionID int32
	// registrationID is this client's registration (the correlation id
	// of its add command): what it removes. originalRegistrationID is the
	// publication's, the same for every client sharing it (Aeron's
	// registrationId and originalRegistrationId).
	registrationID         int64
	originalRegistrationID int64
	exclusive              bool

	mapping *cnc.Mapping
	log     *cnc.Log
	app     *cnc.Appender
	limit   []byte // publisher-limit counter slot

	closed atomic.Bool
}

var _ transport.Publisher = (*Publication)(nil)

// AddPublication adds a (shared) publication on channel and stream.
func (c *Client) AddPublication(channel string, streamID int32) (*Publication, error) {
	return c.addPublication(channel, streamID, false)
}

// AddExclusivePublication adds a publication whose log no other publication
// shares (its own session id).
func (c *Client) AddExclusivePublication(channel string, streamID int32) (*Publication, error) {
	return c.addPublication(channel, streamID, true)
}

func (c *Client) addPublication(channel string, streamID int32, exclusive bool) (*Publication, error) {
	typ := int32(cnc.CmdAddPublication)
	if exclusive {
		typ = cnc.CmdAddExclusivePublication
	}
	corr, resp, err := c.request(typ, func(corr int64) func([]byte) []byte {
		return cnc.PublicationCommand{Correlated: cnc.Correlated{ClientID: c.clientID, CorrelationID: corr},
			StreamID: streamID, Channel: channel}.Encode
	})
	if err != nil {
		return nil, fmt.Errorf("aeronclient: add publication %s stream %d: %w", channel, streamID, err)
	}
	r, err := cnc.DecodePublicationReady(resp.msg)
	if err != nil {
		return nil, err
	}
	var p *Publication
	err = c.use(func() (err error) {
		p, err = c.mapPublication(r, channel, exclusive)
		return err
	})
	if err != nil {
		// Tell the driver we will not use it.
		_ = c.send(cnc.CmdRemovePublication, cnc.RemoveCommand{Correlated: cnc.Correlated{ClientID: c.clientID,
			CorrelationID: c.cnc.ToDriver.NextCorrelationID()}, RegistrationID: corr}.Encode)
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		p.release(true)
		return nil, transport.ErrClosed
	}
	c.pubs[p] = struct{}{}
	c.mu.Unlock()
	return p, nil
}

func (c *Client) mapLog(name string) (*cnc.Mapping, *cnc.Log, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(c.cfg.Dir, name)
	}
	m, err := cnc.MapFile(name)
	if err != nil {
		return nil, nil, fmt.Errorf("aeronclient: log buffer: %w", err)
	}
	l, err := cnc.OpenLog(m.Data)
	if err != nil {
		_ = m.Close()
		return nil, nil, fmt.Errorf("aeronclient: log buffer %s: %w", name, err)
	}
	return m, l, nil
}

func (c *Client) mapPublication(r cnc.PublicationReady, channel string, exclusive bool) (*Publication, error) {
	m, l, err := c.mapLog(r.LogFile)
	if err != nil {
		return nil, err
	}
	slot, err := c.cnc.Counters.Slot(r.PositionLimitCounter)
	if err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("aeronclient: publication limit counter: %w", err)
	}
	return &Publication{
		c: c, channel: channel, streamID: r.StreamID, sessionID: r.SessionID,
		registrationID: r.CorrelationID, originalRegistrationID: r.RegistrationID, exclusive: exclusive,
		mapping: m, log: l, app: cnc.NewAppender(l, r.SessionID, r.StreamID), limit: slot,
	}, nil
}

// Offer appends msg and returns the stream position after it. Refusals
// return (negative code, sentinel) like transport.Publication.Offer:
// transport.ErrNotConnected, ErrBackPressured, ErrClosed,
// ErrMaxPositionExceeded, ErrMessageTooLarge. It never blocks. Safe for
// concurrent use.
func (p *Publication) Offer(msg []byte) (int64, error) {
	if p.closed.Load() || p.c.dead.Load() {
		return transport.PublicationClosed, p.closedErr()
	}
	switch pos := p.app.Append(msg, cnc.LoadInt64(p.limit, 0)); pos {
	case cnc.AppendBackPressured, cnc.AppendAdminAction:
		return transport.BackPressured, transport.ErrBackPressured
	case cnc.AppendNotConnected:
		return transport.NotConnected, transport.ErrNotConnected
	case cnc.AppendMaxPositionExceeded:
		return transport.MaxPositionExceeded, transport.ErrMaxPositionExceeded
	case cnc.AppendTooLong:
		return transport.PublicationClosed, fmt.Errorf("%w: %d > %d", transport.ErrMessageTooLarge, len(msg), p.app.MaxMessage())
	default:
		return pos, nil
	}
}

func (p *Publication) closedErr() error {
	if err := p.c.Err(); err != nil && err != transport.ErrClosed {
		return fmt.Errorf("%w: %w", transport.ErrClosed, err)
	}
	return transport.ErrClosed
}

// Position is the stream position the next message would start at.
func (p *Publication) Position() int64 {
	if p.closed.Load() {
		return transport.PublicationClosed
	}
	return p.app.Position()
}

// PositionLimit is the driver's current publication limit.
func (p *Publication) PositionLimit() int64 {
	if p.closed.Load() {
		return transport.PublicationClosed
	}
	return cnc.LoadInt64(p.limit, 0)
}

// IsConnected reports whether the driver sees a subscriber.
func (p *Publication) IsConnected() bool {
	return !p.closed.Load() && !p.c.dead.Load() && cnc.LoadInt32(p.log.Meta, cnc.LogOffIsConnected) == 1
}

// SessionID, StreamID, Channel, RegistrationID, OriginalRegistrationID,
// MaxMessageLength and MaxPayloadLength describe the publication.
func (p *Publication) SessionID() int32      { return p.sessionID }
func (p *Publication) StreamID() int32       { return p.streamID }
func (p *Publication) Channel() string       { return p.channel }
func (p *Publication) RegistrationID() int64 { return p.registrationID }
func (p *Publication) OriginalRegistrationID() int64 {
	return p.originalRegistrationID
}
func (p *Publication) MaxMessageLength() int { return p.app.MaxMessage() }
func (p *Publication) MaxPayloadLength() int { return p.app.MaxPayload() }

// Close removes the publication from the driver; its log is unmapped a
// linger period later (offers already running finish on it; later ones
// return ErrClosed). Safe to call twice.
func (p *Publication) Close() error {
	p.c.mu.Lock()
	_, mine := p.c.pubs[p]
	delete(p.c.pubs, p)
	alive := p.c.err == nil
	p.c.mu.Unlock()
	if !mine {
		return nil
	}
	var err error
	if alive {
		_, _, err = p.c.request(cnc.CmdRemovePublication, func(corr int64) func([]byte) []byte {
			return cnc.RemoveCommand{Correlated: cnc.Correlated{ClientID: p.c.clientID, CorrelationID: corr},
				RegistrationID: p.registrationID}.Encode
		})
	}
	p.release(false)
	return err
}

// release stops offers and unmaps; with tell, the driver is told first
// (without waiting for its answer).
func (p *Publication) release(tell bool) {
	if p.closed.Swap(true) {
		return
	}
	if tell {
		_ = p.c.send(cnc.CmdRemovePublication, cnc.RemoveCommand{Correlated: cnc.Correlated{ClientID: p.c.clientID,
			CorrelationID: p.c.cnc.ToDriver.NextCorrelationID()}, RegistrationID: p.registrationID}.Encode)
	}
	// An Offer that saw the publication open may still be appending: keep
	// the log mapped for a while, as Aeron's clients do.
	p.c.lingerUnmap(p.mapping)
}
