package cnc

import (
	"fmt"
	"os"
	"path/filepath"
)

// The command-and-control file (cnc.dat) a media driver creates in its
// directory. See docs/aeron-cnc.md §1.
//
//	  0 cnc_version (int32, written last by the driver)
//	  4 to_driver_buffer_length       (int32)
//	  8 to_clients_buffer_length      (int32)
//	 12 counters_metadata_buffer_length (int32)
//	 16 counters_values_buffer_length (int32)
//	 20 error_log_buffer_length       (int32)
//	 24 client_liveness_timeout_ns    (int64)
//	 32 start_timestamp_ms            (int64)
//	 40 pid                           (int64)
//	128 to-driver ring buffer, to-clients broadcast buffer, counters
//	    metadata, counters values, error log, back to back; the file is
//	    padded to a page.
const (
	// FileName is the CnC file's name inside the driver directory.
	FileName = "cnc.dat"
	// HeaderLength is the metadata header's length (48 bytes padded to two
	// cache lines).
	HeaderLength = 128

	offVersion          = 0
	offToDriverLen      = 4
	offToClientsLen     = 8
	offCountersMetaLen  = 12
	offCountersValueLen = 16
	offErrorLogLen      = 20
	offLivenessTimeout  = 24
	offStartTimestamp   = 32
	offPid              = 40
)

// Version is the CnC layout version this package speaks: 0.2.0, composed as
// major<<16 | minor<<8 | patch.
const Version = int32(0<<16 | 2<<8 | 0)

// VersionString formats a composed semantic version.
func VersionString(v int32) string {
	return fmt.Sprintf("%d.%d.%d", (v>>16)&0xff, (v>>8)&0xff, v&0xff)
}

// Metadata is the decoded CnC header.
type Metadata struct {
	Version                 int32
	ToDriverLength          int
	ToClientsLength         int
	CountersMetadataLength  int
	CountersValuesLength    int
	ErrorLogLength          int
	ClientLivenessTimeoutNs int64
	StartTimestampMs        int64
	Pid                     int64
}

// Offsets of the five buffers inside the file.
func (m Metadata) toDriverOffset() int  { return HeaderLength }
func (m Metadata) toClientsOffset() int { return HeaderLength + m.ToDriverLength }
func (m Metadata) countersMetaOffset() int {
	return m.toClientsOffset() + m.ToClientsLength
}
func (m Metadata) countersValuesOffset() int {
	return m.countersMetaOffset() + m.CountersMetadataLength
}
func (m Metadata) errorLogOffset() int { return m.countersValuesOffset() + m.CountersValuesLength }

// Length is the minimum file length the header describes (unpadded).
func (m Metadata) Length() int { return m.errorLogOffset() + m.ErrorLogLength }

// maxBufferLength bounds each buffer length read from a header: generous
// (Aeron's own maximum for counters is far lower) but keeps sums in int.
const maxBufferLength = 1 << 30

// DecodeMetadata reads and validates the header of a CnC file image. It
// does not check the buffers' inner layout (the constructors of each view
// do that).
func DecodeMetadata(b []byte) (Metadata, error) {
	if len(b) < HeaderLength {
		return Metadata{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrNotReady, len(b), HeaderLength)
	}
	if !aligned8(b) {
		return Metadata{}, malformed("cnc image not 8-byte aligned")
	}
	m := Metadata{
		Version:                 LoadInt32(b, offVersion),
		ToDriverLength:          int(int32(le.Uint32(b[offToDriverLen:]))),
		ToClientsLength:         int(int32(le.Uint32(b[offToClientsLen:]))),
		CountersMetadataLength:  int(int32(le.Uint32(b[offCountersMetaLen:]))),
		CountersValuesLength:    int(int32(le.Uint32(b[offCountersValueLen:]))),
		ErrorLogLength:          int(int32(le.Uint32(b[offErrorLogLen:]))),
		ClientLivenessTimeoutNs: int64(le.Uint64(b[offLivenessTimeout:])),
		StartTimestampMs:        int64(le.Uint64(b[offStartTimestamp:])),
		Pid:                     int64(le.Uint64(b[offPid:])),
	}
	if m.Version == 0 {
		return m, fmt.Errorf("%w: version not yet written", ErrNotReady)
	}
	if m.Version>>16 != Version>>16 {
		return m, fmt.Errorf("%w: file has %s, we speak %s", ErrVersion, VersionString(m.Version), VersionString(Version))
	}
	for _, l := range []struct {
		name string
		v    int
	}{
		{"to-driver", m.ToDriverLength}, {"to-clients", m.ToClientsLength},
		{"counters metadata", m.CountersMetadataLength}, {"counters values", m.CountersValuesLength},
		{"error log", m.ErrorLogLength},
	} {
		if l.v < 0 || l.v > maxBufferLength || l.v%8 != 0 {
			return m, malformed("%s buffer length %d", l.name, l.v)
		}
	}
	if m.Length() > len(b) {
		return m, malformed("header describes %d bytes, file has %d", m.Length(), len(b))
	}
	return m, nil
}

