package rtp

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	prtp "github.com/pion/rtp"

	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/audio"
)

// params are the media parameters an offer/answer exchange settles.
type params struct {
	dir    Direction       // ours
	codec  Codec           // the codec we send
	pt     uint8           // its payload type, as the peer numbers it
	te     int             // telephone-event payload type, or -1
	recv   map[uint8]Codec // the payload types we decode, as our SDP numbers them
	recvTE int             // telephone-event as our SDP numbers it, or -1
	ptime  time.Duration   // of the packets we send
	remote netip.AddrPort  // the peer's RTP address from its SDP; invalid when none
	rtcp   netip.AddrPort  // the peer's RTCP address from its SDP
	sec    *sdes           // SRTP keys; nil: plain RTP
}

// counters are the handler's running counts.
type counters struct {
	packetsSent, bytesSent         atomic.Uint64
	packetsReceived, bytesReceived atomic.Uint64
	discarded                      atomic.Uint64
	srtpFailed                     atomic.Uint64
	dtmfSent, dtmfReceived         atomic.Uint64
	rtcpSent, rtcpReceived         atomic.Uint64
}

// stream is the media path of a Handler: the RTP and RTCP sockets and
// the goroutines that read them (one each), send (one, paced by the
// packetization interval, also sending RTCP) and play out the jitter
// buffer (one).
type stream struct {
	h     *Handler
	log   *slog.Logger
	rtp   *net.UDPConn
	rtcp  *net.UDPConn
	local netip.AddrPort // the RTP socket's address
	done  chan struct{}
	wg    sync.WaitGroup
	epoch time.Time // origin of the arrival clock
	cname string

	count counters

	mu sync.Mutex // guards what follows
	p  params
	ok bool // p is set

	// Where RTP goes: the SDP's address until a packet from the peer
	// arrives, then that packet's source (symmetric RTP, RFC 4961).
	dest        netip.AddrPort
	latched     bool
	lastRTP     time.Time // when the source latched last sent
	rtcpDest    netip.AddrPort
	rtcpLatched bool

	// Sending.
	ssrc     uint32
	seq      uint16
	ts       uint32
	tsAt     time.Time // when ts was last advanced
	marker   bool
	tones    []tone
	ev       *audio.DTMFEvent
	gapUntil time.Time // no tone starts before this
	sentRTP  bool      // RTP sent since the last report

	// Receiving.
	rx       rxStats
	jb       *jitterBuffer
	dtmf     audio.DTMFReceiver
	frame    int    // samples of the last audio packet played
	lastSR   uint32 // middle of the peer's last SR NTP time
	lastSRAt time.Time
	rtt      time.Duration
	stopped  bool
	peerRR   reportBlock // the peer's last reception report on our stream
	havePeer bool

	sec    *srtpSession // SRTP contexts; nil: plain RTP
	lastRx time.Time    // when RTP or RTCP last came from the peer
	heard  bool         // something came from the peer: the media timeout is armed
	failed bool         // the media timeout fired

	// Owned by one goroutine each, outside mu.
	tx      codecState // sendLoop's
	rxc     codecState // playLoop's
	rxPlain []byte     // readRTP's decryption buffer
	txCrypt []byte     // sendLoop's encryption buffer
}

// openStream binds the sockets and starts the goroutines.
func openStream(h *Handler) (*stream, error) {
	rtpConn, rtcpConn, err := listenPair(&h.set)
	if err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	s := &stream{
		h:      h,
		log:    h.log,
		rtp:    rtpConn,
		rtcp:   rtcpConn,
		local:  rtpConn.LocalAddr().(*net.UDPAddr).AddrPort(),
		done:   make(chan struct{}),
		epoch:  time.Now(),
		cname:  "sipua-" + hex.EncodeToString(b[:]),
		ssrc:   binary.BigEndian.Uint32(b[:]),
		seq:    uint16(mrand.Uint32()),
		ts:     mrand.Uint32(),
		marker: true,
		jb:     newJitterBuffer(h.set.jitterPackets(), 4*h.set.jitterPackets()),
		tx:     codecState{opus: h.set.opus},
		rxc:    codecState{opus: h.set.opus},
		frame:  h.set.frameSamples(),
	}
	s.tsAt = s.epoch
	_ = rtpConn.SetReadBuffer(256 << 10)
	s.wg.Add(4)
	go s.readRTP()
	go s.readRTCP()
	go s.sendLoop()
	go s.playLoop()
	s.log.Debug("RTP stream open", "local", s.local, "ssrc", s.ssrc)
	return s, nil
}

