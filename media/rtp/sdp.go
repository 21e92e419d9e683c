package rtp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/sipua/sip/media"
)

const contentTypeSDP = "application/sdp"

// Direction is a media direction (RFC 3264 §5.1) from the point of view
// of the side it belongs to: sending, receiving, both or neither.
type Direction uint8

// The four directions. Inactive is also the zero value, before any
// exchange has completed.
const (
	// Inactive: no media either way (RTCP still flows).
	Inactive Direction = 0
	// SendOnly: this side sends and does not receive.
	SendOnly Direction = 1
	// RecvOnly: this side receives and does not send.
	RecvOnly Direction = 2
	// SendRecv: media both ways.
	SendRecv Direction = SendOnly | RecvOnly
)

// String returns the SDP attribute name, e.g. "sendonly".
func (d Direction) String() string {
	switch d & SendRecv {
	case SendRecv:
		return "sendrecv"
	case SendOnly:
		return "sendonly"
	case RecvOnly:
		return "recvonly"
	default:
		return "inactive"
	}
}

// reverse turns the peer's direction into ours: their sendonly is our
// recvonly.
func (d Direction) reverse() Direction {
	var r Direction
	if d&SendOnly != 0 {
		r |= RecvOnly
	}
	if d&RecvOnly != 0 {
		r |= SendOnly
	}
	return r
}

// parseDirection reads a direction attribute name.
func parseDirection(key string) (Direction, bool) {
	switch key {
	case "sendrecv":
		return SendRecv, true
	case "sendonly":
		return SendOnly, true
	case "recvonly":
		return RecvOnly, true
	case "inactive":
		return Inactive, true
	}
	return 0, false
}

// format is one RTP payload format of an audio m-line this handler can
// use: a G.711 codec, or telephone-event.
type format struct {
	pt    uint8
	codec Codec
	te    bool // telephone-event/8000; codec is meaningless
}

// remoteDesc is what this handler takes from a peer's SDP.
type remoteDesc struct {
	origin sdp.Origin
	mlines []*sdp.MediaDescription // every m-line, to reject the others in an answer
	index  int                     // the audio m-line used
	addr   netip.AddrPort          // where its RTP goes; invalid when none (c=0.0.0.0)
	rtcp   netip.AddrPort          // where its RTCP goes
	dir    Direction               // the peer's direction
	codecs []format                // usable codecs, in the peer's order, numbered as the peer does
	tePT   int                     // the peer's telephone-event payload type, or -1
	ptime  time.Duration           // the peer's a=ptime when usable, else 0
	savp   bool                    // the m-line is RTP/SAVP
	crypto []cryptoAttr            // its usable a=crypto lines, in its order
}

// parseSDP unmarshals a session description.
func parseSDP(body []byte) (*sdp.SessionDescription, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, fmt.Errorf("%w: empty session description", media.ErrNotAcceptable)
	}
	var s sdp.SessionDescription
	if err := s.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("%w: malformed SDP: %w", media.ErrNotAcceptable, err)
	}
	return &s, nil
}

// parseOffer picks the first audio m-line of a remote offer that this
// handler can take (RTP/AVP, one of our codecs, an IP address) and reads
// it. It returns an error wrapping media.ErrNotAcceptable when there is
// none, saying why.
func parseOffer(s *sdp.SessionDescription, set *settings, pol SRTPPolicy) (*remoteDesc, error) {
	var why []string
	for i, md := range s.MediaDescriptions {
		r, err := readMedia(s, i, set, pol)
		if err == nil {
			return r, nil
		}
		if md.MediaName.Port.Value != 0 {
			why = append(why, err.Error())
		}
	}
	if len(why) == 0 {
		why = append(why, "no active m-line")
	}
	return nil, fmt.Errorf("%w: %s", media.ErrNotAcceptable, strings.Join(why, "; "))
}

// parseAnswer reads the peer's answer to our offer, whose one m-line is
// audio: the answer's first m-line must accept it.
func parseAnswer(s *sdp.SessionDescription, set *settings, pol SRTPPolicy) (*remoteDesc, error) {
	if len(s.MediaDescriptions) == 0 {
		return nil, fmt.Errorf("%w: answer without m-line", media.ErrNotAcceptable)
	}
	if s.MediaDescriptions[0].MediaName.Port.Value == 0 {
		return nil, fmt.Errorf("%w: the answer rejects the audio stream", media.ErrNotAcceptable)
	}
	r, err := readMedia(s, 0, set, pol)
	if err != nil {
		return nil, fmt.Errorf("%w: answer: %w", media.ErrNotAcceptable, err)
	}
	return r, nil
}

