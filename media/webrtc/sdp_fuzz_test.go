package webrtc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/sipua/sip/media"
)

// fuzzSDPSeeds are remote SDPs of the kinds a WebRTC peer sends, and some
// it should not.
var fuzzSDPSeeds = []string{
	"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 101\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n" +
		"a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n" +
		"a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n" +
		"a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
	"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n" +
		"a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n" +
		"a=setup:active\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=inactive\r\n",
	"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\nc=IN IP4 127.0.0.1\r\n",
	"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=setup:actpass\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n",
	"v=0\r\n",
}

// FuzzSDP feeds an arbitrary remote SDP to a loopback-only Handler, as an
// offer to answer and as the answer to its offer: SetDescription returns
// nil or an error (an unusable offer: one wrapping media.ErrNotAcceptable),
// GetDescription returns an error or an SDP that parses, nothing panics
// or hangs, and Close releases everything (TestMain's goleak checks the
// goroutines).
func FuzzSDP(f *testing.F) {
	for _, s := range fuzzSDPSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<14 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d := media.Description{ContentType: "application/sdp", Body: in}
		opts := media.Options{GatheringTimeout: time.Second}
		valid := func(what string, desc media.Description) *sdp.SessionDescription {
			var s sdp.SessionDescription
			if err := s.Unmarshal(desc.Body); err != nil {
				t.Fatalf("%s does not parse: %v\n%s", what, err, desc.Body)
			}
			if len(s.MediaDescriptions) == 0 {
				t.Fatalf("%s has no m-line\n%s", what, desc.Body)
			}
			return &s
		}
		newH := func() *Handler {
			h, err := New(Config{LoopbackOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			return h
		}

		// As an offer.
		h := newH()
		err := h.SetDescription(ctx, d, opts)
		s, perr := parseSDP(in)
		if err != nil && perr != nil && !errors.Is(err, media.ErrNotAcceptable) {
			t.Fatalf("malformed SDP: %v does not wrap ErrNotAcceptable", err)
		}
		if err == nil {
			if perr != nil {
				t.Fatalf("SetDescription took what parseSDP refuses: %v", perr)
			}
			a, err := h.GetDescription(ctx, opts)
			if err == nil {
				ans := valid("answer", a)
				if isOffer(s) && len(ans.MediaDescriptions) != len(s.MediaDescriptions) {
					t.Fatalf("answer has %d m-lines, the offer %d\n%s", len(ans.MediaDescriptions), len(s.MediaDescriptions), a.Body)
				}
			}
		}
		if err := h.Close(); err != nil {
			t.Logf("Close: %v", err)
		}

		// As the answer to our offer, then a re-offer.
		h = newH()
		o, err := h.GetDescription(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		valid("offer", o)
		_ = h.SetDescription(ctx, d, opts)
		if o, err := h.GetDescription(ctx, media.Options{Hold: true, GatheringTimeout: time.Second}); err == nil {
			valid("re-offer", o)
		}
		if err := h.Close(); err != nil {
			t.Logf("Close: %v", err)
		}
	})
}
