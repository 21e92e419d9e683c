// Package rtp is a media.Handler for plain RTP/AVP audio (RFC 3550,
// RFC 3551), what SIP trunks and desk phones speak: G.711 (PCMU, PCMA),
// G.722 and RFC 4733 telephone-events on one UDP port pair, negotiated by
// SDP offer/answer (RFC 3264) with no ICE or DTLS, optionally protected
// by SDES-SRTP (RFC 4568, RFC 3711; Config.SRTP). It links no WebRTC
// code: a program that uses it alone stays free of pion/webrtc.
//
// A Handler offers "m=audio PORT RTP/AVP 0 8 101" with a=rtpmap, a=fmtp:101
// 0-15 and a=ptime, and answers an offer with the codecs both sides have,
// in its own order of preference; it takes the first audio m-line in
// RTP/AVP (or RTP/SAVP) with a codec of its own and rejects the others
// (port 0). It sends 20 ms packets (a peer's a=ptime is honoured) from an
// AudioSource (silence unless one is set) in the first codec of the
// answer, and decodes any negotiated payload it receives.
//
// Media are symmetric (RFC 4961): the handler sends from the port it
// receives on, and once a packet from the peer arrives it sends to that
// packet's source rather than to the SDP's address (latching, for peers
// behind NAT); packets from other sources are then discarded, unless the
// source latched has been silent for a second (its NAT binding changed)
// or a new exchange changes the peer's address. RTCP runs on the next
// port, with sender or receiver reports every ~5 s and a BYE on Close;
// RTCP multiplexed on the RTP port (RFC 5761) is read too.
//
// Received packets go through a small jitter buffer, which reorders them
// by sequence number and plays them out at their pace after a bounded
// delay (Config.JitterDelay), handing the decoded PCM to OnAudio. Loss and
// interarrival jitter are measured as RFC 3550 says (Handler.Stats).
//
// DTMF goes out as RFC 4733 events (SendDTMF, which media.Handler has and
// sip.Session.SendDTMF calls): a start packet with the marker bit, one
// packet per interval with the growing duration, all with the event's
// start timestamp, and three end packets. Received events are reported to
// OnDTMF once each.
//
// SRTP (Config.SRTP, Handler.SetSRTP): with SRTPOffer the offer is
// RTP/AVP carrying a=crypto lines, so a peer without SRTP still answers
// in plain RTP; with SRTPRequired it is RTP/SAVP and a peer without SRTP
// is refused; offers in RTP/SAVP are taken unless SRTP is off. The suites
// are AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32 and
// AEAD_AES_128_GCM (Config.SRTPSuites). Keys are fresh random ones per
// handler and are never logged.
//
// G.722 (Config.Codecs with G722) is offered as "a=rtpmap:9 G722/8000"
// with an 8000 Hz RTP clock, as RFC 3551 requires, though it carries
// 16 kHz audio: the handler converts the 8 kHz AudioSource up and what it
// decodes back down for OnAudio with media/wav's windowed-sinc Resampler
// (Opus likewise, at 48 kHz). media.Options.Codecs orders
// and narrows the codecs of one call.
//
// When the peer should send and, after its media had started, nothing (no
// RTP, no RTCP) has come for Config.MediaTimeout (30 s by default), the
// handler reports media.ErrMediaTimeout through OnFailure
// (media.FailureNotifier), and a sip.UserAgent ends the call with
// EndMediaTimeout; not while either side holds the call.
//
// Hold follows RFC 3264 §8.4 and RFC 6337: media.Options.Hold makes an
// offer sendonly (inactive when the peer holds too) and an answer takes
// the reverse of the offer's direction, less receiving when on hold. An
// offer whose c= is 0.0.0.0 (RFC 2543 hold) gets no media sent to it.
package rtp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"mime"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	prtp "github.com/pion/rtp"
	"github.com/pion/sdp/v3"

	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/audio"
)

// negState is where the handler is in an offer/answer exchange.
type negState uint8

const (
	stable          negState = iota // no exchange in progress
	haveLocalOffer                  // our offer is out, its answer awaited
	haveRemoteOffer                 // a remote offer awaits our answer
)