// jitterPackets is the jitter buffer's depth in packets.
func (s *settings) jitterPackets() int {
	return int((s.jitterDelay + s.ptime - 1) / s.ptime)
}

// frameSamples is one packet's worth of samples.
func (s *settings) frameSamples() int { return int(s.ptime * SampleRate / time.Second) }

// listenPair binds an even RTP port and the RTCP port after it.
func listenPair(set *settings) (*net.UDPConn, *net.UDPConn, error) {
	network := "udp4"
	if set.bindIP.Is6() {
		network = "udp6"
	}
	ip := net.IP(set.bindIP.AsSlice())
	try := func(port int) (*net.UDPConn, *net.UDPConn, error) {
		a, err := net.ListenUDP(network, &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			return nil, nil, err
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		if p%2 != 0 || p >= 65535 {
			a.Close()
			return nil, nil, errors.New("odd port")
		}
		b, err := net.ListenUDP(network, &net.UDPAddr{IP: ip, Port: p + 1})
		if err != nil {
			a.Close()
			return nil, nil, err
		}
		return a, b, nil
	}
	if set.portMin == 0 {
		var err error
		for range 64 {
			var a, b *net.UDPConn
			if a, b, err = try(0); err == nil {
				return a, b, nil
			}
		}
		return nil, nil, fmt.Errorf("rtp: no RTP/RTCP port pair on %v: %w", set.bindIP, err)
	}
	lo := (set.portMin + 1) &^ 1 // first even port
	n := (set.portMax-1-lo)/2 + 1
	if n <= 0 {
		return nil, nil, fmt.Errorf("rtp: no even RTP port in %d-%d", set.portMin, set.portMax)
	}
	start := mrand.IntN(n)
	var err error
	for i := range n {
		var a, b *net.UDPConn
		if a, b, err = try(lo + 2*((start+i)%n)); err == nil {
			return a, b, nil
		}
	}
	return nil, nil, fmt.Errorf("rtp: no free RTP/RTCP port pair in %d-%d on %v: %w",
		set.portMin, set.portMax, set.bindIP, err)
}

// apply puts the result of an offer/answer exchange in force.
func (s *stream) apply(p params) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ok || p.remote != s.p.remote {
		// A new peer address: send there until a packet shows where the
		// peer really is.
		s.dest, s.latched = p.remote, false
		s.rtcpLatched = false
	}
	if p.dir&SendOnly != 0 && (!s.ok || s.p.dir&SendOnly == 0) {
		s.marker = true // talk spurt after silence (RFC 3551 §4.1)
	}
	var cur *sdes
	if s.sec != nil {
		cur = s.sec.keys
	}
	if !cur.equal(p.sec) {
		s.sec = nil
		if p.sec != nil {
			sess, err := newSRTPSession(p.sec)
			if err != nil {
				s.log.Warn("SRTP not set up", "suite", p.sec.suite, "err", err)
			}
			s.sec = sess
		}
	}
	s.lastRx = time.Now() // the media timeout counts from each exchange
	s.p, s.ok = p, true
	suite := "none"
	if p.sec != nil {
		suite = string(p.sec.suite) // never the keys
	}
	s.log.Debug("media parameters", "direction", p.dir, "codec", p.codec, "pt", p.pt,
		"telephone-event", p.te, "ptime", p.ptime, "remote", p.remote, "srtp", suite)
}

// close sends an RTCP BYE (unless RTCP is off), stops the goroutines and closes the sockets.
func (s *stream) close() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.mu.Unlock()
	if s.h.set.rtcpEvery > 0 {
		s.sendRTCP(true)
	}
	close(s.done)
	s.rtp.Close()
	s.rtcp.Close()
	s.wg.Wait()
	s.tx.close()
	s.rxc.close()
}

