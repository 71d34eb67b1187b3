package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
)

// udp.go is the only file that touches sockets.

type udpConn struct {
	c *net.UDPConn
}

// resolveUDP resolves host:port to one address (IPv4 preferred).
func resolveUDP(hostport string) (netip.AddrPort, error) {
	host, port, err := splitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %q: %v", host, err)
	}
	pick := ips[0]
	for _, ip := range ips {
		if ip.To4() != nil {
			pick = ip
			break
		}
	}
	a, _ := netip.AddrFromSlice(pick)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

// listenUDP binds addr and applies the socket buffer sizes (0: OS default).
func listenUDP(addr netip.AddrPort, rcvBuf, sndBuf int) (*udpConn, error) {
	network := "udp4"
	if addr.Addr().Is6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	if rcvBuf > 0 {
		_ = c.SetReadBuffer(rcvBuf)
	}
	if sndBuf > 0 {
		_ = c.SetWriteBuffer(sndBuf)
	}
	return &udpConn{c: c}, nil
}

// localFor returns the address a publication binds to reach dst: loopback
// for a loopback destination, the wildcard otherwise (or iface if given).
func localFor(dst netip.AddrPort, iface string) (netip.AddrPort, error) {
	if iface != "" {
		if _, _, err := splitHostPort(iface); err != nil {
			iface += ":0"
		}
		return resolveUDP(iface)
	}
	switch {
	case dst.Addr().Is4() && dst.Addr().IsLoopback():
		return netip.MustParseAddrPort("127.0.0.1:0"), nil
	case dst.Addr().Is6() && dst.Addr().IsLoopback():
		return netip.MustParseAddrPort("[::1]:0"), nil
	case dst.Addr().Is6():
		return netip.MustParseAddrPort("[::]:0"), nil
	}
	return netip.MustParseAddrPort("0.0.0.0:0"), nil
}

func (u *udpConn) writeTo(b []byte, to netip.AddrPort) error {
	_, err := u.c.WriteToUDPAddrPort(b, to)
	return err
}

func (u *udpConn) readFrom(b []byte) (int, netip.AddrPort, error) {
	n, from, err := u.c.ReadFromUDPAddrPort(b)
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), err
}

func (u *udpConn) setReadDeadline(t time.Time) { _ = u.c.SetReadDeadline(t) }

func (u *udpConn) localAddr() netip.AddrPort {
	return u.c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (u *udpConn) close() error { return u.c.Close() }

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// datagramReader reads datagrams in batches: read blocks until at least
// one is there (or the deadline passes, or the socket closes) and returns
// how many; datagram(i) returns the i-th, valid until the next read.
type datagramReader interface {
	read() (int, error)
	datagram(i int) ([]byte, netip.AddrPort)
}

// datagramWriter queues datagrams to one destination; flush sends them.
type datagramWriter interface {
	add(b []byte)
	flush()
	errors() uint64
}

type simpleReader struct {
	u    *udpConn
	buf  []byte
	n    int
	from netip.AddrPort
}

func newSimpleReader(u *udpConn, size int) *simpleReader {
	return &simpleReader{u: u, buf: make([]byte, size)}
}

func (r *simpleReader) read() (int, error) {
	n, from, err := r.u.readFrom(r.buf)
	if err != nil {
		return 0, err
	}
	r.n, r.from = n, from
	return 1, nil
}

func (r *simpleReader) datagram(int) ([]byte, netip.AddrPort) { return r.buf[:r.n], r.from }

type simpleWriter struct {
	u    *udpConn
	to   netip.AddrPort
	errs uint64
}

func newSimpleWriter(u *udpConn, to netip.AddrPort) *simpleWriter { return &simpleWriter{u: u, to: to} }

func (w *simpleWriter) add(b []byte) {
	if err := w.u.writeTo(b, w.to); err != nil {
		w.errs++
	}
}

func (w *simpleWriter) flush()         {}
func (w *simpleWriter) errors() uint64 { return w.errs }
