//go:build !(linux && (amd64 || arm64))

package transport

import "net/netip"

func newDatagramReader(u *udpConn, size int) datagramReader { return newSimpleReader(u, size) }

func newDatagramWriter(u *udpConn, to netip.AddrPort, _ bool) datagramWriter {
	return newSimpleWriter(u, to)
}