// readRTP reads the RTP socket until it is closed.
func (s *stream) readRTP() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, src, err := s.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-s.done:
				return
			default:
			}
			s.log.Debug("RTP read", "err", err)
			continue
		}
		s.handlePacket(buf[:n], netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), time.Now())
	}
}

// readRTCP reads the RTCP socket until it is closed.
func (s *stream) readRTCP() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, src, err := s.rtcp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-s.done:
				return
			default:
			}
			continue
		}
		s.handleRTCP(buf[:n], netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), time.Now(), true)
	}
}

// relatchAfter is how long the source latched must have been silent
// before packets from another one take its place (the peer's NAT
// binding changed, or its media moved without a new SDP).
const relatchAfter = time.Second

// isRTCP tells RTCP from RTP on one port by the packet type (RFC 5761
// §4): 192–223 are RTCP, never an RTP marker and payload type in use.
func isRTCP(b []byte) bool { return len(b) >= 2 && b[1] >= 192 && b[1] <= 223 }

// handlePacket takes one datagram from the RTP socket. buf is reused
// after it returns.
func (s *stream) handlePacket(buf []byte, src netip.AddrPort, now time.Time) {
	if isRTCP(buf) {
		s.handleRTCP(buf, src, now, false)
		return
	}
	s.mu.Lock()
	sec := s.sec
	s.mu.Unlock()
	if sec != nil {
		plain, err := sec.rxRTP.DecryptRTP(s.rxPlain[:0], buf, nil)
		if err != nil {
			s.log.Debug("SRTP unreadable", "from", src, "len", len(buf), "err", err)
			s.count.discarded.Add(1)
			s.count.srtpFailed.Add(1)
			return
		}
		s.rxPlain, buf = plain, plain
	}
	var pkt prtp.Packet
	if err := pkt.Unmarshal(buf); err != nil || pkt.Version != 2 {
		s.count.discarded.Add(1)
		return
	}
	var tones []audio.DTMFTone
	s.mu.Lock()
	switch {
	case !s.latched, src != s.dest && now.Sub(s.lastRTP) >= relatchAfter:
		if src != s.dest {
			s.log.Debug("RTP latched", "from", src, "was", s.dest)
		}
		s.dest, s.latched = src, true
	case src != s.dest:
		// Not the source latched, which is alive: another party, or
		// stale packets.
		s.mu.Unlock()
		s.count.discarded.Add(1)
		return
	}
	s.lastRTP, s.lastRx, s.heard = now, now, true
	p, ok := s.p, s.ok
	if s.rx.seq(pkt.SSRC, pkt.SequenceNumber) {
		s.jb.reset()
		s.dtmf = audio.DTMFReceiver{}
	}
	codec, audio := p.recv[pkt.PayloadType]
	isTE := ok && p.recvTE >= 0 && int(pkt.PayloadType) == p.recvTE
	switch {
	case audio && ok:
		arrival := uint32(now.Sub(s.epoch) * time.Duration(codec.clock()) / time.Second)
		s.rx.arrival(pkt.Timestamp, arrival)
		s.jb.push(pkt.SequenceNumber, pkt.Timestamp, codec, append([]byte(nil), pkt.Payload...))
	case isTE:
		tones = s.dtmf.Packet(nil, pkt.Timestamp, pkt.Payload, now)
		s.jb.push(pkt.SequenceNumber, pkt.Timestamp, 0, nil)
	default:
		s.jb.push(pkt.SequenceNumber, pkt.Timestamp, 0, nil)
	}
	s.mu.Unlock()

	s.count.packetsReceived.Add(1)
	s.count.bytesReceived.Add(uint64(len(pkt.Payload)))
	s.report(tones)
	if f := s.h.onRTP.Load(); f != nil && *f != nil {
		cp := pkt.Clone()
		(*f)(cp)
	}
}