// readMedia reads m-line i, or says why this handler cannot use it.
func readMedia(s *sdp.SessionDescription, i int, set *settings, pol SRTPPolicy) (*remoteDesc, error) {
	md := s.MediaDescriptions[i]
	mn := md.MediaName
	proto := strings.ToUpper(strings.Join(mn.Protos, "/"))
	switch {
	case mn.Port.Value == 0:
		return nil, fmt.Errorf("m=%s rejected", mn.Media)
	case mn.Media != "audio":
		return nil, fmt.Errorf("m=%s is not audio", mn.Media)
	case proto != "RTP/AVP" && proto != "RTP/SAVP":
		return nil, fmt.Errorf("m=audio profile %s is neither RTP/AVP nor RTP/SAVP", proto)
	case proto == "RTP/SAVP" && pol == SRTPOff:
		return nil, fmt.Errorf("m=audio is RTP/SAVP and SRTP is off")
	case mn.Port.Value < 0 || mn.Port.Value > 65535:
		return nil, fmt.Errorf("m=audio port %d out of range", mn.Port.Value)
	}
	r := &remoteDesc{origin: s.Origin, mlines: s.MediaDescriptions, index: i, tePT: -1, savp: proto == "RTP/SAVP"}
	if pol != SRTPOff {
		for _, a := range md.Attributes {
			if a.Key == "crypto" {
				if c, ok := parseCrypto(a.Value, set.suites); ok {
					r.crypto = append(r.crypto, c)
				}
			}
		}
		if len(r.crypto) == 0 && (r.savp || pol == SRTPRequired) {
			return nil, fmt.Errorf("m=audio %s has no a=crypto with a suite of ours (%s)", proto, suiteList(set.suites))
		}
	}
	for _, f := range formats(md) {
		switch {
		case f.te:
			if set.tePT >= 0 && r.tePT < 0 {
				r.tePT = int(f.pt)
			}
		case has(set.codecs, f.codec):
			r.codecs = append(r.codecs, f)
		}
	}
	if len(r.codecs) == 0 {
		return nil, fmt.Errorf("no codec of ours (%s) in m=audio %s", codecList(set.codecs),
			strings.Join(mn.Formats, " "))
	}
	ci := md.ConnectionInformation
	if ci == nil {
		ci = s.ConnectionInformation
	}
	if ci == nil || ci.Address == nil {
		return nil, fmt.Errorf("m=audio has no c= address")
	}
	ip, err := netip.ParseAddr(ci.Address.Address)
	if err != nil {
		return nil, fmt.Errorf("c= address %q is not an IP address", ci.Address.Address)
	}
	ip = ip.Unmap()
	r.dir = SendRecv
	if d, ok := directionOf(md.Attributes); ok {
		r.dir = d
	} else if d, ok := directionOf(s.Attributes); ok {
		r.dir = d
	}
	if ip.IsUnspecified() {
		// RFC 2543 hold: the peer wants nothing sent to it.
		r.dir &^= RecvOnly
	} else {
		r.addr = netip.AddrPortFrom(ip, uint16(mn.Port.Value))
		r.rtcp = netip.AddrPortFrom(ip, uint16(mn.Port.Value+1))
		if v, ok := md.Attribute("rtcp"); ok { // RFC 3605: a=rtcp:port [IN IP4 addr]
			f := strings.Fields(v)
			if len(f) == 0 {
				f = []string{""}
			}
			port, err := strconv.Atoi(f[0])
			if err == nil && port > 0 && port <= 65535 {
				rip := ip
				if len(f) == 4 {
					if a, err := netip.ParseAddr(f[3]); err == nil {
						rip = a.Unmap()
					}
				}
				r.rtcp = netip.AddrPortFrom(rip, uint16(port))
			}
		}
	}
	if v, ok := md.Attribute("ptime"); ok {
		if ms, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			if d := time.Duration(ms) * time.Millisecond; validPtime(d) {
				r.ptime = d
			}
		}
	}
	return r, nil
}

// directionOf returns the first direction attribute of a list.
func directionOf(attrs []sdp.Attribute) (Direction, bool) {
	for _, a := range attrs {
		if d, ok := parseDirection(a.Key); ok {
			return d, true
		}
	}
	return 0, false
}

// formats lists the G.711 and telephone-event formats of an m-line in
// order, naming the static payload types 0 and 8 that may come without
// a=rtpmap.
func formats(md *sdp.MediaDescription) []format {
	type mapping struct {
		name     string
		clock    int
		channels int
	}
	maps := map[string]mapping{}
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, enc, ok := strings.Cut(strings.TrimSpace(a.Value), " ")
		if !ok {
			continue
		}
		parts := strings.Split(strings.TrimSpace(enc), "/")
		m := mapping{name: strings.ToLower(parts[0]), channels: 1}
		if len(parts) > 1 {
			m.clock, _ = strconv.Atoi(parts[1])
		}
		if len(parts) > 2 {
			m.channels, _ = strconv.Atoi(parts[2])
		}
		maps[pt] = m
	}
	var out []format
	for _, f := range md.MediaName.Formats {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 127 {
			continue
		}
		m, ok := maps[f]
		if !ok {
			switch n {
			case 0:
				m = mapping{"pcmu", SampleRate, 1}
			case 8:
				m = mapping{"pcma", SampleRate, 1}
			case 9:
				m = mapping{"g722", SampleRate, 1}
			default:
				continue
			}
		}
		if m.name == "opus" {
			if m.clock == 48000 && m.channels == 2 {
				out = append(out, format{pt: uint8(n), codec: Opus})
			}
			continue
		}
		if m.clock != SampleRate || m.channels != 1 {
			continue
		}
		switch m.name {
		case "g722":
			out = append(out, format{pt: uint8(n), codec: G722})
		case "pcmu":
			out = append(out, format{pt: uint8(n), codec: PCMU})
		case "pcma":
			out = append(out, format{pt: uint8(n), codec: PCMA})
		case "telephone-event":
			out = append(out, format{pt: uint8(n), te: true})
		}
	}
	return out
}

