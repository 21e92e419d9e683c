package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
)

// maxUDPPayload is the largest UDP payload over IPv4.
const maxUDPPayload = 65507

type udpSock struct {
	t     *Transport
	pc    net.PacketConn // a *net.UDPConn unless Config.ListenPacket says otherwise
	local netip.AddrPort
	bc    batchConn // recvmmsg and sendmmsg on pc; nil where there are none

	wmu          sync.Mutex  // held by a write through bw or mw
	bw           batchWriter // scratch of the batch writes through bc
	mw           *mmsgWriter // raw sendmmsg and sendto on pc (Linux); nil: bc and pc's WriteTo
	wbufs        [][]byte    // scratch of the writes through mw
	wto          []netip.AddrPort
	noWriteBatch atomic.Bool  // sendmmsg failed with ENOSYS
	slots        atomic.Int32 // the reader's slots, for tests
	relief       relief       // the reader running OnMessagesThen work
}

// addrPortConn is implemented by *net.UDPConn and by in-memory conns that
// spare the net.Addr allocation of ReadFrom and WriteTo.
type addrPortConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

func (s *udpSock) writeTo(b []byte, to netip.AddrPort) error {
	if c, ok := s.pc.(addrPortConn); ok {
		_, err := c.WriteToUDPAddrPort(b, to)
		return err
	}
	_, err := s.pc.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

// writeOne sends one datagram: through mw where there is one.
func (s *udpSock) writeOne(b []byte, to netip.AddrPort) error {
	if s.mw == nil {
		return s.writeTo(b, to)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.writeRaw(b, to)
	return err
}

// writeRaw sends one datagram through mw. Under wmu.
func (s *udpSock) writeRaw(b []byte, to netip.AddrPort) (int, error) {
	s.wbufs = append(s.wbufs[:0], b)
	s.wto = append(s.wto[:0], to)
	n, err := s.mw.write(s.wbufs, s.wto)
	s.wbufs[0] = nil
	return n, err
}

func (s *udpSock) readFrom(b []byte) (int, netip.AddrPort, error) {
	if c, ok := s.pc.(addrPortConn); ok {
		return c.ReadFromUDPAddrPort(b)
	}
	n, src, err := s.pc.ReadFrom(b)
	return n, addrPortOf(src), err
}

// udpLink sends from one UDP socket to one peer.
type udpLink struct {
	s  *udpSock
	to netip.AddrPort
}

func (l udpLink) flow() Flow { return Flow{Proto: UDP, Local: l.s.local, Remote: l.to} }

func (l udpLink) write(ctx context.Context, b []byte) error {
	if len(b) > maxUDPPayload {
		return fmt.Errorf("transport: %w: %d bytes do not fit a UDP datagram", ErrMessageTooLarge, len(b))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.s.t.stats.writeCalls.Add(1)
	l.s.t.stats.written.Add(1)
	if err := l.s.writeOne(b, l.s.sendAddr(l.to)); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("transport: send UDP to %v: %w", l.to, ErrClosed)
		}
		return fmt.Errorf("transport: send UDP to %v: %w", l.to, err)
	}
	return nil
}

// addUDP sets the socket buffers (of a real socket) and starts the reader
// of a new socket.
func (t *Transport) addUDP(pc net.PacketConn) (*udpSock, error) {
	if uc, ok := pc.(*net.UDPConn); ok {
		t.setBuffers(uc)
		recvErrors(uc)
	}
	s := &udpSock{t: t, pc: pc, local: addrPortOf(pc.LocalAddr())}
	s.bc = t.newBatchConn(pc, s.local)
	if uc, ok := pc.(*net.UDPConn); ok && t.batchHook == nil {
		s.mw = newMmsgWriter(uc)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		pc.Close()
		return nil, ErrClosed
	}
	t.udp = append(t.udp, s)
	if _, ok := t.listening[UDP]; !ok {
		t.listening[UDP] = s.local
	}
	t.wg.Add(1)
	go s.readLoop(newUDPReader(s))
	return s, nil
}

// setBuffers applies UDPConfig's buffer sizes to a socket.
func (t *Transport) setBuffers(pc *net.UDPConn) {
	if n := t.cfg.UDP.ReadBuffer; n > 0 {
		if err := pc.SetReadBuffer(n); err != nil {
			t.log.Warn("sip transport: cannot set UDP receive buffer", "bytes", n, "err", err)
		}
	}
	if n := t.cfg.UDP.WriteBuffer; n > 0 {
		if err := pc.SetWriteBuffer(n); err != nil {
			t.log.Warn("sip transport: cannot set UDP send buffer", "bytes", n, "err", err)
		}
	}
	forceBuffers(pc, t.cfg.UDP.ReadBuffer, t.cfg.UDP.WriteBuffer)
	if rcv, snd := socketBuffers(pc); rcv > 0 {
		t.log.Debug("sip transport: UDP socket buffers", "rcvbuf", rcv, "sndbuf", snd)
	}
}

// udpFor picks the socket to send to target from: the one bound to
// target.Local, else one of the right address family, else a new socket
// on an OS-chosen port.
func (t *Transport) udpFor(ctx context.Context, target Target) (*udpSock, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	var pick *udpSock
	for _, s := range t.udp {
		if target.Local.IsValid() && s.local == target.Local {
			pick = s
			break
		}
		if pick == nil && familyOK(s.local.Addr(), target.Addr.Addr()) {
			pick = s
		}
	}
	t.mu.Unlock()
	if pick != nil {
		return pick, nil
	}
	network, addr := "udp4", "0.0.0.0:0"
	if target.Addr.Addr().Is6() {
		network, addr = "udp6", "[::]:0"
	} else if target.Addr.Addr().IsLoopback() {
		addr = "127.0.0.1:0"
	}
	pc, err := t.cfg.ListenPacket(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("transport: open UDP socket: %w", err)
	}
	return t.addUDP(pc)
}

// familyOK reports whether a socket bound to local can send to dst.
func familyOK(local, dst netip.Addr) bool {
	if local.IsLoopback() && !dst.IsLoopback() {
		return false
	}
	if local.Is4() {
		return dst.Is4()
	}
	// An IPv6 wildcard socket can usually reach both families.
	return dst.Is6() || local.IsUnspecified()
}

// unreachableDest is a destination ICMP reported unreachable.
type unreachableDest struct {
	addr netip.AddrPort
	err  error // a syscall.Errno such as ECONNREFUSED
}

// reportUnreachable passes ICMP errors to Config.OnUnreachable.
func (s *udpSock) reportUnreachable(dests []unreachableDest) {
	t := s.t
	for _, d := range dests {
		f := Flow{Proto: UDP, Local: s.local, Remote: d.addr}
		err := &net.OpError{Op: "write", Net: "udp", Source: net.UDPAddrFromAddrPort(s.local),
			Addr: net.UDPAddrFromAddrPort(d.addr), Err: os.NewSyscallError("sendto", d.err)}
		t.log.Debug("sip transport: UDP destination unreachable", "flow", f, "err", err)
		if t.cfg.OnUnreachable != nil {
			t.cfg.OnUnreachable(f, err)
		}
	}
}