// handleRTCP takes one RTCP datagram; own is true on the RTCP socket
// (whose peer address it latches), false for RTCP multiplexed on the RTP
// port.
func (s *stream) handleRTCP(buf []byte, src netip.AddrPort, now time.Time, own bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sec != nil {
		if len(buf) < 8+4+10 {
			// Too short for SRTCP (header, E flag and index, a tag of 10
			// bytes or more): not
			// SRTCP at all, such as baresip's plain "PINGPONG" RTCP APP
			// keepalive. Dropped, not counted as an SRTP failure.
			s.log.Debug("RTCP in the clear on an SRTP session dropped", "from", src, "len", len(buf))
			return
		}
		plain, err := s.sec.rxRTCP.DecryptRTCP(nil, buf, nil)
		if err != nil {
			s.count.srtpFailed.Add(1)
			s.log.Debug("SRTCP unreadable", "from", src, "err", err)
			return
		}
		buf = plain
	}
	reports, err := parseRTCP(buf)
	if len(reports) == 0 {
		s.log.Debug("RTCP unreadable", "from", src, "err", err)
		return
	}
	s.count.rtcpReceived.Add(1)
	s.lastRx, s.heard = now, true
	if own && !s.rtcpLatched {
		s.rtcpDest, s.rtcpLatched = src, true
	}
	for _, r := range reports {
		if r.typ == rtcpSR && s.rx.init && r.ssrc == s.rx.ssrc {
			s.lastSR, s.lastSRAt = ntpMiddle(r.sr.ntp), now
		}
		for _, b := range r.blocks {
			if b.ssrc != s.ssrc {
				continue
			}
			s.peerRR, s.havePeer = b, true
			if b.lsr == 0 {
				continue
			}
			// RFC 3550 §6.4.1: RTT = now - LSR - DLSR, in 1/65536 s.
			// On a fast path (loopback, a LAN) the result is within the
			// rounding of the three 1/65536 s values and can come out 0 or
			// slightly negative: that is a measured RTT below the
			// resolution, reported as one unit (15 µs) since 0 means none
			// measured yet.
			rtt := int64(int32(ntpMiddle(ntpTime(now)) - b.lsr - b.dlsr))
			switch {
			case rtt >= 1:
				s.rtt = time.Duration(rtt) * time.Second / 65536
			case rtt > -rttSlack:
				s.rtt = time.Second / 65536
			}
		}
	}
}

// rttSlack is how far below zero (in 1/65536 s) a computed round-trip
// time may be and still count as a path faster than the resolution (about
// 1 ms); further below, the report is inconsistent and ignored.
const rttSlack = 64

// rtcpTarget returns where RTCP goes: where the peer's RTCP comes from,
// else next to where its RTP comes from, else what its SDP says.
func (s *stream) rtcpTarget() netip.AddrPort {
	switch {
	case s.rtcpLatched:
		return s.rtcpDest
	case s.latched && s.dest != s.p.remote && s.dest.Port() < 65535:
		return netip.AddrPortFrom(s.dest.Addr(), s.dest.Port()+1)
	case s.ok:
		return s.p.rtcp
	}
	return netip.AddrPort{}
}

// sendRTCP sends a compound report: SR (when RTP went out since the last
// one) or RR, with a reception report once RTP has arrived, then SDES
// CNAME, then BYE when bye is set.
func (s *stream) sendRTCP(bye bool) {
	now := time.Now()
	s.mu.Lock()
	dest := s.rtcpTarget()
	if !dest.IsValid() {
		s.mu.Unlock()
		return
	}
	var blocks []reportBlock
	if s.rx.init {
		var dlsr uint32
		if s.lastSR != 0 {
			dlsr = uint32(now.Sub(s.lastSRAt) * 65536 / time.Second)
		}
		blocks = append(blocks, s.rx.block(s.lastSR, dlsr))
	}
	b := make([]byte, 0, 128)
	if s.sentRTP {
		ts := s.ts + uint32(now.Sub(s.tsAt)*time.Duration(s.p.codec.clock())/time.Second)
		b = appendSR(b, s.ssrc, senderInfo{
			ntp:     ntpTime(now),
			rtpTS:   ts,
			packets: uint32(s.count.packetsSent.Load()),
			octets:  uint32(s.count.bytesSent.Load()),
		}, blocks)
	} else {
		b = appendRR(b, s.ssrc, blocks)
	}
	s.sentRTP = false
	b = appendSDES(b, s.ssrc, s.cname)
	if bye {
		b = appendBYE(b, s.ssrc)
	}
	if s.sec != nil {
		enc, err := s.sec.txRTCP.EncryptRTCP(nil, b, nil)
		if err != nil {
			s.mu.Unlock()
			s.log.Debug("SRTCP protect", "err", err)
			return
		}
		b = enc
	}
	s.mu.Unlock()
	if _, err := s.rtcp.WriteToUDPAddrPort(b, dest); err != nil {
		s.log.Debug("RTCP write", "err", err)
		return
	}
	s.count.rtcpSent.Add(1)
}