// sourceBox lets an AudioSource interface value sit in an atomic.Pointer.
type sourceBox struct{ src AudioSource }

// Handler is a media.Handler carrying one session's audio over plain RTP.
// Its sockets are opened at the first GetDescription or SetDescription.
// Its methods are safe for concurrent use; callbacks are called without
// the handler's locks held, from its goroutines, and never after Close
// returns.
type Handler struct {
	set settings
	log *slog.Logger

	negMu sync.Mutex // one offer/answer step at a time; guards the fields below it

	state    negState
	offer    []byte      // our pending offer, as sent
	offerDir Direction   // its direction
	offerFmt []format    // its formats
	pending  *remoteDesc // the remote offer to answer
	remote   *remoteDesc // the peer's SDP in force, nil before the first exchange
	repeated []byte      // see SetDescription
	ourOffer bool        // the exchange in force was our offer and its answer
	sessID   uint64      // o= of our SDP
	sessVer  uint64
	lastSDP  []byte // our last SDP, with sessVer

	srtpPol     SRTPPolicy
	keys        map[SRTPSuite][]byte // our SRTP master keys, one per suite, made once
	offerCrypto []cryptoAttr         // the a=crypto lines of our pending offer

	mu     sync.Mutex // guards closed and st
	closed bool
	st     *stream

	src     atomic.Pointer[sourceBox]
	onAudio atomic.Pointer[func([]int16)]
	onDTMF  atomic.Pointer[func(rune, time.Duration)]
	onRTP   atomic.Pointer[func(*prtp.Packet)]
	onFail  atomic.Pointer[func(error)]
}

var _ media.Handler = (*Handler)(nil)

// New returns a handler for one session. It opens no socket yet: that
// happens with the first offer or answer.
func New(cfg Config) (*Handler, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	return &Handler{
		set:     set,
		log:     log,
		sessID:  binary.BigEndian.Uint64(id[:]) >> 2, // positive as a signed 64-bit number
		srtpPol: set.srtp,
		keys:    map[SRTPSuite][]byte{},
	}, nil
}

// NewFactory returns a media.Factory making a Handler per session with
// cfg, and calling cfg.Setup with each.
func NewFactory(cfg Config) media.Factory {
	return func(info media.SessionInfo) (media.Handler, error) {
		h, err := New(cfg)
		if err != nil {
			return nil, err
		}
		if info.ID != "" {
			h.log = h.log.With("session", info.ID)
		}
		if cfg.Setup != nil {
			cfg.Setup(h, info)
		}
		return h, nil
	}
}

// SetAudioSource sets what the handler sends from the next packet on;
// nil sends silence.
func (h *Handler) SetAudioSource(src AudioSource) {
	if src == nil {
		h.src.Store(nil)
		return
	}
	h.src.Store(&sourceBox{src})
}

// OnAudio sets the function called with the received audio, decoded to
// 16-bit linear PCM at SampleRate, one packet's worth at a time in real
// time out of the jitter buffer; a lost packet plays as silence. samples
// is reused after f returns. f is called from the playout goroutine and
// should not block.
func (h *Handler) OnAudio(f func(samples []int16)) { h.onAudio.Store(&f) }

// OnDTMF sets the function called once per RFC 4733 tone received, with
// its duration: when its first end packet arrives, or, should all of them
// be lost, when the next tone starts or after a second without packets.
func (h *Handler) OnDTMF(f func(tone rune, d time.Duration)) { h.onDTMF.Store(&f) }

// OnFailure sets the function called, once, when the media die: no RTP
// and no RTCP came from the peer for Config.MediaTimeout while it was to
// send (an error wrapping media.ErrMediaTimeout). It is called from the
// handler's playout goroutine, never after Close returns. The UserAgent
// sets it (media.FailureNotifier) to end the call.
func (h *Handler) OnFailure(f func(err error)) { h.onFail.Store(&f) }

var _ media.FailureNotifier = (*Handler)(nil)

