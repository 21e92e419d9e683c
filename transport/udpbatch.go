package transport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/sipua/sip/trace"
)

// This file holds the batched UDP I/O: a socket's reader takes up to
// UDPConfig.BatchSize datagrams per system call (recvmmsg) and hands the
// messages to OnMessages in one call; responses sent while a Batch runs
// go out together (sendmmsg) when it ends.

// batchConn is the part of ipv4.PacketConn and ipv6.PacketConn used here
// (both take the same Message type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// Stats counts a Transport's UDP system calls and datagrams since New.
type Stats struct {
	// ReadCalls is the number of socket reads that returned datagrams
	// (one recvmmsg or one ReadFrom each).
	ReadCalls uint64
	// DatagramsRead is the number of datagrams those reads returned.
	DatagramsRead uint64
	// Oversize is the number of datagrams over Limits.MaxMessageSize;
	// they are delivered as an ErrTooLarge parse error, with only what
	// was read of the header (so a UAS can answer 513).
	Oversize uint64
	// WriteCalls is the number of socket writes (one sendmmsg or one
	// WriteTo each).
	WriteCalls uint64
	// DatagramsWritten is the number of datagrams handed to those
	// writes.
	DatagramsWritten uint64
}

// stats are the counters behind Stats.
type stats struct {
	readCalls, read, oversize, writeCalls, written atomic.Uint64
}

// Stats returns the counters of UDP reads and writes.
func (t *Transport) Stats() Stats {
	return Stats{
		ReadCalls:        t.stats.readCalls.Load(),
		DatagramsRead:    t.stats.read.Load(),
		Oversize:         t.stats.oversize.Load(),
		WriteCalls:       t.stats.writeCalls.Load(),
		DatagramsWritten: t.stats.written.Load(),
	}
}