// sendLoop sends one packet every packetization interval, and RTCP.
func (s *stream) sendLoop() {
	defer s.wg.Done()
	pcm := make([]int16, maxFrame)
	buf := make([]byte, 12+maxFrame)
	pkt := make([]byte, 0, 12+maxFrame)
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	every := s.h.set.rtcpEvery
	rtcpAt := next.Add(rtcpDelay(every))
	for {
		select {
		case <-s.done:
			return
		case <-timer.C:
		}
		ptime := s.sendFrame(pcm, buf, pkt)
		now := time.Now()
		if every > 0 && now.After(rtcpAt) {
			s.sendRTCP(false)
			rtcpAt = now.Add(rtcpDelay(every))
		}
		next = next.Add(ptime)
		if now.Sub(next) > 5*ptime { // far behind (a stalled machine): catch up
			next = now
		}
		timer.Reset(next.Sub(now))
	}
}

// maxFrame is the most samples in a packet: 60 ms.
const maxFrame = 60 * SampleRate / 1000

// rtcpDelay returns a report interval, randomized to 0.5–1.5 times the
// mean (RFC 3550 §6.3.1).
func rtcpDelay(mean time.Duration) time.Duration {
	if mean <= 0 {
		return time.Hour
	}
	return mean/2 + time.Duration(mrand.Int64N(int64(mean)))
}

// sendFrame sends the next packet: a telephone-event, audio, or nothing
// (no exchange yet, nowhere to send, or not sending in the negotiated
// direction). The RTP clock advances in every case. It returns the
// packetization interval in force.
func (s *stream) sendFrame(pcm []int16, buf, pkt []byte) time.Duration {
	now := time.Now()
	s.mu.Lock()
	ptime := s.h.set.ptime
	if s.ok {
		ptime = s.p.ptime
	}
	frame := int(ptime * SampleRate / time.Second) // samples of audio
	ticks := frame                                 // RTP clock ticks
	if s.ok {
		ticks = int(ptime * time.Duration(s.p.codec.clock()) / time.Second)
	}
	if !s.ok || s.p.dir&SendOnly == 0 || !s.dest.IsValid() {
		s.ts += uint32(ticks)
		s.tsAt = now
		s.marker = true
		s.mu.Unlock()
		return ptime
	}
	p := s.p
	if s.ev == nil && len(s.tones) > 0 && !now.Before(s.gapUntil) {
		t := s.tones[0]
		s.tones = s.tones[1:]
		switch {
		case t.pause:
			s.gapUntil = now.Add(dtmfPause)
		case p.te < 0:
			s.log.Debug("DTMF tone dropped: no telephone-event negotiated", "event", t.code)
		default:
			s.ev = &audio.DTMFEvent{Code: t.code, Start: s.ts, Samples: t.samples}
		}
	}
	hdr := prtp.Header{Version: 2, SequenceNumber: s.seq, SSRC: s.ssrc}
	var payload []byte
	if ev := s.ev; ev != nil {
		var first, ended, done bool
		payload, first, ended, done = ev.Next(buf, frame)
		if ended {
			s.count.dtmfSent.Add(1)
		}
		hdr.PayloadType, hdr.Timestamp, hdr.Marker = uint8(p.te), ev.Start, first
		if done {
			s.ev = nil
			s.gapUntil = now.Add(dtmfGap)
		}
	} else {
		hdr.PayloadType, hdr.Timestamp, hdr.Marker = p.pt, s.ts, s.marker
		s.marker = false
	}
	s.seq++
	s.ts += uint32(ticks)
	s.tsAt = now
	s.sentRTP = true
	dest := s.dest
	sec := s.sec
	s.mu.Unlock()

	if payload == nil { // audio: read and encode outside the lock
		s.h.readSamples(pcm[:frame])
		var err error
		if payload, err = s.tx.encode(p.codec, pcm[:frame], buf[:0]); err != nil {
			s.log.Debug("audio encode", "codec", p.codec, "err", err)
			return ptime
		}
	}
	n, err := hdr.MarshalTo(pkt[:cap(pkt)])
	if err != nil {
		return ptime
	}
	out := append(pkt[:n], payload...)
	if sec != nil {
		if s.txCrypt, err = sec.txRTP.EncryptRTP(s.txCrypt[:0], out, nil); err != nil {
			s.log.Debug("SRTP protect", "err", err)
			return ptime
		}
		out = s.txCrypt
	}
	if _, err := s.rtp.WriteToUDPAddrPort(out, dest); err != nil {
		s.log.Debug("RTP write", "to", dest, "err", err)
		return ptime
	}
	s.count.packetsSent.Add(1)
	s.count.bytesSent.Add(uint64(len(payload)))
	return ptime
}

