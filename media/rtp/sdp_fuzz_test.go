package rtp

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/sipua/sip/media"
)

// fuzzSDPSeeds are remote SDPs of the kinds met in the field.
var fuzzSDPSeeds = []string{
	"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:30\r\na=sendrecv\r\n",
	"v=0\r\no=bob 2 3 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:96 H264/90000\r\nm=audio 4002 RTP/AVP 8\r\nc=IN IP4 127.0.0.1\r\na=rtcp:4009 IN IP4 127.0.0.2\r\na=recvonly\r\n",
	"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=inactive\r\nm=audio 4000 RTP/AVP 0\r\n",
	"v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18 0 96\r\na=rtpmap:96 PCMU/8000/1\r\na=rtpmap:0 PCMA/8000\r\n",
	"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=setup:actpass\r\n",
	"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 70000 RTP/AVP 0\r\nc=IN IP4 host.example\r\n",
	"v=0\r\n",
	"",
}

// remoteLocal reports whether every address the handler would send to
// for this SDP is on this host (or none): the fuzzer must not make the
// handler send packets to arbitrary hosts.
func remoteLocal(r *remoteDesc) bool {
	ok := func(a netip.AddrPort) bool {
		return !a.IsValid() || a.Addr().IsLoopback() || a.Addr().IsUnspecified()
	}
	return r == nil || ok(r.addr) && ok(r.rtcp)
}

// checkOurSDP checks an SDP the handler wrote: it parses, has one active
// audio m-line in RTP/AVP with only codecs of ours (plus telephone-event),
// and answers an offer with as many m-lines as it had (RFC 3264 §6).
func checkOurSDP(t *testing.T, body []byte, offer *sdp.SessionDescription) {
	t.Helper()
	var s sdp.SessionDescription
	if err := s.Unmarshal(body); err != nil {
		t.Fatalf("our SDP does not parse: %v\n%s", err, body)
	}
	if offer != nil && len(s.MediaDescriptions) != len(offer.MediaDescriptions) {
		t.Fatalf("answer has %d m-lines, the offer %d\n%s", len(s.MediaDescriptions), len(offer.MediaDescriptions), body)
	}
	active := 0
	for _, md := range s.MediaDescriptions {
		if md.MediaName.Port.Value == 0 {
			continue
		}
		active++
		if md.MediaName.Media != "audio" || strings.Join(md.MediaName.Protos, "/") != "RTP/AVP" {
			t.Fatalf("active m-line %v\n%s", md.MediaName, body)
		}
		fs := formats(md)
		if len(fs) != len(md.MediaName.Formats) {
			t.Fatalf("m-line with formats of no known codec: %v\n%s", md.MediaName.Formats, body)
		}
		if len(fs) == 0 || fs[0].te {
			t.Fatalf("no audio codec in %v\n%s", md.MediaName.Formats, body)
		}
	}
	if active != 1 {
		t.Fatalf("%d active m-lines\n%s", active, body)
	}
	if _, err := parseAnswer(&s, &settings{codecs: []Codec{PCMU, PCMA}, tePT: 101}, SRTPOff); err != nil && offer == nil {
		t.Fatalf("our offer is not usable as an answer to itself: %v\n%s", err, body)
	}
}

// FuzzSDP feeds an arbitrary remote SDP to a Handler, as an offer to
// answer and as the answer to its offer: SetDescription returns nil or an
// error wrapping media.ErrNotAcceptable, GetDescription then returns a
// well-formed SDP (checkOurSDP), nothing panics or hangs, and Close
// releases everything.
func FuzzSDP(f *testing.F) {
	for _, s := range fuzzSDPSeeds {
		f.Add([]byte(s))
	}
	cfg := Config{IP: loopback}
	set, err := cfg.settings()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d := media.Description{ContentType: "application/sdp", Body: in}
		s, perr := parseSDP(in)
		var off, ans *remoteDesc
		if perr == nil {
			off, _ = parseOffer(s, &set, SRTPOffer)
			ans, _ = parseAnswer(s, &set, SRTPOffer)
		}
		if !remoteLocal(off) || !remoteLocal(ans) {
			return
		}
		notAcceptable := func(what string, err error) {
			if err != nil && !errors.Is(err, media.ErrNotAcceptable) {
				t.Fatalf("%s: %v does not wrap ErrNotAcceptable", what, err)
			}
		}

		// As an offer.
		h, err := New(Config{IP: loopback, RTCPInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		err = h.SetDescription(ctx, d, media.Options{})
		notAcceptable("offer", err)
		if (err == nil) != (off != nil) {
			t.Fatalf("SetDescription: %v, but parseOffer found %v", err, off)
		}
		if err == nil {
			a, err := h.GetDescription(ctx, media.Options{})
			if err != nil {
				t.Fatalf("no answer to an accepted offer: %v", err)
			}
			checkOurSDP(t, a.Body, s)
		}
		if err := h.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		// As the answer to our offer, then a re-offer.
		h, err = New(Config{IP: loopback, RTCPInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		o, err := h.GetDescription(ctx, media.Options{})
		if err != nil {
			t.Fatal(err)
		}
		checkOurSDP(t, o.Body, nil)
		notAcceptable("answer", h.SetDescription(ctx, d, media.Options{}))
		o, err = h.GetDescription(ctx, media.Options{Hold: true})
		if err != nil {
			t.Fatalf("re-offer: %v", err)
		}
		checkOurSDP(t, o.Body, nil)
		if err := h.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}