// SetSRTP sets this call's SRTP policy in place of Config.SRTP; it
// applies to the offers and answers made after it, so call it before the
// first (in Config.Setup, or on Inviter.MediaHandler before Invite).
func (h *Handler) SetSRTP(p SRTPPolicy) {
	h.negMu.Lock()
	h.srtpPol = p
	h.negMu.Unlock()
}

// codecsFor returns the codecs of one description: the configured ones,
// ordered and narrowed by opts.Codecs.
func (h *Handler) codecsFor(opts media.Options) []Codec {
	if len(opts.Codecs) == 0 {
		return h.set.codecs
	}
	names := make([]string, len(h.set.codecs))
	for i, c := range h.set.codecs {
		names[i] = c.String()
	}
	var out []Codec
	for _, n := range media.CodecOrder(names, opts.Codecs) {
		for _, c := range h.set.codecs {
			if c.String() == n {
				out = append(out, c)
			}
		}
	}
	return out
}

// key returns our master key for a suite, made at first use.
func (h *Handler) key(s SRTPSuite) ([]byte, error) {
	if k, ok := h.keys[s]; ok {
		return k, nil
	}
	k, err := newKey(s)
	if err != nil {
		return nil, err
	}
	h.keys[s] = k
	return k, nil
}

// OnRTP sets the function called with every RTP packet accepted from the
// peer (audio, telephone-event or other), as it arrives, from the
// reading goroutine. The packet is the callee's.
func (h *Handler) OnRTP(f func(p *prtp.Packet)) { h.onRTP.Store(&f) }

// LocalAddr returns the address of the RTP socket (RTCP is on the next
// port), or an invalid address before the first offer or answer.
func (h *Handler) LocalAddr() netip.AddrPort {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.st == nil {
		return netip.AddrPort{}
	}
	return h.st.local
}

// HasDescription reports whether contentType is application/sdp.
func (h *Handler) HasDescription(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && strings.EqualFold(mt, contentTypeSDP)
}

// stream returns the media path, opening it at the first call.
func (h *Handler) stream() (*stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, media.ErrClosed
	}
	if h.st == nil {
		st, err := openStream(h)
		if err != nil {
			return nil, err
		}
		h.st = st
	}
	return h.st, nil
}

// GetDescription returns an offer when no remote offer is pending, or
// the answer to the remote offer set last. The first offer asked for
// again (an INVITE resent with credentials) is returned unchanged; a
// re-offer asked for while the previous one is unanswered replaces it
// (that one was refused). media.Options.Hold puts the offer or answer on
// hold; Constraints are ignored (audio only).
func (h *Handler) GetDescription(ctx context.Context, opts media.Options) (media.Description, error) {
	if err := ctx.Err(); err != nil {
		return media.Description{}, err
	}
	h.negMu.Lock()
	defer h.negMu.Unlock()
	st, err := h.stream()
	if err != nil {
		return media.Description{}, err
	}
	var body []byte
	switch h.state {
	case haveLocalOffer:
		if h.remote == nil {
			body = h.offer
			break
		}
		body, err = h.createOffer(st, opts)
	case haveRemoteOffer:
		body, err = h.createAnswer(st, opts)
	default:
		if h.repeated != nil {
			// The peer's SDP repeated was an unchanged re-offer: answer it.
			var off *remoteDesc
			if s, perr := parseSDP(h.repeated); perr != nil {
				err = perr
			} else if off, err = parseOffer(s, &h.set, h.srtpPol); err == nil {
				h.pending, h.state = off, haveRemoteOffer
				body, err = h.createAnswer(st, opts)
			}
			h.repeated = nil
			break
		}
		body, err = h.createOffer(st, opts)
	}
	if err != nil {
		return media.Description{}, err
	}
	return media.Description{ContentType: contentTypeSDP, Body: body}, nil
}

