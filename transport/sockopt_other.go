//go:build !linux

package transport

// rcvBufSize is unknown off Linux.
func (u *udpConn) rcvBufSize() int { return 0 }
