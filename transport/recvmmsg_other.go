//go:build !linux

package transport

import (
	"net"
	"net/netip"
)

// mmsgReader is the recvmmsg reader of Linux; elsewhere there is none.
type mmsgReader struct{}

// newMmsgReader returns nil: batch reads are for Linux only.
func newMmsgReader(*net.UDPConn) *mmsgReader { return nil }

func (*mmsgReader) read([][]byte, []int, []netip.AddrPort) (int, error) {
	return 0, net.ErrClosed
}