func has(cs []Codec, c Codec) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

func suiteList(ss []SRTPSuite) string {
	s := make([]string, len(ss))
	for i, x := range ss {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}

func codecList(cs []Codec) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}

// offerFormats are the formats of our offers: our codecs on their static
// payload types, then telephone-event.
func offerFormats(set *settings, codecs []Codec) []format {
	out := make([]format, 0, len(codecs)+1)
	for _, c := range codecs {
		out = append(out, format{pt: uint8(c), codec: c})
	}
	if set.tePT >= 0 {
		out = append(out, format{pt: uint8(set.tePT), te: true})
	}
	return out
}

// answerFormats are the formats of our answer to r: the codecs we share,
// in our order of preference and numbered as the offer does (RFC 3264
// §6.1), then telephone-event when offered.
func answerFormats(r *remoteDesc, set *settings, codecs []Codec) []format {
	var out []format
	for _, c := range codecs {
		for _, f := range r.codecs {
			if f.codec == c {
				out = append(out, f)
				break
			}
		}
	}
	if r.tePT >= 0 {
		out = append(out, format{pt: uint8(r.tePT), te: true})
	}
	return out
}

// audioMedia returns our audio m-line.
func audioMedia(port int, fmts []format, ptime time.Duration, dir Direction, savp bool, crypto []cryptoAttr) *sdp.MediaDescription {
	profile := "AVP"
	if savp {
		profile = "SAVP"
	}
	md := &sdp.MediaDescription{
		MediaName: sdp.MediaName{
			Media:  "audio",
			Port:   sdp.RangedPort{Value: port},
			Protos: []string{"RTP", profile},
		},
	}
	for _, f := range fmts {
		pt := strconv.Itoa(int(f.pt))
		md.MediaName.Formats = append(md.MediaName.Formats, pt)
		if f.te {
			md.Attributes = append(md.Attributes,
				sdp.NewAttribute("rtpmap", pt+" telephone-event/8000"),
				sdp.NewAttribute("fmtp", pt+" 0-15"))
			continue
		}
		if f.codec == Opus {
			md.Attributes = append(md.Attributes, sdp.NewAttribute("rtpmap", pt+" opus/48000/2"),
				sdp.NewAttribute("fmtp", pt+" useinbandfec=1"))
			continue
		}
		md.Attributes = append(md.Attributes, sdp.NewAttribute("rtpmap", pt+" "+f.codec.String()+"/8000"))
	}
	md.Attributes = append(md.Attributes,
		sdp.NewAttribute("ptime", strconv.Itoa(int(ptime/time.Millisecond))),
		sdp.NewPropertyAttribute(dir.String()))
	for _, c := range crypto {
		md.Attributes = append(md.Attributes, sdp.NewAttribute("crypto", c.value()))
	}
	return md
}

// rejectedMedia returns the answer's m-line refusing an offered one
// (RFC 3264 §6: port zero, the offer's formats).
func rejectedMedia(offered *sdp.MediaDescription) *sdp.MediaDescription {
	mn := offered.MediaName
	return &sdp.MediaDescription{MediaName: sdp.MediaName{
		Media:   mn.Media,
		Port:    sdp.RangedPort{Value: 0},
		Protos:  mn.Protos,
		Formats: mn.Formats,
	}}
}

// marshalSDP returns a whole session description around the m-lines.
func marshalSDP(ip netip.Addr, id, version uint64, mlines []*sdp.MediaDescription) ([]byte, error) {
	addrType := "IP4"
	if ip.Is6() {
		addrType = "IP6"
	}
	s := sdp.SessionDescription{
		Origin: sdp.Origin{
			Username:       "-",
			SessionID:      id,
			SessionVersion: version,
			NetworkType:    "IN",
			AddressType:    addrType,
			UnicastAddress: ip.String(),
		},
		SessionName: "-",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN",
			AddressType: addrType,
			Address:     &sdp.Address{Address: ip.String()},
		},
		TimeDescriptions:  []sdp.TimeDescription{{Timing: sdp.Timing{}}},
		MediaDescriptions: mlines,
	}
	b, err := s.Marshal()
	if err != nil {
		return nil, fmt.Errorf("rtp: marshal SDP: %w", err)
	}
	return b, nil
}
