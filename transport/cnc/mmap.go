//go:build unix

package cnc

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Mapping is a shared memory mapping of a whole file.
type Mapping struct {
	Data []byte
	path string
}

// MapFile maps the whole of an existing file, shared, read-write.
func MapFile(path string) (*Mapping, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() <= 0 || st.Size() > 1<<40 {
		return nil, malformed("%s: size %d", path, st.Size())
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("cnc: mmap %s: %w", path, err)
	}
	return &Mapping{Data: b, path: path}, nil
}

// CreateFile creates (or truncates) path at length bytes, zero filled, and
// maps it.
func CreateFile(path string, length int) (*Mapping, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.Truncate(int64(length)); err != nil {
		return nil, err
	}
	b, err := unix.Mmap(int(f.Fd()), 0, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("cnc: mmap %s: %w", path, err)
	}
	return &Mapping{Data: b, path: path}, nil
}

// Path is the mapped file's path.
func (m *Mapping) Path() string { return m.path }

// Close unmaps. The slice must not be used afterwards.
func (m *Mapping) Close() error {
	if m == nil || m.Data == nil {
		return nil
	}
	err := unix.Munmap(m.Data)
	m.Data = nil
	return err
}