// SetDescription applies the peer's SDP: the answer to our pending
// offer, or else an offer, whose answer GetDescription then returns. An
// offer arriving while an earlier remote offer is unanswered replaces
// it. Plain SDP does not tell an offer from an answer: while our offer
// is pending, what comes is taken as its answer.
//
// An SDP with the same o= session and version as the peer's SDP in force
// changes nothing (RFC 3264 §8); it may be an answer repeated or an
// unchanged re-offer (a session refresh), so it is kept aside and answered
// only if GetDescription comes next.
//
// It returns an error wrapping media.ErrUnsupportedContent for a body
// other than SDP, and media.ErrNotAcceptable for an SDP it cannot read or
// use (no audio m-line in RTP/AVP with PCMU or PCMA, no IP address). A
// refused re-offer, or an unusable answer to our re-offer, leaves the
// media as they were.
func (h *Handler) SetDescription(ctx context.Context, d media.Description, opts media.Options) error {
	if !h.HasDescription(d.ContentType) {
		return fmt.Errorf("%w: %s", media.ErrUnsupportedContent, d.ContentType)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := parseSDP(d.Body)
	if err != nil {
		return err
	}
	h.negMu.Lock()
	defer h.negMu.Unlock()
	st, err := h.stream()
	if err != nil {
		return err
	}
	h.repeated = nil
	switch h.state {
	case haveLocalOffer:
		return h.applyAnswer(st, s)
	case haveRemoteOffer:
		h.pending, h.state = nil, stable // replaced by this one
	}
	if h.remote != nil && s.Origin.SessionID == h.remote.origin.SessionID &&
		s.Origin.SessionVersion == h.remote.origin.SessionVersion &&
		s.Origin.Username == h.remote.origin.Username {
		h.repeated = append([]byte(nil), d.Body...)
		return nil
	}
	off, err := parseOffer(s, &h.set, h.srtpPol)
	if err != nil {
		return err
	}
	h.pending, h.state = off, haveRemoteOffer
	return nil
}

// ReplaceAnswer applies d as the answer to our last offer in place of
// the one in force (media.AnswerReplacer): another fork's early answer,
// or a 2xx answering differently than the 183 did. Media go to the new
// answer's address with its codec. It fails, leaving the media as they
// were, when the exchange in force was not our offer, or d is unusable.
func (h *Handler) ReplaceAnswer(ctx context.Context, d media.Description, opts media.Options) error {
	if !h.HasDescription(d.ContentType) {
		return fmt.Errorf("%w: %s", media.ErrUnsupportedContent, d.ContentType)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := parseSDP(d.Body)
	if err != nil {
		return err
	}
	h.negMu.Lock()
	defer h.negMu.Unlock()
	st, err := h.stream()
	if err != nil {
		return err
	}
	switch {
	case h.state == haveLocalOffer:
	case h.state == stable && h.ourOffer:
	default:
		return fmt.Errorf("%w: no offer of ours to answer again", media.ErrNotAcceptable)
	}
	h.repeated = nil
	return h.applyAnswer(st, s)
}

var _ media.AnswerReplacer = (*Handler)(nil)

// createOffer builds an offer and makes it pending.
func (h *Handler) createOffer(st *stream, opts media.Options) ([]byte, error) {
	dir := SendRecv
	if opts.Hold {
		dir = SendOnly
		if h.remote != nil && h.remote.dir&RecvOnly == 0 {
			dir = Inactive // the peer holds too (RFC 6337 §5.3)
		}
	}
	fmts := offerFormats(&h.set, h.codecsFor(opts))
	var crypto []cryptoAttr
	if h.srtpPol != SRTPOff {
		for i, su := range h.set.suites {
			k, err := h.key(su)
			if err != nil {
				return nil, err
			}
			crypto = append(crypto, cryptoAttr{tag: i + 1, suite: su, key: k})
		}
	}
	body, err := h.marshal([]*sdp.MediaDescription{audioMedia(int(st.local.Port()), fmts, h.set.ptime, dir,
		h.srtpPol == SRTPRequired, crypto)})
	if err != nil {
		return nil, err
	}
	h.state, h.offer, h.offerDir, h.offerFmt = haveLocalOffer, body, dir, fmts
	h.offerCrypto = crypto
	return body, nil
}

// createAnswer answers the pending remote offer and puts the result in
// force.
func (h *Handler) createAnswer(st *stream, opts media.Options) ([]byte, error) {
	off := h.pending
	fmts := answerFormats(off, &h.set, h.codecsFor(opts))
	if len(fmts) == 0 || fmts[0].te {
		fmts = answerFormats(off, &h.set, h.set.codecs) // the call's codecs are not offered: take ours
	}
	dir := SendRecv & off.dir.reverse()
	if opts.Hold {
		dir &^= RecvOnly
	}
	var crypto []cryptoAttr
	var sec *sdes
	if h.srtpPol != SRTPOff && len(off.crypto) > 0 {
		c := off.crypto[0]
		k, err := h.key(c.suite)
		if err != nil {
			return nil, err
		}
		crypto = []cryptoAttr{{tag: c.tag, suite: c.suite, key: k}}
		sec = &sdes{suite: c.suite, local: k, remote: c.key}
	}
	mls := make([]*sdp.MediaDescription, len(off.mlines))
	for i, md := range off.mlines {
		if i == off.index {
			mls[i] = audioMedia(int(st.local.Port()), fmts, h.set.ptime, dir, off.savp, crypto)
		} else {
			mls[i] = rejectedMedia(md)
		}
	}
	body, err := h.marshal(mls)
	if err != nil {
		return nil, err
	}
	h.state, h.pending, h.remote = stable, nil, off
	h.ourOffer = false
	p := params{
		dir:    dir,
		codec:  fmts[0].codec,
		pt:     fmts[0].pt,
		te:     off.tePT,
		recv:   map[uint8]Codec{},
		recvTE: off.tePT,
		ptime:  h.set.ptime,
		remote: off.addr,
		rtcp:   off.rtcp,
		sec:    sec,
	}
	for _, f := range fmts {
		if !f.te {
			p.recv[f.pt] = f.codec
		}
	}
	if off.ptime > 0 {
		p.ptime = off.ptime
	}
	st.apply(p)
	return body, nil
}

// applyAnswer applies the peer's answer to our pending offer.
func (h *Handler) applyAnswer(st *stream, s *sdp.SessionDescription) error {
	ans, err := parseAnswer(s, &h.set, h.srtpPol)
	var sec *sdes
	if err == nil {
		ans.codecs = offered(ans.codecs, h.offerFmt)
		if len(ans.codecs) == 0 {
			err = fmt.Errorf("%w: the answer has none of the codecs offered", media.ErrNotAcceptable)
		}
	}
	if err == nil && len(ans.crypto) > 0 && len(h.offerCrypto) > 0 {
		a := ans.crypto[0]
		for _, o := range h.offerCrypto {
			if o.tag == a.tag && o.suite == a.suite {
				sec = &sdes{suite: a.suite, local: o.key, remote: a.key}
			}
		}
		if sec == nil {
			err = fmt.Errorf("%w: the answer's a=crypto matches none offered", media.ErrNotAcceptable)
		}
	}
	if err == nil && sec == nil && h.srtpPol == SRTPRequired {
		err = fmt.Errorf("%w: SRTP required and the answer has no a=crypto", media.ErrNotAcceptable)
	}
	if err != nil {
		if h.remote != nil {
			// An unusable answer to a re-offer: the session stays as it was.
			h.state, h.offer = stable, nil
		}
		return err
	}
	h.state, h.offer, h.remote = stable, nil, ans
	h.ourOffer = true
	p := params{
		dir:    h.offerDir & ans.dir.reverse(),
		codec:  ans.codecs[0].codec,
		pt:     ans.codecs[0].pt,
		te:     -1,
		recv:   map[uint8]Codec{},
		recvTE: -1,
		ptime:  h.set.ptime,
		remote: ans.addr,
		rtcp:   ans.rtcp,
		sec:    sec,
	}
	for _, f := range h.offerFmt {
		switch {
		case !f.te:
			p.recv[f.pt] = f.codec
		case ans.tePT >= 0:
			p.te, p.recvTE = ans.tePT, int(f.pt)
		}
	}
	if ans.ptime > 0 {
		p.ptime = ans.ptime
	}
	st.apply(p)
	return nil
}

// offered keeps the formats of an answer that our offer had.
func offered(answer, offer []format) []format {
	var out []format
	for _, a := range answer {
		for _, o := range offer {
			if !o.te && o.codec == a.codec {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// marshal returns our SDP around the m-lines, its o= version incremented
// when it differs from the last one sent (RFC 3264 §8).
func (h *Handler) marshal(mls []*sdp.MediaDescription) ([]byte, error) {
	ip := h.set.sdpIP
	body, err := marshalSDP(ip, h.sessID, h.sessVer, mls)
	if err != nil {
		return nil, err
	}
	if h.lastSDP != nil && !bytes.Equal(body, h.lastSDP) {
		h.sessVer++
		if body, err = marshalSDP(ip, h.sessID, h.sessVer, mls); err != nil {
			return nil, err
		}
	}
	h.lastSDP = body
	return body, nil
}

// SendDTMF queues tones ("0"–"9", "*", "#", "A"–"D"; "," is a two-second
// pause) to send as RFC 4733 events of the given length each (0: 100 ms;
// clamped to 40 ms … 6 s), 80 ms apart. It returns at once; tones wait
// while the audio is not being sent (on hold). It returns an error
// wrapping media.ErrNotSupported when telephone-event has not been
// negotiated, and media.ErrClosed after Close.
func (h *Handler) SendDTMF(tones string, duration time.Duration) error {
	if duration == 0 {
		duration = dtmfDefault
	}
	duration = min(max(duration, dtmfMinDuration), dtmfMaxDuration)
	samples := int(duration * SampleRate / time.Second)
	q := make([]tone, 0, len(tones))
	for _, c := range tones {
		if c == ',' {
			q = append(q, tone{pause: true})
			continue
		}
		code, ok := audio.DTMFCode(c)
		if !ok {
			return fmt.Errorf("rtp: invalid DTMF tone %q", c)
		}
		q = append(q, tone{code: code, samples: samples})
	}
	h.mu.Lock()
	closed, st := h.closed, h.st
	h.mu.Unlock()
	if closed {
		return media.ErrClosed
	}
	if st == nil {
		return fmt.Errorf("%w: no telephone-event negotiated yet", media.ErrNotSupported)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.ok || st.p.te < 0 {
		return fmt.Errorf("%w: telephone-event not negotiated", media.ErrNotSupported)
	}
	st.tones = append(st.tones, q...)
	return nil
}

// Close sends an RTCP BYE (unless Config.RTCPInterval turned RTCP off),
// closes the sockets and waits for the handler's goroutines; queued DTMF
// tones are dropped. It may be called more than once; later calls
// return nil.
func (h *Handler) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	st := h.st
	h.mu.Unlock()
	if st != nil {
		st.close()
	}
	return nil
}

// Stats are a handler's negotiated parameters and media counts. Bytes
// are RTP payload bytes (headers excluded), as in RTCP sender reports;
// counts add up across renegotiations.
type Stats struct {
	// LocalAddr is the RTP socket's address; RemoteAddr where RTP goes:
	// the SDP's address, or the source latched. Invalid when none.
	LocalAddr, RemoteAddr netip.AddrPort
	// Latched is true once RemoteAddr comes from a received packet.
	Latched bool
	// Direction is the negotiated direction, from this side; Inactive
	// before the first exchange completes.
	Direction Direction
	// Codec is the codec sent; PayloadType its payload type.
	Codec       Codec
	PayloadType uint8
	// DTMF is true when telephone-event was negotiated.
	DTMF bool
	// Ptime is the packetization interval of what is sent.
	Ptime time.Duration
	// PacketsSent and BytesSent count the RTP sent, telephone-events
	// included.
	PacketsSent, BytesSent uint64
	// PacketsReceived and BytesReceived count the RTP accepted from the
	// peer.
	PacketsReceived, BytesReceived uint64
	// PacketsLost is the cumulative loss of the current remote source
	// (RFC 3550 A.3; negative with duplicates); Jitter its interarrival
	// jitter (A.8).
	PacketsLost int64
	Jitter      time.Duration
	// PacketsDiscarded counts packets dropped on receipt: unreadable,
	// from a source other than the one latched, too late for playout or
	// beyond the jitter buffer's bound.
	PacketsDiscarded uint64
	// DTMFSent and DTMFReceived count RFC 4733 tones.
	DTMFSent, DTMFReceived uint64
	// RTCPSent and RTCPReceived count compound RTCP packets.
	RTCPSent, RTCPReceived uint64
	// RoundTripTime comes from the peer's reception reports on our
	// stream; zero until one has arrived.
	RoundTripTime time.Duration
	// LossRate is the share of the peer's packets lost on the way to us
	// (0–1) over the call so far.
	LossRate float64
	// RemotePacketsLost, RemoteLossRate and RemoteJitter are what the
	// peer's last RTCP reception report says of our stream: cumulative
	// loss, the fraction lost in its last interval (0–1), interarrival
	// jitter. RemoteReport is false until one came.
	RemotePacketsLost int64
	RemoteLossRate    float64
	RemoteJitter      time.Duration
	RemoteReport      bool
	// MOS is an estimate of the call's listening quality on the 1–4.5
	// scale by the E-model of ITU-T G.107 (simplified: default values for
	// everything but the codec, the worse direction's loss and the
	// one-way delay, taken as half the round trip plus the jitter buffer
	// and packetization); zero before any audio came.
	MOS float64
	// SRTP is the crypto suite protecting the media; empty for plain RTP.
	SRTP SRTPSuite
	// SRTPFailed counts packets (RTP and RTCP) that failed SRTP
	// authentication or decryption and were dropped: a peer with other
	// keys, or forged packets.
	SRTPFailed uint64
}

// Stats returns the handler's current statistics.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	st := h.st
	h.mu.Unlock()
	if st == nil {
		return Stats{}
	}
	out := Stats{
		LocalAddr:        st.local,
		PacketsSent:      st.count.packetsSent.Load(),
		BytesSent:        st.count.bytesSent.Load(),
		PacketsReceived:  st.count.packetsReceived.Load(),
		BytesReceived:    st.count.bytesReceived.Load(),
		PacketsDiscarded: st.count.discarded.Load(),
		DTMFSent:         st.count.dtmfSent.Load(),
		DTMFReceived:     st.count.dtmfReceived.Load(),
		RTCPSent:         st.count.rtcpSent.Load(),
		RTCPReceived:     st.count.rtcpReceived.Load(),
		SRTPFailed:       st.count.srtpFailed.Load(),
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	out.RemoteAddr, out.Latched = st.dest, st.latched
	if st.ok {
		out.Direction, out.Codec, out.PayloadType = st.p.dir, st.p.codec, st.p.pt
		out.DTMF, out.Ptime = st.p.te >= 0, st.p.ptime
	}
	if st.rx.init {
		out.PacketsLost = st.rx.lost()
		out.Jitter = time.Duration(st.rx.jitter * float64(time.Second) / float64(st.p.codec.clock()))
	}
	out.RoundTripTime = st.rtt
	if st.havePeer {
		out.RemoteReport = true
		out.RemotePacketsLost = int64(st.peerRR.totalLost)
		out.RemoteLossRate = float64(st.peerRR.fractionLost) / 256
		out.RemoteJitter = time.Duration(float64(st.peerRR.jitter) * float64(time.Second) / float64(st.p.codec.clock()))
	}
	if st.rx.init {
		if exp := st.rx.expected(); exp > 0 {
			out.LossRate = min(max(float64(st.rx.lost())/float64(exp), 0), 1)
		}
		oneWay := st.rtt/2 + h.set.jitterDelay + out.Ptime + out.Jitter
		out.MOS = mosEstimate(max(out.LossRate, out.RemoteLossRate), oneWay, out.Codec)
	}
	if st.sec != nil {
		out.SRTP = st.sec.keys.suite
	}
	return out
}
