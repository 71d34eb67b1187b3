// Package mediadriver is a standalone Aeron media driver: it lays out an
// Aeron directory (cnc.dat, counters, log buffers) byte-compatibly with
// Aeron's own C driver, so Aeron's clients (and this repository's
// transport/aeronclient) can use it from other processes
// (docs/aeron-cnc.md). IPC streams are served natively from shared log
// buffers; UDP streams are carried by the embedded steadfast driver
// (package transport), bridged to the clients' log buffers by the
// conductor.
//
// One conductor goroutine (owned by the Driver, stopped by Close) reads the
// clients' commands, answers through the broadcast buffer, moves
// publication limits from subscriber positions, cleans terms, bridges UDP
// streams and times out clients that stop heartbeating.
package mediadriver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/steadfast-pods/steadfast/transport"
	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// Sentinel errors.
var (
	// ErrActive: another driver is alive in the directory (its cnc.dat
	// heartbeat is younger than Config.DriverTimeout).
	ErrActive = errors.New("mediadriver: a media driver is already active in the directory")
	// ErrBadConfig: a Config field is out of range.
	ErrBadConfig = errors.New("mediadriver: bad config")
)

// Config configures a Driver. Zero fields take the defaults below.
type Config struct {
	// Dir is the Aeron directory. Empty: $AERON_DIR, else
	// /dev/shm/aeron-$USER (where Aeron's clients look by default).
	Dir string
	// ClientLivenessTimeout: a client whose heartbeat is older than this
	// is timed out and its publications and subscriptions are released
	// (Aeron: 10 s).
	ClientLivenessTimeout time.Duration
	// DriverTimeout: a cnc.dat whose driver heartbeat is younger than this
	// belongs to a live driver, and New refuses the directory (ErrActive);
	// an older one was left by a dead driver, and New reclaims the
	// directory (Aeron's aeron.driver.timeout: 10 s). Clients should use
	// the same figure to decide that this driver died.
	DriverTimeout time.Duration
	// TermLength is the default term length of UDP publications and images
	// (Aeron: 16 MiB); channels override it with term-length.
	TermLength int
	// IPCTermLength is the default term length of IPC publications
	// (Aeron: 64 MiB).
	IPCTermLength int
	// MTU is the default MTU of UDP publications (Aeron: 1408); channels
	// override it with mtu.
	MTU int
	// PublicationLinger bounds how long a removed publication waits for
	// its subscribers to drain before its images go (Aeron: 5 s).
	PublicationLinger time.Duration
	// ToDriverBufferLength, ToClientsBufferLength: ring and broadcast
	// capacities (powers of two, Aeron: 1 MiB).
	ToDriverBufferLength  int
	ToClientsBufferLength int
	// CounterValuesBufferLength: counter values capacity (128 bytes per
	// counter; Aeron: 1 MiB). The metadata buffer is 4× this.
	CounterValuesBufferLength int
	// ErrorLogBufferLength (Aeron: 1 MiB).
	ErrorLogBufferLength int
	// IdleSleep is the conductor's longest sleep with nothing to do (it
	// spins briefly first). Default 100 µs.
	IdleSleep time.Duration
	// Embedded configures the embedded driver that carries UDP streams;
	// zero value: transport.DefaultConfig() with TermLength and MTU above.
	Embedded *transport.Config
	// Logger receives lifecycle events; nil discards.
	Logger *slog.Logger
}

func (c *Config) fill() error {
	c.Dir = cnc.ResolveDir(c.Dir)
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.TermLength, 16<<20)
	def(&c.IPCTermLength, 64<<20)
	def(&c.MTU, 1408)
	def(&c.ToDriverBufferLength, 1<<20)
	def(&c.ToClientsBufferLength, 1<<20)
	def(&c.CounterValuesBufferLength, 1<<20)
	def(&c.ErrorLogBufferLength, 1<<20)
	if c.ClientLivenessTimeout == 0 {
		c.ClientLivenessTimeout = 10 * time.Second
	}
	if c.DriverTimeout == 0 {
		c.DriverTimeout = 10 * time.Second
	}
	if c.PublicationLinger == 0 {
		c.PublicationLinger = 5 * time.Second
	}
	if c.IdleSleep == 0 {
		c.IdleSleep = 100 * time.Microsecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	pow2 := func(v int) bool { return v > 0 && v&(v-1) == 0 }
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", ErrBadConfig, field, v, why)
	}
	switch {
	case !validTerm(c.TermLength):
		return bad("TermLength", c.TermLength, "must be a power of two in [64 KiB, 1 GiB]")
	case !validTerm(c.IPCTermLength):
		return bad("IPCTermLength", c.IPCTermLength, "must be a power of two in [64 KiB, 1 GiB]")
	case !validMTU(c.MTU):
		return bad("MTU", c.MTU, "must be a multiple of 32 in [64, 65504]")
	case !pow2(c.ToDriverBufferLength) || c.ToDriverBufferLength < 1024:
		return bad("ToDriverBufferLength", c.ToDriverBufferLength, "must be a power of two >= 1024")
	case !pow2(c.ToClientsBufferLength) || c.ToClientsBufferLength < 1024:
		return bad("ToClientsBufferLength", c.ToClientsBufferLength, "must be a power of two >= 1024")
	case c.CounterValuesBufferLength < 64*cnc.CounterValueLength || c.CounterValuesBufferLength%cnc.CounterValueLength != 0:
		return bad("CounterValuesBufferLength", c.CounterValuesBufferLength, "must be a multiple of 128, at least 64 counters")
	case c.ErrorLogBufferLength < 0 || c.ErrorLogBufferLength%8 != 0:
		return bad("ErrorLogBufferLength", c.ErrorLogBufferLength, "must be a non-negative multiple of 8")
	case c.ClientLivenessTimeout < 10*time.Millisecond:
		return bad("ClientLivenessTimeout", c.ClientLivenessTimeout, "too short")
	case c.DriverTimeout < 10*time.Millisecond:
		return bad("DriverTimeout", c.DriverTimeout, "too short")
	case c.PublicationLinger < 0 || c.IdleSleep < 0:
		return bad("PublicationLinger/IdleSleep", c.PublicationLinger, "must not be negative")
	}
	return nil
}

func validTerm(t int) bool {
	return t >= cnc.TermMinLength && t <= cnc.TermMaxLength && t&(t-1) == 0
}

func validMTU(m int) bool { return m >= 64 && m <= cnc.MaxUDPPayload && m%cnc.FrameAlignment == 0 }
