package rtp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/sipua/sip/media"
)

// Defaults used where a Config field is zero.
const (
	// DefaultPtime is the packetization interval: 20 ms of audio (160
	// G.711 samples) per RTP packet.
	DefaultPtime = 20 * time.Millisecond
	// DefaultJitterDelay is how much received audio the jitter buffer
	// holds before it starts playing out.
	DefaultJitterDelay = 60 * time.Millisecond
	// DefaultRTCPInterval is the mean interval between RTCP reports
	// (RFC 3550 §6.2 suggests 5 s); each interval is randomized by ±50 %.
	DefaultRTCPInterval = 5 * time.Second
	// DefaultDTMFPayloadType is the payload type offered for RFC 4733
	// telephone-event.
	DefaultDTMFPayloadType = 101
	// DefaultMediaTimeout is how long a call may receive nothing before
	// the handler reports its media dead.
	DefaultMediaTimeout = 30 * time.Second
)

// Codec is an audio codec the handler offers, answers, sends and
// decodes, named by its static payload type (RFC 3551).
type Codec uint8

// The codecs of this package.
const (
	// PCMU is G.711 µ-law, payload type 0.
	PCMU Codec = 0
	// PCMA is G.711 A-law, payload type 8.
	PCMA Codec = 8
	// G722 is ITU-T G.722 at 64 kbit/s (media/g722), payload type 9:
	// 16 kHz audio, though its SDP clock rate and RTP timestamps run at
	// 8000 Hz (RFC 3551 §4.5.2). The handler converts between it and the
	// 8 kHz PCM of AudioSource and OnAudio.
	G722 Codec = 9
	// Opus is Opus (RFC 6716, RFC 7587) on the dynamic payload type 111
	// (an answer takes the offer's), "opus/48000/2" with a 48000 Hz RTP
	// clock. The handler has no Opus coder of its own (there is no pure-Go
	// encoder): it offers and answers Opus only when Config.Opus supplies
	// one that works, such as media/opus's (libopus, cgo).
	Opus Codec = 111
)

// clock returns the codec's RTP clock rate.
func (c Codec) clock() int {
	if c == Opus {
		return 48000
	}
	return SampleRate
}

// OpusEncoder encodes 20 ms of 48 kHz mono 16-bit PCM (960 samples) into
// one Opus packet appended to dst; *opus.Encoder of media/opus has this
// method set.
type OpusEncoder interface {
	// Encode appends the packet of pcm to dst.
	Encode(dst []byte, pcm []int16) ([]byte, error)
	// Close frees the encoder; the handler calls it when it closes.
	Close()
}

// OpusDecoder decodes one Opus packet into 48 kHz mono 16-bit PCM
// appended to dst; *opus.Decoder of media/opus has this method set.
type OpusDecoder interface {
	// Decode appends the PCM of packet to dst.
	Decode(dst []int16, packet []byte) ([]int16, error)
	// Close frees the decoder; the handler calls it when it closes.
	Close()
}

// OpusCodec supplies the Opus coder of each call (Config.Opus): media/opus
// has one, kept out of this package so that it stays free of cgo:
//
//	rtp.Config{Codecs: []rtp.Codec{rtp.Opus, rtp.PCMU}, Opus: &rtp.OpusCodec{
//		NewEncoder: func() (rtp.OpusEncoder, error) { return opus.NewEncoder(opus.EncoderOptions{Channels: 1}) },
//		NewDecoder: func() (rtp.OpusDecoder, error) { return opus.NewDecoder(1) },
//	}}
type OpusCodec struct {
	// NewEncoder makes the encoder of one call (48 kHz, mono).
	NewEncoder func() (OpusEncoder, error)
	// NewDecoder makes the decoder of one call (48 kHz, mono).
	NewDecoder func() (OpusDecoder, error)
}

// String returns the codec's SDP encoding name, e.g. "PCMU".
func (c Codec) String() string {
	switch c {
	case Opus:
		return "opus"
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	case G722:
		return "G722"
	}
	return fmt.Sprintf("Codec(%d)", uint8(c))
}

// valid reports a codec this package implements.
func (c Codec) valid() bool { return c == PCMU || c == PCMA || c == G722 || c == Opus }

