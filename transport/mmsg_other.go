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

// mmsgWriter is the sendmmsg writer of Linux; elsewhere there is none.
type mmsgWriter struct{}

// newMmsgWriter returns nil: the raw writer is for Linux only.
func newMmsgWriter(*net.UDPConn) *mmsgWriter { return nil }

func (*mmsgWriter) write([][]byte, []netip.AddrPort) (int, error) {
	return 0, net.ErrClosed
}
