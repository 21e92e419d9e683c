package webrtc

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	pion "github.com/pion/webrtc/v4"

	"github.com/sipua/sip/media"
)

// dir is a media direction (RFC 3264 §5.1) as two bits, from the point of
// view of the side whose SDP carries it.
type dir uint8

const (
	dirSend dir = 1 << iota
	dirRecv

	dirInactive dir = 0
	dirSendRecv     = dirSend | dirRecv
)

// reverse turns the peer's direction into ours: their sendonly is our
// recvonly.
func (d dir) reverse() dir {
	var r dir
	if d&dirSend != 0 {
		r |= dirRecv
	}
	if d&dirRecv != 0 {
		r |= dirSend
	}
	return r
}

// String returns the SDP attribute name.
func (d dir) String() string {
	switch d {
	case dirSendRecv:
		return "sendrecv"
	case dirSend:
		return "sendonly"
	case dirRecv:
		return "recvonly"
	default:
		return "inactive"
	}
}

func (d dir) pion() pion.RTPTransceiverDirection {
	return pion.NewRTPTransceiverDirection(d.String())
}

func parseDirAttr(key string) (dir, bool) {
	switch key {
	case "sendrecv":
		return dirSendRecv, true
	case "sendonly":
		return dirSend, true
	case "recvonly":
		return dirRecv, true
	case "inactive":
		return dirInactive, true
	}
	return 0, false
}

// mediaDir returns the direction of one m-line: its own attribute, else
// the session's, else sendrecv (RFC 3264 §5.1). A rejected m-line (port
// 0) is inactive.
func mediaDir(s *sdp.SessionDescription, md *sdp.MediaDescription) dir {
	if md.MediaName.Port.Value == 0 {
		return dirInactive
	}
	for _, a := range md.Attributes {
		if d, ok := parseDirAttr(a.Key); ok {
			return d
		}
	}
	for _, a := range s.Attributes {
		if d, ok := parseDirAttr(a.Key); ok {
			return d
		}
	}
	return dirSendRecv
}

// setMediaDir replaces the direction attribute of md by d, in place.
func setMediaDir(md *sdp.MediaDescription, d dir) {
	out := md.Attributes[:0]
	done := false
	for _, a := range md.Attributes {
		if _, ok := parseDirAttr(a.Key); ok {
			if !done {
				out = append(out, sdp.NewPropertyAttribute(d.String()))
				done = true
			}
			continue
		}
		out = append(out, a)
	}
	if !done {
		out = append(out, sdp.NewPropertyAttribute(d.String()))
	}
	md.Attributes = out
}

// removeDirAttrs drops the direction attributes of a list.
func removeDirAttrs(attrs []sdp.Attribute) []sdp.Attribute {
	out := attrs[:0]
	for _, a := range attrs {
		if _, ok := parseDirAttr(a.Key); !ok {
			out = append(out, a)
		}
	}
	return out
}

// mid returns the a=mid of an m-line, or its index when it has none.
func mid(md *sdp.MediaDescription, i int) string {
	if v, ok := md.Attribute("mid"); ok {
		return v
	}
	return strconv.Itoa(i)
}

// isRTPMedia reports an m-line this handler negotiates (audio or video).
func isRTPMedia(md *sdp.MediaDescription) bool {
	return md.MediaName.Media == "audio" || md.MediaName.Media == "video"
}

func parseSDP(body []byte) (*sdp.SessionDescription, error) {
	var s sdp.SessionDescription
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty session description", media.ErrNotAcceptable)
	}
	if err := s.Unmarshal(body); err != nil {
		return nil, fmt.Errorf("%w: malformed SDP: %w", media.ErrNotAcceptable, err)
	}
	return &s, nil
}

// forPion returns the remote description as pion is given it: every
// active m-line sendrecv. The handler keeps the real directions and
// computes the answer's itself (RFC 3264 §6.1), because pion applies
// them as a browser does: an inactive re-offer stops a transceiver for
// good, so a call could never come back from hold.
func forPion(body []byte) (string, error) {
	s, err := parseSDP(body)
	if err != nil {
		return "", err
	}
	s.Attributes = removeDirAttrs(s.Attributes)
	for _, md := range s.MediaDescriptions {
		if md.MediaName.Port.Value == 0 || !isRTPMedia(md) {
			continue
		}
		setMediaDir(md, dirSendRecv)
	}
	out, err := s.Marshal()
	if err != nil {
		return "", fmt.Errorf("webrtc: remarshal remote SDP: %w", err)
	}
	return string(out), nil
}

// isOffer reports an SDP that can only be an offer: DTLS role actpass,
// which an answer never has (RFC 5763 §5).
func isOffer(s *sdp.SessionDescription) bool {
	if v, ok := s.Attribute("setup"); ok && v == "actpass" {
		return true
	}
	for _, md := range s.MediaDescriptions {
		if v, ok := md.Attribute("setup"); ok && v == "actpass" {
			return true
		}
	}
	return false
}

// codec is an RTP payload format named in an m-line.
type codec struct {
	pt    string
	name  string // lower case, e.g. "pcmu"
	clock int
}

