package siptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
)

// PacketConn is an Endpoint seen as a net.PacketConn, the way a UDP socket
// (*net.UDPConn) is one, so that code written for sockets runs on a
// Network unchanged: create it with Network.ListenPacket, or hand
// Network.PacketListener to a component that opens its own sockets.
//
// Its deadlines follow the time package like everything else in the kit,
// so in a synctest bubble they expire on virtual time. Its methods are safe
// for concurrent use.
type PacketConn struct {
	ep *Endpoint

	mu            sync.Mutex
	readDeadline  time.Time
	writeDeadline time.Time
	readChanged   chan struct{} // closed and replaced when readDeadline changes
}

// ListenPacket opens an Endpoint as Listen does (same name, same choice of
// address for a zero addr or port 0) and returns it as a net.PacketConn.
func (n *Network) ListenPacket(name string, addr netip.AddrPort) (*PacketConn, error) {
	ep, err := n.Listen(name, addr)
	if err != nil {
		return nil, err
	}
	return &PacketConn{ep: ep, readChanged: make(chan struct{})}, nil
}

// Endpoint returns the Endpoint under c, for its Name, Addr and Queued.
// Receive through c only: Recv on the Endpoint takes the same datagrams.
func (c *PacketConn) Endpoint() *Endpoint { return c.ep }

// LocalAddr returns the Endpoint's address, a *net.UDPAddr.
func (c *PacketConn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.ep.addr) }

// ReadFrom waits for the next datagram, copies it into b and returns its
// length and its sender, a *net.UDPAddr. As with a UDP socket, the part of
// a datagram that does not fit in b is lost. It fails with an error
// wrapping os.ErrDeadlineExceeded (a net.Error whose Timeout is true) once
// the read deadline has passed, and with one wrapping net.ErrClosed once c
// is closed.
func (c *PacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// ReadFromUDPAddrPort is ReadFrom returning the sender as a
// netip.AddrPort, as the method of *net.UDPConn does.
func (c *PacketConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		c.mu.Lock()
		deadline, changed := c.readDeadline, c.readChanged
		c.mu.Unlock()
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return 0, netip.AddrPort{}, c.opError("read", nil, os.ErrDeadlineExceeded)
		}
		p, ok, err := c.ep.tryRecv()
		if err != nil {
			return 0, netip.AddrPort{}, c.opError("read", nil, net.ErrClosed)
		}
		if ok {
			return copy(b, p.Data), p.From, nil
		}
		var expired <-chan time.Time
		var timer *time.Timer
		if !deadline.IsZero() {
			timer = time.NewTimer(time.Until(deadline))
			expired = timer.C
		}
		select {
		case <-c.ep.ready:
		case <-c.ep.done:
		case <-changed:
		case <-expired:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// WriteTo sends a copy of b to addr, a *net.UDPAddr or any net.Addr with an
// AddrPort method or whose String is an address and port, with the
// semantics of Endpoint.Send: it returns len(b) even when the datagram is
// then lost. It fails once c is closed (net.ErrClosed), when the write
// deadline has passed (os.ErrDeadlineExceeded), or for an address that is
// not a valid destination (ErrInvalidAddr).
func (c *PacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	var to netip.AddrPort
	switch a := addr.(type) {
	case interface{ AddrPort() netip.AddrPort }:
		to = a.AddrPort()
	case nil:
	default:
		to, _ = netip.ParseAddrPort(a.String())
	}
	if !to.IsValid() {
		return 0, c.opError("write", addr, fmt.Errorf("%w: %v", ErrInvalidAddr, addr))
	}
	return c.WriteToUDPAddrPort(b, to)
}

// WriteToUDPAddrPort is WriteTo with the destination as a netip.AddrPort,
// as the method of *net.UDPConn.
func (c *PacketConn) WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error) {
	c.mu.Lock()
	deadline := c.writeDeadline
	c.mu.Unlock()
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return 0, c.opError("write", net.UDPAddrFromAddrPort(to), os.ErrDeadlineExceeded)
	}
	if err := c.ep.Send(to, b); err != nil {
		if errors.Is(err, ErrClosed) {
			err = net.ErrClosed
		}
		return 0, c.opError("write", net.UDPAddrFromAddrPort(to), err)
	}
	return len(b), nil
}

// Close closes the Endpoint (see Endpoint.Close): a blocked ReadFrom
// returns an error wrapping net.ErrClosed, and the address becomes free.
// Unlike a socket's, a second Close returns nil.
func (c *PacketConn) Close() error { return c.ep.Close() }