// Config configures the handlers made by New and NewFactory. Its zero
// value works: the first non-loopback IPv4 address of the host (else
// 127.0.0.1), ports chosen by the system, PCMU then PCMA with
// telephone-event on payload type 101, 20 ms packets, a 60 ms jitter
// buffer, RTCP every ~5 s, no SRTP, a 30 s media timeout, silence as the
// audio source and no logging.
type Config struct {
	// IP is the local address: the RTP and RTCP sockets are bound to it
	// and the SDP names it in c= and o=. Nil: the first IPv4 address of
	// an interface that is up and not loopback, or 127.0.0.1 when there
	// is none. An unspecified address (0.0.0.0, ::) binds the sockets to
	// every interface and names the default address in the SDP.
	IP net.IP

	// ExternalIP, when set, is the address the SDP names instead of IP:
	// the public side of a 1:1 NAT, say. The sockets stay bound to IP.
	ExternalIP net.IP

	// PortMin and PortMax bound the RTP port, which is even; RTCP takes
	// the next (odd) port (RFC 3550 §11). Zero: any pair of ports the
	// system gives. When set, PortMax must be at least PortMin+1.
	PortMin, PortMax uint16

	// Codecs lists the codecs to offer and accept, in order of
	// preference (a per-call media.Options.Codecs reorders and narrows
	// it). Nil: PCMU, then PCMA.
	Codecs []Codec

	// Opus supplies the Opus coder when Codecs lists Opus: without it, or
	// when it fails to make an encoder (libopus missing), Opus is left
	// out of offers and answers.
	Opus *OpusCodec

	// SRTP is the SDES-SRTP policy (RFC 4568) of the handlers made:
	// SRTPOff (the zero value), SRTPOffer or SRTPRequired. A call may
	// change it with Handler.SetSRTP before its first exchange.
	SRTP SRTPPolicy

	// SRTPSuites are the crypto suites offered and accepted, in order of
	// preference. Nil: AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32,
	// AEAD_AES_128_GCM.
	SRTPSuites []SRTPSuite

	// MediaTimeout ends the call (media.FailureNotifier,
	// media.ErrMediaTimeout) when no RTP and no RTCP came from the peer
	// for this long while the call is sendrecv. It is armed by the first
	// packet from the peer (a call still ringing without early media, or
	// a peer that never sends, is not ended by it), counts from the last
	// one or from the last offer/answer exchange, and does not run while
	// either side holds the call (a holding phone may send nothing at
	// all). Zero: DefaultMediaTimeout; negative: never.
	MediaTimeout time.Duration

	// DTMFPayloadType is the payload type offered for RFC 4733
	// telephone-event/8000 (an answer takes the offer's). Zero:
	// DefaultDTMFPayloadType. It must be dynamic (96–127).
	DTMFPayloadType uint8

	// NoDTMF leaves telephone-event out of offers and answers: SendDTMF
	// then fails and received events are not recognized.
	NoDTMF bool

	// Ptime is the audio carried in one packet, a multiple of 10 ms from
	// 10 to 60 ms; offered as a=ptime. A peer's a=ptime in that range is
	// honoured when sending to it. Zero: DefaultPtime.
	Ptime time.Duration

	// JitterDelay is how much received audio the jitter buffer holds
	// before it plays out (rounded up to whole packets); it then holds at
	// most four times as much, dropping the oldest beyond. Zero:
	// DefaultJitterDelay.
	JitterDelay time.Duration

	// RTCPInterval is the mean interval between RTCP sender or receiver
	// reports. Zero: DefaultRTCPInterval; negative: no RTCP is sent, not
	// even a BYE at Close (what arrives is still read).
	RTCPInterval time.Duration

	// Logger receives the handler's logs. Nil: nothing is logged.
	Logger *slog.Logger

	// Setup, when set, is called by the Factory made by NewFactory with
	// each new handler before the factory returns it: the place to set
	// the audio source and the callbacks of a session's media.
	Setup func(h *Handler, info media.SessionInfo)
}

// settings are a Config with its defaults filled in and checked.
type settings struct {
	bindIP      netip.Addr // the sockets' address (maybe unspecified)
	sdpIP       netip.Addr // the address the SDP names
	portMin     int
	portMax     int
	codecs      []Codec
	tePT        int // -1: no telephone-event
	ptime       time.Duration
	jitterDelay time.Duration
	rtcpEvery   time.Duration // 0: no RTCP sent
	srtp        SRTPPolicy
	suites      []SRTPSuite
	timeout     time.Duration // 0: no media timeout
	opus        *OpusCodec
}

