//go:build linux && (amd64 || arm64)

package transport

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"unsafe"
)

// Batched datagram I/O with recvmmsg/sendmmsg: one system call moves up to
// batchSize datagrams.

type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
	_   [4]byte
}

const batchSize = 32

// mmsgReader reads up to batchSize datagrams per system call.
type mmsgReader struct {
	rc    syscall.RawConn
	bufs  [][]byte
	names []syscall.RawSockaddrAny
	iovs  []syscall.Iovec
	msgs  []mmsghdr
}

func newDatagramReader(u *udpConn, size int) datagramReader {
	rc, err := u.c.SyscallConn()
	if err != nil {
		return newSimpleReader(u, size)
	}
	r := &mmsgReader{rc: rc, bufs: make([][]byte, batchSize), names: make([]syscall.RawSockaddrAny, batchSize),
		iovs: make([]syscall.Iovec, batchSize), msgs: make([]mmsghdr, batchSize)}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.msgs[i].hdr.Iov = &r.iovs[i]
		r.msgs[i].hdr.Iovlen = 1
	}
	return r
}

func (r *mmsgReader) read() (int, error) {
	var n int
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			for i := range r.msgs {
				r.msgs[i].hdr.Namelen = syscall.SizeofSockaddrAny
				r.msgs[i].hdr.Flags = 0
				r.msgs[i].n = 0
			}
			c, _, e := syscall.Syscall6(sysRecvmmsg, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), syscall.MSG_DONTWAIT, 0, 0)
			switch e {
			case 0:
				n = int(c)
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

func (r *mmsgReader) datagram(i int) ([]byte, netip.AddrPort) {
	b := r.bufs[i][:r.msgs[i].n]
	if r.msgs[i].hdr.Flags&syscall.MSG_TRUNC != 0 {
		b = r.bufs[i] // truncated: the frame checks drop it
	}
	return b, sockaddrToAddrPort(&r.names[i])
}

func sockaddrToAddrPort(sa *syscall.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		p := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), port)
	case syscall.AF_INET6:
		p := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

// mmsgWriter queues datagrams to one destination and sends them with one
// sendmmsg per flush. Queued slices must stay unchanged until flush; small
// datagrams (control frames built in scratch buffers) are copied.
type mmsgWriter struct {
	rc      syscall.RawConn
	name    syscall.RawSockaddrInet6 // large enough for either family
	namelen uint32
	iovs    []syscall.Iovec
	msgs    []mmsghdr
	small   [][64]byte
	n       int
	errs    uint64
}

func newDatagramWriter(u *udpConn, to netip.AddrPort) datagramWriter {
	rc, err := u.c.SyscallConn()
	if err != nil {
		return newSimpleWriter(u, to)
	}
	w := &mmsgWriter{rc: rc, iovs: make([]syscall.Iovec, batchSize), msgs: make([]mmsghdr, batchSize), small: make([][64]byte, batchSize)}
	if to.Addr().Is4() && u.localAddr().Addr().Is4() {
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&w.name))
		sa.Family = syscall.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], to.Port())
		sa.Addr = to.Addr().As4()
		w.namelen = syscall.SizeofSockaddrInet4
	} else {
		w.name.Family = syscall.AF_INET6
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&w.name.Port))[:], to.Port())
		w.name.Addr = to.Addr().As16()
		w.namelen = syscall.SizeofSockaddrInet6
	}
	for i := range w.msgs {
		w.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&w.name))
		w.msgs[i].hdr.Namelen = w.namelen
		w.msgs[i].hdr.Iov = &w.iovs[i]
		w.msgs[i].hdr.Iovlen = 1
	}
	return w
}

func (w *mmsgWriter) add(b []byte) {
	if len(b) == 0 {
		return
	}
	if len(b) <= len(w.small[w.n]) {
		copy(w.small[w.n][:], b)
		b = w.small[w.n][:len(b)]
	}
	w.iovs[w.n].Base = &b[0]
	w.iovs[w.n].SetLen(len(b))
	w.n++
	if w.n == len(w.msgs) {
		w.flush()
	}
}

func (w *mmsgWriter) flush() {
	sent := 0
	for sent < w.n {
		var errno syscall.Errno
		var c int
		err := w.rc.Write(func(fd uintptr) bool {
			for {
				r, _, e := syscall.Syscall6(sysSendmmsg, fd, uintptr(unsafe.Pointer(&w.msgs[sent])), uintptr(w.n-sent), syscall.MSG_DONTWAIT, 0, 0)
				switch e {
				case 0:
					c = int(r)
					return true
				case syscall.EINTR:
					continue
				case syscall.EAGAIN:
					return false
				default:
					errno = e
					return true
				}
			}
		})
		if err != nil || errno != 0 {
			w.errs += uint64(w.n - sent)
			break // closed socket or a hard error: drop the rest
		}
		sent += c
	}
	for i := 0; i < w.n; i++ {
		w.iovs[i].Base = nil // do not keep the log alive
	}
	w.n = 0
}

func (w *mmsgWriter) errors() uint64 { return w.errs }