// SetDeadline sets both the read and the write deadline.
func (c *PacketConn) SetDeadline(t time.Time) error {
	c.setDeadlines(t, true, true)
	return nil
}

// SetReadDeadline sets the time after which ReadFrom fails with
// os.ErrDeadlineExceeded, for pending and future calls; a zero t means
// none.
func (c *PacketConn) SetReadDeadline(t time.Time) error {
	c.setDeadlines(t, true, false)
	return nil
}

// SetWriteDeadline sets the time after which WriteTo fails with
// os.ErrDeadlineExceeded; a zero t means none. A write never blocks.
func (c *PacketConn) SetWriteDeadline(t time.Time) error {
	c.setDeadlines(t, false, true)
	return nil
}

func (c *PacketConn) setDeadlines(t time.Time, read, write bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if write {
		c.writeDeadline = t
	}
	if read {
		c.readDeadline = t
		close(c.readChanged)
		c.readChanged = make(chan struct{})
	}
}

func (c *PacketConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: err}
}

// PacketListener returns a function with the signature of
// net.ListenConfig.ListenPacket that opens PacketConns on n, for
// components that open their own UDP sockets, such as
// transport.Config.ListenPacket or sip.TransportOptions.ListenPacket.
// Every Endpoint it opens is labelled name, as one host with several
// sockets.
//
// network must be "udp", "udp4" or "udp6", and address a numeric
// "ip:port" (host names are not resolved): a port of 0 picks a free port.
// An unspecified IP ("0.0.0.0:0", "[::]:0", ":5060") stands for the
// host's own address: the first IP of that family this function has bound
// to, else the first IP of 192.0.2.0/24 (or 2001:db8::/64) on which no
// Endpoint has listened, which it then keeps.
func (n *Network) PacketListener(name string) func(ctx context.Context, network, address string) (net.PacketConn, error) {
	var mu sync.Mutex
	var host4, host6 netip.Addr
	return func(ctx context.Context, network, address string) (net.PacketConn, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fail := func(err error) error {
			return &net.OpError{Op: "listen", Net: network, Err: err}
		}
		switch network {
		case "udp", "udp4", "udp6":
		default:
			return nil, fail(fmt.Errorf("siptest: network %q is not udp, udp4 or udp6", network))
		}
		ap, err := parseListenAddr(address)
		if err != nil {
			return nil, fail(err)
		}
		ip := ap.Addr()
		if ip.Is4() && network == "udp6" || ip.Is6() && !ip.IsUnspecified() && network == "udp4" {
			return nil, fail(fmt.Errorf("%w: %s is not an %s address", ErrInvalidAddr, address, network))
		}
		mu.Lock()
		defer mu.Unlock()
		if ip.IsUnspecified() {
			v6 := ip.Is6() && network != "udp4"
			switch {
			case v6 && host6.IsValid():
				ip = host6
			case !v6 && host4.IsValid():
				ip = host4
			case network == "udp" && ip.Is6() && host4.IsValid():
				ip = host4 // a dual-stack wildcard
			default:
				if ip, err = n.freeHost(v6); err != nil {
					return nil, fail(err)
				}
			}
		}
		pc, err := n.ListenPacket(name, netip.AddrPortFrom(ip, ap.Port()))
		if err != nil {
			return nil, fail(err)
		}
		if ip.Is4() && !host4.IsValid() {
			host4 = ip
		} else if ip.Is6() && !host6.IsValid() {
			host6 = ip
		}
		return pc, nil
	}
}

// parseListenAddr parses "ip:port", ":port" or "[ip]:port".
func parseListenAddr(address string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrInvalidAddr, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %q is not an IP address (siptest resolves no names)", ErrInvalidAddr, host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: port %q", ErrInvalidAddr, port)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

// freeHost returns the first address of 192.0.2.0/24 (or of
// 2001:db8::/64) on which no Endpoint has listened, so that an address
// names one host in a whole trace.
func (n *Network) freeHost(v6 bool) (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	used := make(map[netip.Addr]bool, len(n.names))
	for a := range n.names { // every address ever listened on
		used[a.Addr()] = true
	}
	for h := 1; h < 255; h++ {
		ip := TestNetAddr(byte(h), 0).Addr()
		if v6 {
			ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(h)})
		}
		if !used[ip] {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("siptest: no free host address left: %w", ErrAddrInUse)
}