func (c *Config) settings() (settings, error) {
	var s settings
	var err error
	if s.bindIP, err = ipOf(c.IP); err != nil {
		return s, fmt.Errorf("rtp: IP: %w", err)
	}
	if !s.bindIP.IsValid() {
		s.bindIP = defaultIP()
	}
	s.sdpIP = s.bindIP
	if s.sdpIP.IsUnspecified() {
		s.sdpIP = defaultIP()
		if s.bindIP.Is6() && !s.sdpIP.Is6() {
			s.bindIP = netip.IPv4Unspecified()
		}
	}
	if c.ExternalIP != nil {
		ext, err := ipOf(c.ExternalIP)
		if err != nil || ext.IsUnspecified() {
			return s, fmt.Errorf("rtp: ExternalIP %v is not a unicast address", c.ExternalIP)
		}
		s.sdpIP = ext
	}
	switch {
	case c.PortMin == 0 && c.PortMax == 0:
	case int(c.PortMax) < int(c.PortMin)+1:
		return s, fmt.Errorf("rtp: port range %d-%d holds no RTP/RTCP pair", c.PortMin, c.PortMax)
	default:
		s.portMin, s.portMax = int(c.PortMin), int(c.PortMax)
	}
	s.codecs = c.Codecs
	if len(s.codecs) == 0 {
		s.codecs = []Codec{PCMU, PCMA}
	}
	for _, k := range s.codecs {
		if !k.valid() {
			return s, fmt.Errorf("rtp: unsupported codec %v", k)
		}
	}
	if slices.Contains(s.codecs, Opus) {
		// Offer Opus only when it can be sent: probe for an encoder.
		ok := c.Opus != nil && c.Opus.NewEncoder != nil && c.Opus.NewDecoder != nil
		if ok {
			enc, err := c.Opus.NewEncoder()
			if ok = err == nil && enc != nil; ok {
				enc.Close()
			}
		}
		if ok {
			s.opus = c.Opus
		} else {
			s.codecs = slices.DeleteFunc(slices.Clone(s.codecs), func(k Codec) bool { return k == Opus })
			if len(s.codecs) == 0 {
				return s, fmt.Errorf("rtp: Opus is the only codec and no Opus coder works (Config.Opus)")
			}
		}
	}
	s.tePT = int(c.DTMFPayloadType)
	switch {
	case c.NoDTMF:
		s.tePT = -1
	case s.tePT == 0:
		s.tePT = DefaultDTMFPayloadType
	case s.tePT < 96 || s.tePT > 127:
		return s, fmt.Errorf("rtp: DTMFPayloadType %d is not dynamic (96-127)", s.tePT)
	}
	s.ptime = c.Ptime
	if s.ptime == 0 {
		s.ptime = DefaultPtime
	}
	if !validPtime(s.ptime) {
		return s, fmt.Errorf("rtp: Ptime %v is not a multiple of 10 ms from 10 to 60 ms", c.Ptime)
	}
	s.jitterDelay = c.JitterDelay
	switch {
	case s.jitterDelay == 0:
		s.jitterDelay = DefaultJitterDelay
	case s.jitterDelay < 0:
		return s, fmt.Errorf("rtp: negative JitterDelay %v", c.JitterDelay)
	}
	s.rtcpEvery = c.RTCPInterval
	switch {
	case s.rtcpEvery == 0:
		s.rtcpEvery = DefaultRTCPInterval
	case s.rtcpEvery < 0:
		s.rtcpEvery = 0
	}
	if c.SRTP > SRTPRequired {
		return s, fmt.Errorf("rtp: unknown SRTP policy %d", c.SRTP)
	}
	s.srtp = c.SRTP
	s.suites = c.SRTPSuites
	if len(s.suites) == 0 {
		s.suites = defaultSuites
	}
	for _, su := range s.suites {
		if _, ok := suiteInfo(su); !ok {
			return s, fmt.Errorf("rtp: unsupported SRTP suite %q", su)
		}
	}
	s.timeout = c.MediaTimeout
	switch {
	case s.timeout == 0:
		s.timeout = DefaultMediaTimeout
	case s.timeout < 0:
		s.timeout = 0
	}
	return s, nil
}

// validPtime reports a packetization interval this package sends.
func validPtime(d time.Duration) bool {
	return d >= 10*time.Millisecond && d <= 60*time.Millisecond && d%(10*time.Millisecond) == 0
}

// ipOf converts a net.IP (nil allowed) to a netip.Addr, IPv4 unmapped.
func ipOf(ip net.IP) (netip.Addr, error) {
	if ip == nil {
		return netip.Addr{}, nil
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, errors.New("malformed address")
	}
	return a.Unmap(), nil
}

// defaultIP returns the first IPv4 address of an interface that is up
// and not loopback, or 127.0.0.1.
func defaultIP() netip.Addr {
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip, err := ipOf(n.IP); err == nil && ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				return ip
			}
		}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}