// EncodeMetadata writes m's header into b (driver side). The version is
// written last, with a release store, once everything else is in place:
// call it after laying out the buffers.
func EncodeMetadata(b []byte, m Metadata) {
	le.PutUint32(b[offToDriverLen:], uint32(m.ToDriverLength))
	le.PutUint32(b[offToClientsLen:], uint32(m.ToClientsLength))
	le.PutUint32(b[offCountersMetaLen:], uint32(m.CountersMetadataLength))
	le.PutUint32(b[offCountersValueLen:], uint32(m.CountersValuesLength))
	le.PutUint32(b[offErrorLogLen:], uint32(m.ErrorLogLength))
	le.PutUint64(b[offLivenessTimeout:], uint64(m.ClientLivenessTimeoutNs))
	le.PutUint64(b[offStartTimestamp:], uint64(m.StartTimestampMs))
	le.PutUint64(b[offPid:], uint64(m.Pid))
	StoreInt32(b, offVersion, m.Version)
}

// CnC is a decoded view of a whole CnC file image: its header and the
// views of its buffers. All views alias b.
type CnC struct {
	Meta      Metadata
	ToDriver  *RingBuffer
	ToClients []byte // the broadcast buffer (capacity + trailer)
	Counters  *Counters
	ErrorLog  []byte
	raw       []byte
}

// Raw returns the file image the views alias.
func (c *CnC) Raw() []byte { return c.raw }

// Open decodes a CnC file image (mapped or read): header, then each view.
func Open(b []byte) (*CnC, error) {
	m, err := DecodeMetadata(b)
	if err != nil {
		return nil, err
	}
	rb, err := NewRingBuffer(b[m.toDriverOffset():m.toClientsOffset()])
	if err != nil {
		return nil, fmt.Errorf("to-driver buffer: %w", err)
	}
	bc := b[m.toClientsOffset():m.countersMetaOffset()]
	if _, err := broadcastCapacity(bc); err != nil {
		return nil, fmt.Errorf("to-clients buffer: %w", err)
	}
	ctr, err := NewCounters(b[m.countersMetaOffset():m.countersValuesOffset()], b[m.countersValuesOffset():m.errorLogOffset()])
	if err != nil {
		return nil, fmt.Errorf("counters: %w", err)
	}
	return &CnC{
		Meta:      m,
		ToDriver:  rb,
		ToClients: bc,
		Counters:  ctr,
		ErrorLog:  b[m.errorLogOffset():m.Length()],
		raw:       b,
	}, nil
}

// Layout lays out a fresh CnC image in b (zeroed, at least FileLength(m)
// bytes): the consumer heartbeat is set to the start time, then the header
// is written, version last, so a client that sees the version also sees a
// live heartbeat. Driver side.
func Layout(b []byte, m Metadata) (*CnC, error) {
	if len(b) < m.Length() {
		return nil, malformed("buffer %d bytes < %d", len(b), m.Length())
	}
	if m.ToDriverLength < RingTrailerLength || !aligned8(b) {
		return nil, malformed("to-driver buffer length %d", m.ToDriverLength)
	}
	StoreInt64(b, HeaderLength+m.ToDriverLength-RingTrailerLength+rbHeartbeatOffset, m.StartTimestampMs)
	m.Version = Version
	EncodeMetadata(b, m)
	return Open(b)
}

// FileLength is the page-aligned length of a CnC file for m.
func FileLength(m Metadata, pageSize int) int { return align(m.Length(), pageSize) }

// ResolveDir returns dir if set, else $AERON_DIR if set, else DefaultDir():
// the directory a client attaches to and a driver lays out.
func ResolveDir(dir string) string {
	if dir == "" {
		dir = os.Getenv("AERON_DIR")
	}
	if dir == "" {
		dir = DefaultDir()
	}
	return dir
}

// DefaultDir is the driver directory Aeron's clients use by default:
// /dev/shm/aeron-$USER on Linux (falling back to the temp dir elsewhere).
func DefaultDir() string {
	user := os.Getenv("USER")
	if user == "" {
		user = "default"
	}
	base := "/dev/shm"
	if st, err := os.Stat(base); err != nil || !st.IsDir() {
		base = os.TempDir()
	}
	return filepath.Join(base, "aeron-"+user)
}