// playLoop plays the jitter buffer out in real time, handing each
// packet's decoded audio (silence for a gap) to OnAudio, and reports
// received DTMF tones whose end never came.
func (s *stream) playLoop() {
	defer s.wg.Done()
	pcm := make([]int16, 1500)
	next := time.Now()
	timer := time.NewTimer(s.h.set.ptime)
	defer timer.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-timer.C:
		}
		now := time.Now()
		s.mu.Lock()
		e, kind := s.jb.pop()
		frame := s.frame
		stateful := kind == jbAudio && (e.codec == G722 || e.codec == Opus)
		s.mu.Unlock()
		n := 0
		f := s.h.onAudio.Load()
		listening := f != nil && *f != nil
		switch {
		case kind == jbAudio && (listening || stateful):
			n = s.rxc.decode(e.codec, e.payload, pcm)
		case kind == jbAudio:
			n = min(len(e.payload), len(pcm)) // G.711: a sample a byte
		case kind == jbGap:
			n = frame
			clear(pcm[:n])
		}
		s.mu.Lock()
		if kind == jbAudio {
			s.frame = n
		}
		lost := s.jb.late + s.jb.dropped
		s.jb.late, s.jb.dropped = 0, 0
		var tones []audio.DTMFTone
		if t, ok := s.dtmf.Expire(now); ok {
			tones = append(tones, t)
		}
		var failure error
		if limit := s.h.set.timeout; limit > 0 && s.ok && s.heard && s.p.dir == SendRecv && !s.failed &&
			now.Sub(s.lastRx) >= limit {
			s.failed = true
			failure = fmt.Errorf("rtp: no RTP or RTCP from %v for %v: %w", s.dest, now.Sub(s.lastRx).Round(time.Millisecond),
				media.ErrMediaTimeout)
		}
		s.mu.Unlock()
		s.count.discarded.Add(lost)
		if failure != nil {
			s.log.Info("media timeout", "err", failure)
			if f := s.h.onFail.Load(); f != nil && *f != nil {
				(*f)(failure)
			}
		}

		if listening && kind != jbNone {
			(*f)(pcm[:n])
		}
		s.report(tones)

		d := s.h.set.ptime
		if n > 0 {
			d = time.Duration(n) * time.Second / SampleRate
		}
		next = next.Add(d)
		if now.Sub(next) > 10*d {
			next = now
		}
		timer.Reset(time.Until(next))
	}
}

// report counts received tones and hands them to OnDTMF.
func (s *stream) report(tones []audio.DTMFTone) {
	for _, t := range tones {
		s.count.dtmfReceived.Add(1)
		if f := s.h.onDTMF.Load(); f != nil && *f != nil {
			(*f)(t.Tone, t.Duration)
		}
	}
}

// readSamples fills pcm from the handler's source, with silence after
// its end.
func (h *Handler) readSamples(pcm []int16) {
	box := h.src.Load()
	got := 0
	if box != nil && box.src != nil {
		for got < len(pcm) {
			n, err := box.src.ReadSamples(pcm[got:])
			got += max(n, 0)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					h.log.Debug("audio source failed", "err", err)
				}
				h.src.CompareAndSwap(box, nil)
				break
			}
			if n <= 0 {
				break
			}
		}
	}
	clear(pcm[got:])
}
