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
//
// With UDP GSO (UDP_SEGMENT, Linux ≥ 4.18) a run of datagrams of equal
// length that lie back to back in memory (consecutive data datagrams of
// the log) goes down as one buffer the kernel cuts into those same
// datagrams: the wire sees exactly what one sendmmsg entry per datagram
// would send, at a fraction of the per-datagram cost. If the kernel or the
// route refuses it, the writer falls back to one entry per datagram.
type mmsgWriter struct {
	rc      syscall.RawConn
	name    syscall.RawSockaddrInet6 // large enough for either family
	namelen uint32
	iovs    []syscall.Iovec
	msgs    []mmsghdr
	small   [][64]byte
	seg     []int  // per entry: datagram length (GSO segment size)
	last    []int  // per entry: length of its last datagram
	ctrl    []byte // per entry: a UDP_SEGMENT control message
	gso     bool
	n       int
	errs    uint64
}

const (
	solUDP     = 17  // SOL_UDP
	udpSegment = 103 // UDP_SEGMENT
	// gsoMaxBytes and gsoMaxSegs bound one GSO entry (one IP packet of at
	// most 64 KiB, UDP_MAX_SEGMENTS = 64).
	gsoMaxBytes = 65000
	gsoMaxSegs  = 64
)

var cmsgSpace = syscall.CmsgSpace(2)

// newDatagramWriter returns a writer to to; gso allows UDP GSO where the
// socket supports it (Config.GSO).
func newDatagramWriter(u *udpConn, to netip.AddrPort, gso bool) datagramWriter {
	rc, err := u.c.SyscallConn()
	if err != nil {
		return newSimpleWriter(u, to)
	}
	w := &mmsgWriter{rc: rc, iovs: make([]syscall.Iovec, batchSize), msgs: make([]mmsghdr, batchSize), small: make([][64]byte, batchSize),
		seg: make([]int, batchSize), last: make([]int, batchSize), ctrl: make([]byte, batchSize*cmsgSpace)}
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
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&w.ctrl[i*cmsgSpace]))
		h.Level = solUDP
		h.Type = udpSegment
		h.SetLen(syscall.CmsgLen(2))
	}
	_ = rc.Control(func(fd uintptr) {
		_, err := syscall.GetsockoptInt(int(fd), solUDP, udpSegment)
		w.gso = gso && err == nil
	})
	return w
}

func (w *mmsgWriter) add(b []byte) {
	if len(b) == 0 {
		return
	}
	if w.gso && w.n > 0 && len(b) > len(w.small[0]) {
		// Append to the previous entry when b continues it in memory, has
		// its segment size (or is shorter and so ends it) and fits.
		k := w.n - 1
		iov := &w.iovs[k]
		total := int(iov.Len)
		if w.last[k] == w.seg[k] && len(b) <= w.seg[k] && total+len(b) <= gsoMaxBytes && total/w.seg[k] < gsoMaxSegs &&
			uintptr(unsafe.Pointer(iov.Base))+uintptr(total) == uintptr(unsafe.Pointer(&b[0])) {
			iov.SetLen(total + len(b))
			w.last[k] = len(b)
			if total == w.seg[k] { // second datagram: becomes a GSO entry
				w.msgs[k].hdr.Control = &w.ctrl[k*cmsgSpace]
				w.msgs[k].hdr.SetControllen(cmsgSpace)
				*(*uint16)(unsafe.Pointer(&w.ctrl[k*cmsgSpace+syscall.CmsgLen(0)])) = uint16(w.seg[k])
			}
			return
		}
	}
	if len(b) <= len(w.small[w.n]) {
		copy(w.small[w.n][:], b)
		b = w.small[w.n][:len(b)]
	}
	w.iovs[w.n].Base = &b[0]
	w.iovs[w.n].SetLen(len(b))
	w.seg[w.n], w.last[w.n] = len(b), len(b)
	w.n++
	if w.n == len(w.small) {
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
		if err == nil && w.msgs[sent].hdr.Controllen != 0 &&
			(errno == syscall.EIO || errno == syscall.EINVAL || errno == syscall.EMSGSIZE || errno == syscall.ENOPROTOOPT || errno == syscall.EOPNOTSUPP) {
			// GSO refused (no checksum offload on the route, old kernel,
			// or EMSGSIZE: a segment larger than the route MTU, which
			// the kernel fragments only when sent as a datagram of its own):
			// send one datagram per entry from now on.
			w.gso = false
			w.split(sent)
			continue
		}
		if err != nil || errno != 0 {
			w.errs += uint64(w.n - sent)
			break // closed socket or a hard error: drop the rest
		}
		sent += c
	}
	for i := 0; i < w.n; i++ {
		w.iovs[i].Base = nil // do not keep the log alive
		w.msgs[i].hdr.Control = nil
		w.msgs[i].hdr.SetControllen(0)
	}
	w.n = 0
}

// split turns the GSO entries from entry from on into one entry per
// datagram (the batch may grow beyond batchSize).
func (w *mmsgWriter) split(from int) {
	type dg struct {
		base *byte
		n    int
	}
	var rest []dg
	for i := from; i < w.n; i++ {
		p := unsafe.Pointer(w.iovs[i].Base)
		total := int(w.iovs[i].Len)
		for off := 0; off < total; off += w.seg[i] {
			rest = append(rest, dg{(*byte)(unsafe.Add(p, off)), min(w.seg[i], total-off)})
		}
	}
	need := from + len(rest)
	for len(w.msgs) < need {
		w.iovs = append(w.iovs, syscall.Iovec{})
		w.msgs = append(w.msgs, mmsghdr{})
		w.seg = append(w.seg, 0)
		w.last = append(w.last, 0)
	}
	for i := range w.msgs { // iovs may have moved
		w.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&w.name))
		w.msgs[i].hdr.Namelen = w.namelen
		w.msgs[i].hdr.Iov = &w.iovs[i]
		w.msgs[i].hdr.Iovlen = 1
	}
	for k, d := range rest {
		i := from + k
		w.iovs[i].Base = d.base
		w.iovs[i].SetLen(d.n)
		w.seg[i], w.last[i] = d.n, d.n
		w.msgs[i].hdr.Control = nil
		w.msgs[i].hdr.SetControllen(0)
	}
	w.n = need
}

func (w *mmsgWriter) errors() uint64 { return w.errs }
