package transport

import "syscall"

// rcvBufSize returns the usable SO_RCVBUF of the socket: Linux reports
// twice the requested size (the other half is bookkeeping), capped by
// net.core.rmem_max. 0 when unknown.
func (u *udpConn) rcvBufSize() int {
	rc, err := u.c.SyscallConn()
	if err != nil {
		return 0
	}
	v := 0
	_ = rc.Control(func(fd uintptr) {
		n, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		if err == nil {
			v = n / 2
		}
	})
	return v
}