// codecs lists the formats of an m-line in order, naming the static
// payload types 0 and 8 that may come without a=rtpmap.
func codecs(md *sdp.MediaDescription) []codec {
	maps := map[string]codec{}
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, enc, ok := strings.Cut(a.Value, " ")
		if !ok {
			continue
		}
		parts := strings.Split(strings.TrimSpace(enc), "/")
		c := codec{pt: pt, name: strings.ToLower(parts[0])}
		if len(parts) > 1 {
			c.clock, _ = strconv.Atoi(parts[1])
		}
		maps[pt] = c
	}
	out := make([]codec, 0, len(md.MediaName.Formats))
	for _, f := range md.MediaName.Formats {
		if c, ok := maps[f]; ok {
			out = append(out, c)
			continue
		}
		switch f {
		case "0":
			out = append(out, codec{pt: f, name: "pcmu", clock: 8000})
		case "8":
			out = append(out, codec{pt: f, name: "pcma", clock: 8000})
		default:
			out = append(out, codec{pt: f})
		}
	}
	return out
}

// acceptable reports whether this handler can take c on an m-line of
// the given kind.
func acceptable(kind string, c codec) bool {
	switch kind {
	case "audio":
		return (c.name == "pcmu" || c.name == "pcma") && c.clock == 8000 ||
			c.name == "opus" && c.clock == 48000
	case "video":
		return (c.name == "vp8" || c.name == "h264") && c.clock == 90000
	}
	return false
}

// sendCodec returns the codec this handler sends on an audio m-line:
// the first of order (lower-case names, the handler's preference) that it
// can encode (PCMU, PCMA) and the m-line has, else the first acceptable
// one, which it can only receive. ok is false when the m-line has no
// acceptable codec.
func sendCodec(md *sdp.MediaDescription, order []string) (name string, encodable, ok bool) {
	cs := codecs(md)
	for _, want := range order {
		if want != "pcmu" && want != "pcma" {
			continue
		}
		for _, c := range cs {
			if c.name == want && c.clock == 8000 {
				return "audio/" + strings.ToUpper(want), true, true
			}
		}
	}
	for _, c := range cs {
		if acceptable("audio", c) {
			return "audio/" + c.name, false, true
		}
	}
	return "", false, false
}

// preferCodecs orders the formats of an answer's m-line by order
// (lower-case codec names, the handler's preference; RFC 3264 §6.1: the
// answer's order is the answerer's preference), the others after them in
// their order, so that the peer sends what this handler prefers (by
// default G.711, which it decodes).
func preferCodecs(md *sdp.MediaDescription, order []string) {
	names := map[string]string{}
	for _, c := range codecs(md) {
		names[c.pt] = c.name
	}
	var first, rest []string
	for _, want := range order {
		for _, f := range md.MediaName.Formats {
			if names[f] == want {
				first = append(first, f)
			}
		}
	}
	for _, f := range md.MediaName.Formats {
		if !slices.Contains(order, names[f]) {
			rest = append(rest, f)
		}
	}
	md.MediaName.Formats = append(first, rest...)
}

// secureProfile reports an RTP profile pion can run: DTLS-SRTP over UDP
// or TCP (RFC 5764, RFC 8842).
func secureProfile(protos []string) bool {
	p := strings.ToUpper(strings.Join(protos, "/"))
	return strings.HasSuffix(p, "RTP/SAVPF") || strings.HasSuffix(p, "RTP/SAVP")
}

// checkOffer returns an error wrapping media.ErrNotAcceptable unless the
// offer has an active m-line of a wanted kind, in a DTLS-SRTP profile,
// with a codec this handler takes.
func checkOffer(s *sdp.SessionDescription, audio, video bool) error {
	var why []string
	for _, md := range s.MediaDescriptions {
		kind := md.MediaName.Media
		if md.MediaName.Port.Value == 0 || !isRTPMedia(md) {
			continue
		}
		if kind == "audio" && !audio || kind == "video" && !video {
			why = append(why, "m="+kind+" not wanted")
			continue
		}
		if !secureProfile(md.MediaName.Protos) {
			why = append(why, fmt.Sprintf("m=%s profile %s is not DTLS-SRTP",
				kind, strings.Join(md.MediaName.Protos, "/")))
			continue
		}
		for _, c := range codecs(md) {
			if acceptable(kind, c) {
				return nil
			}
		}
		why = append(why, "no supported codec in m="+kind)
	}
	if len(why) == 0 {
		why = append(why, "no audio or video")
	}
	return fmt.Errorf("%w: %s", media.ErrNotAcceptable, strings.Join(why, "; "))
}

// removeFromBundle drops the given mids from the session's BUNDLE group
// (a rejected m-line is in no bundle, RFC 8843 §7.3.3).
func removeFromBundle(s *sdp.SessionDescription, mids []string) {
	if len(mids) == 0 {
		return
	}
	drop := map[string]bool{}
	for _, m := range mids {
		drop[m] = true
	}
	for i, a := range s.Attributes {
		if a.Key != "group" {
			continue
		}
		f := strings.Fields(a.Value)
		if len(f) == 0 || f[0] != "BUNDLE" {
			continue
		}
		out := f[:1]
		for _, m := range f[1:] {
			if !drop[m] {
				out = append(out, m)
			}
		}
		s.Attributes[i].Value = strings.Join(out, " ")
	}
}