// newBatchConn returns the batch reader and writer of a socket, or nil
// where there is none: BatchSize 1, a socket that is not a *net.UDPConn,
// a system other than Linux (where x/net would read one datagram per call
// anyway).
func (t *Transport) newBatchConn(pc net.PacketConn, local netip.AddrPort) batchConn {
	if t.batchHook != nil {
		return t.batchHook(pc)
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok || t.cfg.UDP.BatchSize <= 1 || runtime.GOOS != "linux" {
		return nil
	}
	if local.Addr().Is4() {
		return ipv4.NewPacketConn(uc)
	}
	return ipv6.NewPacketConn(uc)
}

// noBatch reports whether a batch call failed because the system or
// sandbox does not offer it, so that plain reads and writes must do.
func noBatch(err error) bool {
	return errors.Is(err, syscall.ENOSYS) || errors.Is(err, errors.ErrUnsupported) ||
		errors.Is(err, syscall.EOPNOTSUPP)
}

// udpReader is a socket's reader: slots of MaxMessageSize+1 bytes (one
// more so that an oversize datagram shows), as many as the last reads
// needed up to BatchSize.
type udpReader struct {
	s   *udpSock
	num uint64 // the reader's number (Then.Run)
	// relieved: another reader took over the socket while this one ran
	// OnMessagesThen work; this one ends, no longer counted in the
	// Transport's WaitGroup. Under s.relief.mu.
	relieved bool
	bc       batchConn   // nil: one ReadFrom per datagram
	mm       *mmsgReader // recvmmsg of bc's socket, without x/net's *net.UDPAddr per datagram; nil: bc's ReadBatch
	size     int
	limit    int
	slots    [][]byte
	ms       []ipv4.Message
	n        []int
	src      []netip.AddrPort
	in       []Incoming
	// While the reader holds more than one slot, a read deadline
	// (renewed at most once per idleShrink) ends a read that waits
	// longer than idleShrink to 2·idleShrink: the socket is idle and
	// gives the extra slots back (up to BatchSize·MaxMessageSize, 2 MiB
	// by default).
	armedAt time.Time
	armed   bool
}

// idleShrink is how long a socket must be idle, at least, before its
// reader drops its extra slots.
const idleShrink = time.Second

// armIdle sets or renews the idle deadline of a reader with extra slots.
func (r *udpReader) armIdle() {
	if len(r.slots) <= 1 {
		return
	}
	now := time.Now()
	idle := r.s.t.idleShrink
	if r.armed && now.Sub(r.armedAt) < idle {
		return
	}
	if r.s.pc.SetReadDeadline(now.Add(2*idle)) == nil {
		r.armed, r.armedAt = true, now
	}
}

// shrink drops every slot but the first, after an idle deadline.
func (r *udpReader) shrink() {
	r.armed = false
	_ = r.s.pc.SetReadDeadline(time.Time{})
	for i := 1; i < len(r.slots); i++ {
		r.slots[i] = nil
		r.ms[i] = ipv4.Message{}
	}
	r.slots, r.ms = r.slots[:1], r.ms[:1]
	r.n, r.src = r.n[:1], r.src[:1]
	r.s.slots.Store(1)
}

func newUDPReader(s *udpSock) *udpReader {
	t := s.t
	r := &udpReader{s: s, bc: s.bc, limit: t.cfg.UDP.BatchSize, num: t.readers.Add(1)}
	if uc, ok := s.pc.(*net.UDPConn); ok && r.bc != nil && t.batchHook == nil {
		r.mm = newMmsgReader(uc)
	}
	r.size = min(t.maxMsg, 65535) + 1
	r.grow(1)
	return r
}

// grow adds slots up to n.
func (r *udpReader) grow(n int) {
	for len(r.slots) < n {
		b := make([]byte, r.size)
		r.slots = append(r.slots, b)
		r.ms = append(r.ms, ipv4.Message{Buffers: [][]byte{b}})
	}
	r.n = append(r.n, make([]int, n-len(r.n))...)
	r.src = append(r.src, make([]netip.AddrPort, n-len(r.src))...)
	r.s.slots.Store(int32(n))
}

// read reads one batch into the slots: their lengths in r.n, their
// sources in r.src.
func (r *udpReader) read() (int, error) {
	if r.bc != nil {
		r.armIdle()
		var n int
		var err error
		ms := r.ms[:len(r.slots)]
		if r.mm != nil {
			n, err = r.mm.read(r.slots, r.n, r.src)
		} else {
			n, err = r.bc.ReadBatch(ms, 0)
		}
		if err != nil {
			if noBatch(err) {
				r.s.t.log.Debug("sip transport: no batch reads on this socket, reading one datagram at a time", "local", r.s.local, "err", err)
				r.bc, r.mm = nil, nil
				return r.read()
			}
			return 0, err
		}
		if r.mm == nil {
			for i := range n {
				r.n[i] = ms[i].N
				r.src[i] = addrPortOf(ms[i].Addr)
				ms[i].Addr = nil
			}
		}
		if n == len(ms) && n < r.limit {
			r.grow(min(2*n, r.limit))
		}
		return n, nil
	}
	n, src, err := r.s.readFrom(r.slots[0])
	if err != nil {
		return 0, err
	}
	r.n[0], r.src[0] = n, netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	return 1, nil
}

// deliver parses the n datagrams read and hands them over in one call.
func (r *udpReader) deliver(n int) (then Then) {
	s, t := r.s, r.s.t
	t.stats.readCalls.Add(1)
	t.stats.read.Add(uint64(n))
	r.in = r.in[:0]
	for i := range n {
		b := r.slots[i][:r.n[i]]
		if len(bytes.Trim(b, "\r\n\x00 ")) == 0 {
			continue // keepalive datagram (CRLF, NUL): nothing to deliver
		}
		f := Flow{Proto: UDP, Local: s.local, Remote: r.src[i]}
		if len(b) > t.maxMsg {
			// The datagram did not fit its slot or the limit: what was
			// read parses as ErrTooLarge, with the header fields a 513
			// needs when they came within the slot. Logged at debug
			// level (a flood must not flood the log) and counted.
			t.stats.oversize.Add(1)
			t.log.Debug("sip transport: UDP datagram over the message size limit", "flow", f, "limit", t.maxMsg)
		}
		m, perr := t.cfg.Limits.Parse(b)
		r.in = append(r.in, t.incoming(b, m, perr, f))
	}
	if len(r.in) > 0 {
		then = t.emitUDP(r.in)
	}
	clear(r.in)
	return then
}

// readLoop reads the socket with r until it closes, or until another
// reader takes over. It is counted in t.wg until then.
func (s *udpSock) readLoop(r *udpReader) {
	t := s.t
	counted := true
	defer func() {
		if counted {
			t.wg.Done()
		}
	}()
	for {
		n, err := r.read()
		if err == nil {
			if then := r.deliver(n); then != nil && !s.runThen(r, then) {
				counted = false
				return
			}
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if r.armed {
				r.shrink()
			}
			continue
		}
		// ICMP errors (connection refused) surface here on Linux: they
		// are not fatal to the socket. The error queue says which
		// destination they concern.
		t.log.Debug("sip transport: UDP read error", "local", s.local, "err", err)
		if uc, ok := s.pc.(*net.UDPConn); ok {
			if dests := unreachable(uc); len(dests) > 0 {
				s.reportUnreachable(dests)
				continue
			}
		}
		if t.isClosed() {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// relief watches the reader of a socket that runs OnMessagesThen work:
// a timer checks every Relief, while there is such work, that the reader
// has started new work since the last check or is not running any; a
// reader stuck in one piece of work is relieved: another reader takes
// over the socket.
type relief struct {
	mu    sync.Mutex
	busy  *udpReader // the reader running work; nil: none
	then  Then       // the work busy runs
	runs  uint64     // pieces of work started
	seen  uint64     // runs at the last check
	timer *time.Timer
	armed bool
}

// runThen runs then on reader r, and reports whether r still reads the
// socket (false: it was relieved meanwhile and must end, uncounted).
func (s *udpSock) runThen(r *udpReader, then Then) bool {
	rl := &s.relief
	rl.mu.Lock()
	rl.busy, rl.then = r, then
	rl.runs++
	if !rl.armed {
		rl.armed = true
		if rl.timer == nil {
			rl.timer = time.AfterFunc(s.t.cfg.UDP.Relief, s.checkRelief)
		} else {
			rl.timer.Reset(s.t.cfg.UDP.Relief)
		}
	}
	rl.mu.Unlock()
	then.Run(r.num)
	rl.mu.Lock()
	relieved := r.relieved
	if rl.busy == r {
		rl.busy, rl.then = nil, nil
	}
	rl.mu.Unlock()
	return !relieved
}

// checkRelief is the relief timer: it relieves a reader that has run the
// same work since the last check, and stops once the socket's readers
// run none.
func (s *udpSock) checkRelief() {
	if then := s.checkReliefLocked(); then != nil {
		then.Relieve()
	}
}

// checkReliefLocked is checkRelief under relief.mu; it returns the work
// of a reader it relieved.
func (s *udpSock) checkReliefLocked() (relieved Then) {
	t := s.t
	rl := &s.relief
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if t.isClosed() {
		rl.armed = false
		return
	}
	if rl.busy != nil && rl.runs == rl.seen {
		t.mu.Lock()
		closed := t.closed
		if !closed {
			t.wg.Add(1) // the new reader's, before the busy one's Done
		}
		t.mu.Unlock()
		relieved = rl.then
		s.relieve()
		if !closed {
			t.log.Debug("sip transport: a UDP reader is busy with work, another takes over the socket", "local", s.local)
			go s.readLoop(newUDPReader(s))
		}
	}
	if rl.busy == nil && rl.runs == rl.seen {
		rl.armed = false
		return relieved
	}
	rl.seen = rl.runs
	rl.timer.Reset(t.cfg.UDP.Relief)
	return relieved
}

// relieve stops counting the busy reader: it ends when its work returns.
// Under relief.mu.
func (s *udpSock) relieve() {
	rl := &s.relief
	if rl.busy == nil {
		return
	}
	rl.busy.relieved = true
	rl.busy, rl.then = nil, nil
	s.t.wg.Done()
}

// closeRelief, at Close, stops the relief timer and stops counting a
// reader that runs work (which may be the one calling Close).
func (s *udpSock) closeRelief() {
	rl := &s.relief
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.timer != nil {
		rl.timer.Stop()
	}
	rl.armed = false
	s.relieve()
}

// held is a datagram waiting for the end of a Batch.
type held struct {
	s      *udpSock
	to     netip.AddrPort
	bp     *[]byte
	onFail func(error)
}

// Batch runs f and holds back the UDP responses that TrySendResponse
// hands over meanwhile (on any goroutine), then writes them, several per
// system call (sendmmsg) where the system has it. An event loop wraps the
// handling of one batch of received messages (see Config.OnMessages) in
// it, so that the answers leave together. Requests are never held: one
// that fails at once tells TrySendRequest's caller to try its next
// target. Batches may nest or overlap: the datagrams go when the last one
// ends. A held response that fails to go is reported to its OnFail on a
// goroutine of its own (f's goroutine may be the one that OnFail posts
// to). f should not wait on anything that needs the held datagrams to
// arrive.
func (t *Transport) Batch(f func()) {
	t.bmu.Lock()
	t.holds++
	t.bmu.Unlock()
	defer t.release()
	f()
}

// release ends one Batch; the last one writes what was held.
func (t *Transport) release() {
	t.bmu.Lock()
	t.holds--
	var out []held
	if t.holds == 0 && len(t.held) > 0 {
		out, t.held = t.held, nil
	}
	t.bmu.Unlock()
	if len(out) == 0 {
		return
	}
	for rest := out; len(rest) > 0; {
		// Datagrams go per socket, in order; usually there is one.
		j := 1
		for j < len(rest) && rest[j].s == rest[0].s {
			j++
		}
		rest[0].s.writeHeld(rest[:j])
		rest = rest[j:]
	}
	clear(out)
	t.bmu.Lock()
	if t.held == nil {
		t.held = out[:0] // reuse the array for the next Batch
	}
	t.bmu.Unlock()
}

// hold keeps a datagram for the end of the Batch under way; false when
// none is.
func (t *Transport) hold(h held) bool {
	t.bmu.Lock()
	defer t.bmu.Unlock()
	if t.holds == 0 {
		return false
	}
	t.held = append(t.held, h)
	return true
}

// batchWriter is the scratch of a socket's batch writes, used under
// udpSock.wmu.
type batchWriter struct {
	ms    []ipv4.Message
	addrs []net.UDPAddr
	ips   [][16]byte
	bufs  [][1][]byte
}

// writeHeld writes held datagrams of s, in batches where it can, and
// returns their buffers to the pool; failures go to OnFail.
func (s *udpSock) writeHeld(hs []held) {
	t := s.t
	// failed are the OnFail calls to make. fail stays small enough to be
	// inlined: when it was not, sharing failed with it and with the
	// goroutine below moved failed to the heap on every call.
	var failed []func()
	fail := func(h held, err error) {
		if f := s.heldFailed(h, err); f != nil {
			failed = append(failed, f)
		}
	}
	s.wmu.Lock()
	i := 0
	for i < len(hs) {
		if s.mw != nil {
			n := 1
			if !s.noWriteBatch.Load() {
				n = max(1, min(len(hs)-i, t.cfg.UDP.BatchSize))
			}
			s.wbufs, s.wto = s.wbufs[:0], s.wto[:0]
			for _, h := range hs[i : i+n] {
				s.wbufs = append(s.wbufs, *h.bp)
				s.wto = append(s.wto, s.sendAddr(h.to))
			}
			sent, err := s.mw.write(s.wbufs, s.wto)
			clear(s.wbufs)
			t.stats.writeCalls.Add(1)
			if sent > 0 {
				t.stats.written.Add(uint64(sent))
				i += sent
			}
			if err != nil {
				if n > 1 && noBatch(err) {
					t.log.Debug("sip transport: no batch writes on this socket, writing one datagram at a time", "local", s.local, "err", err)
					s.noWriteBatch.Store(true)
					continue
				}
				fail(hs[i], err)
				i++
			}
			continue
		}
		if s.bc == nil || s.noWriteBatch.Load() || len(hs)-i == 1 {
			h := hs[i]
			t.stats.writeCalls.Add(1)
			t.stats.written.Add(1)
			if err := s.writeTo(*h.bp, s.sendAddr(h.to)); err != nil {
				fail(h, err)
			}
			i++
			continue
		}
		n := min(len(hs)-i, t.cfg.UDP.BatchSize)
		ms := s.bw.prepare(hs[i:i+n], s)
		sent, err := s.bc.WriteBatch(ms, 0)
		t.stats.writeCalls.Add(1)
		if sent > 0 {
			t.stats.written.Add(uint64(sent))
			i += sent
		}
		if err != nil {
			if noBatch(err) {
				t.log.Debug("sip transport: no batch writes on this socket, writing one datagram at a time", "local", s.local, "err", err)
				s.noWriteBatch.Store(true)
				continue
			}
			if sent == 0 {
				// The first datagram of the batch failed: report it and
				// go on with the rest.
				fail(hs[i], err)
				i++
			}
		}
	}
	s.bw.reset()
	s.wmu.Unlock()
	for _, h := range hs {
		putBuf(h.bp)
	}
	if len(failed) > 0 {
		// Not on t.wg: this may run while Close waits on it. The
		// goroutine only calls OnFail, which must not block.
		go func() {
			for _, f := range failed {
				f()
			}
		}()
	}
}

// heldFailed reports a held datagram that failed to go: to the Tracer,
// and in the call to its OnFail that it returns (nil without one).
func (s *udpSock) heldFailed(h held, err error) func() {
	t := s.t
	if errors.Is(err, net.ErrClosed) {
		err = ErrClosed
	}
	err = fmt.Errorf("transport: send UDP to %v: %w", h.to, err)
	if t.cfg.Tracer != nil {
		t.trace(trace.SendFailed, Flow{Proto: UDP, Local: s.local, Remote: h.to}, *h.bp, nil, err)
	}
	if h.onFail == nil {
		return nil
	}
	onFail := h.onFail
	return func() { onFail(err) }
}

// prepare fills the messages of one sendmmsg.
func (w *batchWriter) prepare(hs []held, s *udpSock) []ipv4.Message {
	n := len(hs)
	if cap(w.ms) < n {
		w.ms = make([]ipv4.Message, n)
		w.addrs = make([]net.UDPAddr, n)
		w.ips = make([][16]byte, n)
		w.bufs = make([][1][]byte, n)
	}
	ms := w.ms[:n]
	for i, h := range hs {
		to := s.sendAddr(h.to)
		a := &w.addrs[i]
		if to.Addr().Is4() {
			ip4 := to.Addr().As4()
			copy(w.ips[i][:4], ip4[:])
			a.IP = w.ips[i][:4]
		} else {
			w.ips[i] = to.Addr().As16()
			a.IP = w.ips[i][:16]
		}
		a.Port = int(to.Port())
		a.Zone = to.Addr().Zone()
		w.bufs[i][0] = *h.bp
		ms[i] = ipv4.Message{Buffers: w.bufs[i][:], Addr: a}
	}
	return ms
}

// reset drops the references to sent buffers.
func (w *batchWriter) reset() {
	for i := range w.ms {
		w.ms[i] = ipv4.Message{}
		w.bufs[i][0] = nil
	}
}

// sendAddr maps an IPv4 destination for an IPv6 socket.
func (s *udpSock) sendAddr(to netip.AddrPort) netip.AddrPort {
	if s.local.Addr().Is6() && to.Addr().Is4() {
		return netip.AddrPortFrom(netip.AddrFrom16(to.Addr().As16()), to.Port())
	}
	return to
}
