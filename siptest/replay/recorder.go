package replay

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Recorder records the datagrams a user agent sends and receives on its
// UDP sockets, as a Trace in which the user agent is side B and the party
// it talks to is side A. It wraps net.PacketConns: hand ListenPacket to
// the user agent (sip.TransportOptions.ListenPacket,
// transport.Config.ListenPacket), or Wrap a conn yourself.
//
//	rec := &replay.Recorder{}
//	ua, _ := sip.NewUserAgent(sip.UserAgentOptions{
//		URI:       "sip:alice@example.com",
//		Transport: sip.TransportOptions{Server: "sip:192.0.2.10:5060", ListenPacket: rec.ListenPacket(nil)},
//	})
//	// … register, call …
//	tr := rec.Trace()
//	tr.Title = "REGISTER against example.com"
//	replay.WriteTrace(f, tr)
//
// The zero Recorder is ready to use and records everything; set Remote
// before use to keep only the datagrams exchanged with one address. Its
// methods are safe for concurrent use.
type Recorder struct {
	// Remote, when valid, restricts the recording to datagrams sent to
	// or received from this address; others are counted in Skipped.
	// When zero, the first remote address seen becomes side A's address
	// and datagrams with any other address are skipped.
	Remote netip.AddrPort
	// KeepAlives records keep-alive datagrams (CRLF and CRLFCRLF) too;
	// by default they are left out.
	KeepAlives bool
	// Now returns the current time; nil means time.Now. Inside a
	// testing/synctest bubble time.Now is virtual anyway.
	Now func() time.Time

	mu      sync.Mutex
	start   time.Time
	remote  netip.AddrPort
	local   netip.AddrPort
	msgs    []Message
	ids     []uint64 // of msgs, for forget
	lastID  uint64
	skipped int
}

// ListenPacket returns a function with the signature of
// net.ListenConfig.ListenPacket that opens conns with listen (nil: the
// operating system's, net.ListenConfig{}.ListenPacket) and records what
// passes through each of them.
func (r *Recorder) ListenPacket(listen func(ctx context.Context, network, address string) (net.PacketConn, error)) func(ctx context.Context, network, address string) (net.PacketConn, error) {
	if listen == nil {
		var lc net.ListenConfig
		listen = lc.ListenPacket
	}
	return func(ctx context.Context, network, address string) (net.PacketConn, error) {
		pc, err := listen(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return r.Wrap(pc), nil
	}
}

// Wrap returns a net.PacketConn that behaves as c and records every
// datagram read from it or written to it.
func (r *Recorder) Wrap(c net.PacketConn) net.PacketConn {
	return &recordingConn{PacketConn: c, r: r}
}

// Trace returns what has been recorded so far: side B is the local
// address of the recorded conns (the first one that carried a message),
// side A the remote address. Names and descriptions are left for the
// caller to fill in ("ua" and "peer" by default). Message times count from
// the first recorded message.
func (r *Recorder) Trace() *Trace {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := &Trace{
		A: Party{Name: "peer", Addr: r.remote},
		B: Party{Name: "ua", Addr: r.local},
	}
	for _, m := range r.msgs {
		m.Data = slices.Clone(m.Data)
		t.Messages = append(t.Messages, m)
	}
	return t
}

// Len returns the number of messages recorded so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// Skipped returns the number of datagrams left out because they went to
// or came from another address than side A's.
func (r *Recorder) Skipped() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skipped
}

// Reset forgets everything recorded; the next message starts a new trace
// (and, unless Remote is set, a new side A).
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs, r.ids, r.skipped = nil, nil, 0
	r.remote, r.local = netip.AddrPort{}, netip.AddrPort{}
	r.start = time.Time{}
}

// record adds one datagram; from is SideB for a datagram the local conn
// wrote. It returns an id for forget, 0 when the datagram was not
// recorded.
func (r *Recorder) record(from Side, local, remote netip.AddrPort, data []byte) uint64 {
	if !r.KeepAlives && isKeepAlive(data) {
		return 0
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	t := now()
	r.mu.Lock()
	defer r.mu.Unlock()
	want := r.Remote
	if !want.IsValid() {
		want = r.remote
	}
	if want.IsValid() && unmap(remote) != unmap(want) {
		r.skipped++
		return 0
	}
	if !r.remote.IsValid() {
		r.remote = unmap(remote)
	}
	if !r.local.IsValid() {
		r.local = unmap(local)
	}
	if r.start.IsZero() {
		r.start = t
	}
	r.msgs = append(r.msgs, Message{At: t.Sub(r.start).Round(time.Microsecond), From: from, Data: slices.Clone(data)})
	r.lastID++
	r.ids = append(r.ids, r.lastID)
	return r.lastID
}

// forget removes the datagram record returned id for.
func (r *Recorder) forget(id uint64) {
	if id == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := slices.Index(r.ids, id); i >= 0 {
		r.msgs = slices.Delete(r.msgs, i, i+1)
		r.ids = slices.Delete(r.ids, i, i+1)
	}
}

// isKeepAlive reports whether a datagram is only CRs and LFs (RFC 5626
// keep-alives) or empty.
func isKeepAlive(b []byte) bool {
	for _, c := range b {
		if c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// addrPort converts a net.Addr to a netip.AddrPort (zero when it has
// none).
func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case interface{ AddrPort() netip.AddrPort }:
		return unmap(a.AddrPort())
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return unmap(ap)
}

// recordingConn is a net.PacketConn that reports its datagrams to a
// Recorder.
type recordingConn struct {
	net.PacketConn
	r *Recorder
}

func (c *recordingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.PacketConn.ReadFrom(b)
	if err == nil || n > 0 {
		c.r.record(SideA, addrPort(c.LocalAddr()), addrPort(from), b[:n])
	}
	return n, from, err
}

// WriteTo records the datagram before it is written, so that a quick
// answer read by another goroutine cannot be recorded before it, and
// forgets it again when the write fails.
func (c *recordingConn) WriteTo(b []byte, to net.Addr) (int, error) {
	id := c.r.record(SideB, addrPort(c.LocalAddr()), addrPort(to), b)
	n, err := c.PacketConn.WriteTo(b, to)
	if err != nil {
		c.r.forget(id)
	}
	return n, err
}
