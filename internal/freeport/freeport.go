// Package freeport finds a port on 127.0.0.1 that is free for TCP and UDP
// both, as a pod's gossip port needs (memberlist binds one of each). The
// port is free when the call returns; a caller racing other processes for
// it must still handle "address already in use".
package freeport

import (
	"errors"
	"net"
	"strconv"
)

// ErrNone is returned when no port free for both protocols was found.
var ErrNone = errors.New("freeport: no port free for TCP and UDP")

// TCPUDP returns a port on 127.0.0.1 that was free for TCP and UDP.
func TCPUDP() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, ErrNone
}
