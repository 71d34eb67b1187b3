package cnc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Sentinel errors. Every decoder of shared memory returns one of these
// (wrapped with detail) instead of panicking on bad input.
var (
	// ErrMalformed: a structure read from shared memory or a buffer is
	// inconsistent (lengths out of range, bad capacities, bad alignment).
	ErrMalformed = errors.New("cnc: malformed")
	// ErrVersion: the CnC file's major version is not the one we speak.
	ErrVersion = errors.New("cnc: incompatible cnc version")
	// ErrNotReady: the file exists but the driver has not finished laying
	// it out (version still 0, or the file is shorter than its header).
	ErrNotReady = errors.New("cnc: cnc file not ready")
	// ErrFull: a ring buffer has no room for the record right now.
	ErrFull = errors.New("cnc: ring buffer full")
	// ErrTooLong: a record exceeds a buffer's maximum message length.
	ErrTooLong = errors.New("cnc: record too long")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

var le = binary.LittleEndian

// Shared-memory accessors. Offsets must be in range and naturally aligned;
// every constructor in this package checks both before handing out a view,
// so these are only called with validated offsets. Slicing (b[off:off+8])
// keeps Go's bounds check as a last line of defence: a bug is a panic in
// our code, never a read outside the mapping.

func i64p(b []byte, off int) *int64 { return (*int64)(unsafe.Pointer(&b[off : off+8][0])) }
func i32p(b []byte, off int) *int32 { return (*int32)(unsafe.Pointer(&b[off : off+4][0])) }

// LoadInt64 is an acquire load of the int64 at off.
func LoadInt64(b []byte, off int) int64 { return atomic.LoadInt64(i64p(b, off)) }

// StoreInt64 is a release store of the int64 at off.
func StoreInt64(b []byte, off int, v int64) { atomic.StoreInt64(i64p(b, off), v) }

// AddInt64 atomically adds d to the int64 at off and returns the old value.
func AddInt64(b []byte, off int, d int64) int64 { return atomic.AddInt64(i64p(b, off), d) - d }

// CasInt64 compares-and-swaps the int64 at off.
func CasInt64(b []byte, off int, old, nw int64) bool {
	return atomic.CompareAndSwapInt64(i64p(b, off), old, nw)
}

// LoadInt32 is an acquire load of the int32 at off.
func LoadInt32(b []byte, off int) int32 { return atomic.LoadInt32(i32p(b, off)) }

// StoreInt32 is a release store of the int32 at off.
func StoreInt32(b []byte, off int, v int32) { atomic.StoreInt32(i32p(b, off), v) }

// StoreRelease32 stores v at off with release ordering only (earlier
// writes are visible before it), without StoreInt32's full fence: for the
// hot paths of the log protocol (frame lengths, tails of exclusive
// publications, subscriber positions), where nothing relies on a later
// load seeing the store first.
func StoreRelease32(b []byte, off int, v int32) { storeRelease32(i32p(b, off), v) }

// StoreRelease64 is StoreRelease32 for an int64.
func StoreRelease64(b []byte, off int, v int64) { storeRelease64(i64p(b, off), v) }

// CasInt32 compares-and-swaps the int32 at off.
func CasInt32(b []byte, off int, old, nw int32) bool {
	return atomic.CompareAndSwapInt32(i32p(b, off), old, nw)
}

// aligned8 reports whether b starts on an 8-byte boundary (shared memory is
// page aligned; a test buffer may not be).
func aligned8(b []byte) bool {
	return len(b) == 0 || uintptr(unsafe.Pointer(&b[0]))%8 == 0
}

func align(v, a int) int { return (v + a - 1) &^ (a - 1) }

func isPow2(v int) bool { return v > 0 && v&(v-1) == 0 }

// AlignedCopy returns a copy of b in 8-byte aligned memory (for tests and
// for buffers read from files rather than mapped).
func AlignedCopy(b []byte) []byte {
	words := make([]uint64, (len(b)+7)/8)
	if len(words) == 0 {
		return []byte{}
	}
	out := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)[:len(b)]
	copy(out, b)
	return out
}

// ErrLapped: a broadcast receiver was overtaken and lost records.
var ErrLapped = errors.New("cnc: broadcast receiver lapped")
