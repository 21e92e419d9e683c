//go:build !linux

package transport

import "net"

func forceBuffers(*net.UDPConn, int, int) {}

func socketBuffers(*net.UDPConn) (int, int) { return 0, 0 }

func recvErrors(*net.UDPConn) {}

func unreachable(*net.UDPConn) []unreachableDest { return nil }
