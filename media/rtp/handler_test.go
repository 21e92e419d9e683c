package rtp

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	prtp "github.com/pion/rtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sipua/sip/media"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var loopback = net.IPv4(127, 0, 0, 1)

// newHandler returns a handler on 127.0.0.1, closed when the test ends.
func newHandler(t *testing.T, cfg Config) *Handler {
	t.Helper()
	if cfg.IP == nil {
		cfg.IP = loopback
	}
	h, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, h.Close()) })
	return h
}

var ctx = context.Background()

// exchange runs one offer/answer: offerer's offer to answerer, and back.
func exchange(t *testing.T, offerer, answerer *Handler, offerOpts, answerOpts media.Options) (offer, answer string) {
	t.Helper()
	o, err := offerer.GetDescription(ctx, offerOpts)
	require.NoError(t, err)
	require.Equal(t, "application/sdp", o.ContentType)
	require.NoError(t, answerer.SetDescription(ctx, o, answerOpts))
	a, err := answerer.GetDescription(ctx, answerOpts)
	require.NoError(t, err)
	require.NoError(t, offerer.SetDescription(ctx, a, offerOpts))
	return string(o.Body), string(a.Body)
}

// sdpDesc wraps an SDP text, with CRLF line ends, as a description.
func sdpDesc(lines ...string) media.Description {
	return media.Description{ContentType: "application/sdp", Body: []byte(strings.Join(lines, "\r\n") + "\r\n")}
}

// audioMeter counts the audio OnAudio hands over and how much of it is
// not silence.
type audioMeter struct {
	mu     sync.Mutex
	frames int
	loud   int
}

func (m *audioMeter) attach(h *Handler) {
	h.OnAudio(func(pcm []int16) {
		var sum float64
		for _, s := range pcm {
			sum += float64(s) * float64(s)
		}
		m.mu.Lock()
		m.frames++
		if len(pcm) > 0 && math.Sqrt(sum/float64(len(pcm))) > 1000 {
			m.loud++
		}
		m.mu.Unlock()
	})
}

func (m *audioMeter) counts() (frames, loud int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.frames, m.loud
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAudioBothWays: two handlers on 127.0.0.1 negotiate PCMU and each
// receives the other's tone, decoded, through its jitter buffer.
func TestAudioBothWays(t *testing.T) {
	alice, bob := newHandler(t, Config{}), newHandler(t, Config{})
	alice.SetAudioSource(Tone(440))
	bob.SetAudioSource(Tone(1000))
	var ma, mb audioMeter
	ma.attach(alice)
	mb.attach(bob)
	offer, answer := exchange(t, alice, bob, media.Options{}, media.Options{})
	assert.Contains(t, offer, fmt.Sprintf("m=audio %d RTP/AVP 0 8 101\r\n", alice.LocalAddr().Port()))
	assert.Contains(t, answer, fmt.Sprintf("m=audio %d RTP/AVP 0 8 101\r\n", bob.LocalAddr().Port()))

	waitFor(t, 3*time.Second, "25 packets each way", func() bool {
		return alice.Stats().PacketsReceived >= 25 && bob.Stats().PacketsReceived >= 25
	})
	waitFor(t, 2*time.Second, "decoded audio each way", func() bool {
		_, la := ma.counts()
		_, lb := mb.counts()
		return la >= 10 && lb >= 10
	})
	for name, h := range map[string]*Handler{"alice": alice, "bob": bob} {
		s := h.Stats()
		t.Logf("%s: sent %d packets (%d bytes), received %d (%d bytes), lost %d, jitter %v, discarded %d",
			name, s.PacketsSent, s.BytesSent, s.PacketsReceived, s.BytesReceived, s.PacketsLost, s.Jitter, s.PacketsDiscarded)
		assert.Equal(t, SendRecv, s.Direction, name)
		assert.Equal(t, PCMU, s.Codec, name)
		assert.True(t, s.DTMF, name)
		assert.Equal(t, 20*time.Millisecond, s.Ptime, name)
		assert.True(t, s.Latched, name)
		assert.Equal(t, 160*s.PacketsReceived, s.BytesReceived, "%s: 20 ms G.711 payloads", name)
		assert.Zero(t, s.PacketsLost, name)
		assert.Less(t, s.Jitter, 20*time.Millisecond, name)
	}
	assert.Equal(t, bob.LocalAddr(), alice.Stats().RemoteAddr)
	assert.Equal(t, alice.LocalAddr(), bob.Stats().RemoteAddr)
	fa, _ := ma.counts()
	fb, _ := mb.counts()
	t.Logf("OnAudio frames: alice %d, bob %d", fa, fb)
}

// TestOfferSDP: the offer's lines, and the o= version rule: unchanged
// when the SDP is, incremented when it changes (RFC 3264 §8).
func TestOfferSDP(t *testing.T) {
	h := newHandler(t, Config{})
	d, err := h.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	port := h.LocalAddr().Port()
	assert.Zero(t, port%2, "RTP on an even port")
	body := string(d.Body)
	for _, l := range []string{
		"v=0",
		"s=-",
		"c=IN IP4 127.0.0.1",
		"t=0 0",
		fmt.Sprintf("m=audio %d RTP/AVP 0 8 101", port),
		"a=rtpmap:0 PCMU/8000",
		"a=rtpmap:8 PCMA/8000",
		"a=rtpmap:101 telephone-event/8000",
		"a=fmtp:101 0-15",
		"a=ptime:20",
		"a=sendrecv",
	} {
		assert.Contains(t, body, l+"\r\n")
	}
	assert.Regexp(t, `o=- \d+ 0 IN IP4 127\.0\.0\.1`, body)

	// The same offer again, before any answer (an INVITE resent with
	// credentials): byte for byte.
	d2, err := h.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	assert.Equal(t, body, string(d2.Body))

	// The RTCP port is taken too.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback, Port: int(port) + 1})
	if err == nil {
		c.Close()
	}
	assert.Error(t, err, "RTCP port bound")
}

// TestAnswerSDP: an answer takes the first usable audio m-line, rejects
// the others with port 0, lists the shared codecs in our order with the
// offer's payload numbers, and takes telephone-event's number from the
// offer; the peer's a=ptime sets what is sent.
func TestAnswerSDP(t *testing.T) {
	h := newHandler(t, Config{})
	require.NoError(t, h.SetDescription(ctx, sdpDesc(
		"v=0",
		"o=peer 1 1 IN IP4 127.0.0.1",
		"s=call",
		"c=IN IP4 127.0.0.1",
		"t=0 0",
		"m=video 40000 RTP/AVP 96",
		"a=rtpmap:96 VP8/90000",
		"m=audio 40002 RTP/SAVP 0",
		"m=audio 40004 RTP/AVP 9 97 8 118",
		"a=rtpmap:9 G722/8000",
		"a=rtpmap:97 PCMU/8000",
		"a=rtpmap:118 telephone-event/8000",
		"a=fmtp:118 0-16",
		"a=ptime:30",
		"a=sendrecv",
	), media.Options{}))
	d, err := h.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	body := string(d.Body)
	assert.Contains(t, body, "m=video 0 RTP/AVP 96\r\n")
	assert.Contains(t, body, "m=audio 0 RTP/SAVP 0\r\n")
	assert.Contains(t, body, fmt.Sprintf("m=audio %d RTP/AVP 97 8 118\r\n", h.LocalAddr().Port()))
	assert.Contains(t, body, "a=rtpmap:97 PCMU/8000\r\n")
	assert.Contains(t, body, "a=rtpmap:118 telephone-event/8000\r\n")
	assert.Equal(t, 3, strings.Count(body, "m="))
	s := h.Stats()
	assert.Equal(t, PCMU, s.Codec)
	assert.Equal(t, uint8(97), s.PayloadType)
	assert.Equal(t, 30*time.Millisecond, s.Ptime)
	assert.Equal(t, SendRecv, s.Direction)
	assert.Equal(t, netip.MustParseAddrPort("127.0.0.1:40004"), s.RemoteAddr)
}

// TestCodecPreference: with Codecs: PCMA only, the offer lists PCMA only
// and an answer takes PCMA from an offer of both.
func TestCodecPreference(t *testing.T) {
	a := newHandler(t, Config{Codecs: []Codec{PCMA}, NoDTMF: true})
	d, err := a.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	assert.Contains(t, string(d.Body), " RTP/AVP 8\r\n")
	assert.NotContains(t, string(d.Body), "telephone-event")

	b := newHandler(t, Config{})
	_, answer := exchange(t, a, b, media.Options{}, media.Options{})
	assert.Contains(t, answer, " RTP/AVP 8\r\n", "nothing else in common")
	assert.Equal(t, PCMA, a.Stats().Codec)
	assert.Equal(t, PCMA, b.Stats().Codec)
	assert.False(t, b.Stats().DTMF)
	assert.ErrorIs(t, a.SendDTMF("1", 0), media.ErrNotSupported)
	assert.ErrorIs(t, b.SendDTMF("1", 0), media.ErrNotSupported)

	// PCMA audio arrives decoded.
	a.SetAudioSource(Tone(600))
	var m audioMeter
	m.attach(b)
	waitFor(t, 3*time.Second, "PCMA audio", func() bool { _, l := m.counts(); return l >= 5 })
}

// TestErrors: what the handler refuses, and how.
func TestErrors(t *testing.T) {
	h := newHandler(t, Config{})
	head := []string{"v=0", "o=peer 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"}
	offer := func(lines ...string) media.Description { return sdpDesc(append(head, lines...)...) }

	err := h.SetDescription(ctx, media.Description{ContentType: "application/json", Body: []byte("{}")}, media.Options{})
	assert.ErrorIs(t, err, media.ErrUnsupportedContent)
	assert.False(t, h.HasDescription("text/plain"))
	assert.True(t, h.HasDescription("application/SDP; charset=utf-8"))

	for name, d := range map[string]media.Description{
		"empty":        {ContentType: "application/sdp"},
		"malformed":    {ContentType: "application/sdp", Body: []byte("hello\r\n")},
		"G.722 only":   offer("m=audio 4000 RTP/AVP 9", "a=rtpmap:9 G722/8000"),
		"SRTP":         offer("m=audio 4000 RTP/SAVP 0 8"),
		"WebRTC":       offer("m=audio 9 UDP/TLS/RTP/SAVPF 0 8"),
		"video only":   offer("m=video 4000 RTP/AVP 96", "a=rtpmap:96 VP8/90000"),
		"rejected":     offer("m=audio 0 RTP/AVP 0"),
		"wideband µ":   offer("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 PCMU/16000"),
		"host name c=": sdpDesc("v=0", "o=peer 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 pbx.example.com", "t=0 0", "m=audio 4000 RTP/AVP 0"),
	} {
		err := h.SetDescription(ctx, d, media.Options{})
		assert.ErrorIs(t, err, media.ErrNotAcceptable, name)
		t.Logf("%s: %v", name, err)
	}

	// An offer refused leaves the handler able to offer.
	d, err := h.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	assert.Contains(t, string(d.Body), "a=sendrecv")

	// An answer rejecting the audio, or with no codec offered.
	err = h.SetDescription(ctx, offer("m=audio 0 RTP/AVP 0"), media.Options{})
	assert.ErrorIs(t, err, media.ErrNotAcceptable)
	_, err = h.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	err = h.SetDescription(ctx, offer("m=audio 4000 RTP/AVP 9"), media.Options{})
	assert.ErrorIs(t, err, media.ErrNotAcceptable)

	// DTMF before any exchange, and bad tones.
	h2 := newHandler(t, Config{})
	assert.ErrorIs(t, h2.SendDTMF("1", 0), media.ErrNotSupported)
	_, err = h2.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	assert.ErrorIs(t, h2.SendDTMF("1", 0), media.ErrNotSupported, "offered, not answered")
	assert.Error(t, h2.SendDTMF("1x", 0))

	// After Close.
	require.NoError(t, h2.Close())
	require.NoError(t, h2.Close(), "twice")
	_, err = h2.GetDescription(ctx, media.Options{})
	assert.ErrorIs(t, err, media.ErrClosed)
	assert.ErrorIs(t, h2.SetDescription(ctx, offer("m=audio 4000 RTP/AVP 0"), media.Options{}), media.ErrClosed)
	assert.ErrorIs(t, h2.SendDTMF("1", 0), media.ErrClosed)

	// Bad configurations.
	for name, cfg := range map[string]Config{
		"codec":       {Codecs: []Codec{18}},
		"SRTP":        {SRTP: 7},
		"SRTP suite":  {SRTPSuites: []SRTPSuite{"F8_128_HMAC_SHA1_80"}},
		"ptime":       {Ptime: 25 * time.Millisecond},
		"ptime big":   {Ptime: 100 * time.Millisecond},
		"ports":       {PortMin: 30000, PortMax: 30000},
		"DTMF PT":     {DTMFPayloadType: 13},
		"jitter":      {JitterDelay: -time.Millisecond},
		"external IP": {ExternalIP: net.IPv4zero},
	} {
		_, err := New(cfg)
		assert.Error(t, err, name)
	}
}

// TestPortRange: the RTP port is the even port of a free pair in the
// range.
func TestPortRange(t *testing.T) {
	// Find a free block of four ports, then take its first pair.
	var base int
	for p := 31000; p < 40000; p += 4 {
		ok := true
		var cs []*net.UDPConn
		for i := range 4 {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback, Port: p + i})
			if err != nil {
				ok = false
				break
			}
			cs = append(cs, c)
		}
		for _, c := range cs {
			c.Close()
		}
		if ok {
			base = p
			break
		}
	}
	require.NotZero(t, base)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback, Port: base + 1})
	require.NoError(t, err)
	defer c.Close()
	h := newHandler(t, Config{PortMin: uint16(base), PortMax: uint16(base + 3)})
	_, err = h.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	assert.Equal(t, uint16(base+2), h.LocalAddr().Port(), "the first pair is taken")

	h2 := newHandler(t, Config{PortMin: uint16(base), PortMax: uint16(base + 3)})
	_, err = h2.GetDescription(ctx, media.Options{})
	assert.Error(t, err, "no pair left")
}

// sending reports whether h's sent-packet count grows by a few packets
// within a second.
func sending(h *Handler) bool {
	n := h.Stats().PacketsSent
	for range 100 {
		if h.Stats().PacketsSent >= n+3 {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// silent reports whether h sends nothing for a few packet intervals
// (after one for a packet in flight).
func silent(h *Handler) bool {
	time.Sleep(40 * time.Millisecond)
	n := h.Stats().PacketsSent
	time.Sleep(150 * time.Millisecond)
	return h.Stats().PacketsSent == n
}

// TestHoldUnhold: hold and unhold by re-offers, each side's direction,
// and who sends (RFC 3264 §8.4, RFC 6337).
func TestHoldUnhold(t *testing.T) {
	alice, bob := newHandler(t, Config{}), newHandler(t, Config{})
	exchange(t, alice, bob, media.Options{}, media.Options{})
	waitFor(t, 2*time.Second, "media", func() bool {
		return alice.Stats().PacketsReceived > 5 && bob.Stats().PacketsReceived > 5
	})

	// Alice holds.
	offer, answer := exchange(t, alice, bob, media.Options{Hold: true}, media.Options{})
	assert.Contains(t, offer, "a=sendonly")
	assert.Contains(t, answer, "a=recvonly")
	assert.Regexp(t, `o=- \d+ 1 `, offer, "version incremented")
	assert.Equal(t, SendOnly, alice.Stats().Direction)
	assert.Equal(t, RecvOnly, bob.Stats().Direction)
	assert.True(t, sending(alice))
	assert.True(t, silent(bob), "bob is on hold")

	// Bob holds too, while held: inactive both ways.
	offer, answer = exchange(t, bob, alice, media.Options{Hold: true}, media.Options{Hold: true})
	assert.Contains(t, offer, "a=inactive")
	assert.Contains(t, answer, "a=inactive")
	assert.Equal(t, Inactive, alice.Stats().Direction)
	assert.Equal(t, Inactive, bob.Stats().Direction)
	assert.True(t, silent(alice))
	assert.True(t, silent(bob))

	// Alice unholds; bob still holds, in his answer: sendonly from him.
	offer, answer = exchange(t, alice, bob, media.Options{}, media.Options{Hold: true})
	assert.Contains(t, offer, "a=sendrecv")
	assert.Contains(t, answer, "a=sendonly")
	assert.Equal(t, RecvOnly, alice.Stats().Direction)
	assert.Equal(t, SendOnly, bob.Stats().Direction)
	assert.True(t, sending(bob))
	assert.True(t, silent(alice))

	// Bob unholds: media both ways again.
	_, answer = exchange(t, bob, alice, media.Options{}, media.Options{})
	assert.Contains(t, answer, "a=sendrecv")
	assert.Equal(t, SendRecv, alice.Stats().Direction)
	assert.Equal(t, SendRecv, bob.Stats().Direction)
	n := alice.Stats().PacketsReceived
	waitFor(t, 2*time.Second, "media after unhold", func() bool {
		return alice.Stats().PacketsReceived > n+5 && sending(alice) && sending(bob)
	})
}

// TestOldStyleHold: an offer with c=0.0.0.0 (RFC 2543) gets no media.
func TestOldStyleHold(t *testing.T) {
	h := newHandler(t, Config{})
	require.NoError(t, h.SetDescription(ctx, sdpDesc(
		"v=0", "o=peer 1 1 IN IP4 0.0.0.0", "s=-", "c=IN IP4 0.0.0.0", "t=0 0",
		"m=audio 4000 RTP/AVP 0", "a=sendrecv"), media.Options{}))
	d, err := h.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	assert.Contains(t, string(d.Body), "a=recvonly")
	assert.True(t, silent(h))
}

// TestRepeatedSDP: the peer's SDP again, same o= version: nothing
// changes, and it is answered when an answer is asked for (a session
// refresh), with our o= version unchanged.
func TestRepeatedSDP(t *testing.T) {
	alice, bob := newHandler(t, Config{}), newHandler(t, Config{})
	offer, answer := exchange(t, alice, bob, media.Options{}, media.Options{})
	require.NoError(t, bob.SetDescription(ctx, media.Description{ContentType: "application/sdp", Body: []byte(offer)}, media.Options{}))
	again, err := bob.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	assert.Equal(t, answer, string(again.Body))
	assert.Equal(t, SendRecv, bob.Stats().Direction)
	// And then bob offers: a real offer, not an answer.
	d, err := bob.GetDescription(ctx, media.Options{Hold: true})
	require.NoError(t, err)
	assert.Contains(t, string(d.Body), "a=sendonly")
}

// TestRefusedReoffer: a re-offer that gets no answer (488, 491) is
// replaced by the next; a remote offer pending unanswered is replaced by
// the next; the media carry on meanwhile.
func TestRefusedReoffer(t *testing.T) {
	alice, bob := newHandler(t, Config{}), newHandler(t, Config{})
	exchange(t, alice, bob, media.Options{}, media.Options{})
	_, err := alice.GetDescription(ctx, media.Options{Hold: true}) // refused
	require.NoError(t, err)
	assert.Equal(t, SendRecv, alice.Stats().Direction, "nothing changes before the answer")
	offer, _ := exchange(t, alice, bob, media.Options{}, media.Options{})
	assert.Contains(t, offer, "a=sendrecv")

	// bob gets an offer that the application never answers, then another.
	d, err := alice.GetDescription(ctx, media.Options{Hold: true})
	require.NoError(t, err)
	require.NoError(t, bob.SetDescription(ctx, d, media.Options{}))
	_, err = alice.GetDescription(ctx, media.Options{}) // alice's re-INVITE failed; a new one
	require.NoError(t, err)
	_, _ = exchange(t, alice, bob, media.Options{}, media.Options{})
	assert.Equal(t, SendRecv, bob.Stats().Direction)
	waitFor(t, 2*time.Second, "media", func() bool { return sending(alice) && sending(bob) })
}

// TestReofferNewAddress: a re-offer answered from another address (the
// call moved to another media endpoint) moves the media there.
func TestReofferNewAddress(t *testing.T) {
	alice, bob, carol := newHandler(t, Config{}), newHandler(t, Config{}), newHandler(t, Config{})
	exchange(t, alice, bob, media.Options{}, media.Options{})
	waitFor(t, 2*time.Second, "media with bob", func() bool {
		return alice.Stats().PacketsReceived > 5 && bob.Stats().PacketsReceived > 5
	})
	exchange(t, alice, carol, media.Options{}, media.Options{})
	require.NoError(t, bob.Close()) // bob's packets stop
	waitFor(t, 2*time.Second, "media with carol", func() bool {
		return carol.Stats().PacketsReceived > 10 && alice.Stats().RemoteAddr == carol.LocalAddr() &&
			alice.Stats().Latched
	})
	n := alice.Stats().PacketsReceived
	waitFor(t, 2*time.Second, "carol's packets at alice", func() bool { return alice.Stats().PacketsReceived > n+10 })
}

// fakePeer is a hand-driven RTP endpoint: its SDP names one socket
// (sdpConn) while it may send from another.
type fakePeer struct {
	sdpConn, other *net.UDPConn
}

func newFakePeer(t *testing.T) *fakePeer {
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	return &fakePeer{sdpConn: listen(), other: listen()}
}

func (f *fakePeer) offer() media.Description {
	port := f.sdpConn.LocalAddr().(*net.UDPAddr).Port
	return sdpDesc("v=0", "o=phone 7 7 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
		fmt.Sprintf("m=audio %d RTP/AVP 0 101", port), "a=rtpmap:101 telephone-event/8000", "a=sendrecv")
}

// read returns the next RTP packet arriving at c, or fails.
func read(t *testing.T, c *net.UDPConn) *prtp.Packet {
	t.Helper()
	buf := make([]byte, 1500)
	for {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
		n, _, err := c.ReadFromUDP(buf)
		require.NoError(t, err)
		if isRTCP(buf[:n]) {
			continue
		}
		var p prtp.Packet
		require.NoError(t, p.Unmarshal(buf[:n]))
		return &p
	}
}

func send(t *testing.T, from *net.UDPConn, to netip.AddrPort, seq uint16, pt uint8, payload []byte) {
	t.Helper()
	p := prtp.Packet{Header: prtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq,
		Timestamp: uint32(seq) * 160, SSRC: 0x1234}, Payload: payload}
	b, err := p.Marshal()
	require.NoError(t, err)
	_, err = from.WriteToUDPAddrPort(b, to)
	require.NoError(t, err)
}

// TestLatching: the handler sends to the SDP's address until the peer's
// packets come from elsewhere (a phone behind NAT), then to their
// source; packets from a third address are then discarded, until the
// source latched has been silent for a second.
func TestLatching(t *testing.T) {
	h := newHandler(t, Config{})
	f := newFakePeer(t)
	require.NoError(t, h.SetDescription(ctx, f.offer(), media.Options{}))
	_, err := h.GetDescription(ctx, media.Options{})
	require.NoError(t, err)

	p := read(t, f.sdpConn)
	assert.Equal(t, uint8(0), p.PayloadType)
	assert.Len(t, p.Payload, 160)
	assert.False(t, h.Stats().Latched)

	for seq := range uint16(3) {
		send(t, f.other, h.LocalAddr(), seq, 0, make([]byte, 160))
	}
	waitFor(t, 2*time.Second, "latching", func() bool { return h.Stats().Latched })
	assert.Equal(t, f.other.LocalAddr().(*net.UDPAddr).AddrPort(), h.Stats().RemoteAddr)
	p = read(t, f.other)
	assert.Equal(t, uint8(0), p.PayloadType)

	third := newFakePeer(t)
	before := h.Stats()
	send(t, third.sdpConn, h.LocalAddr(), 100, 0, make([]byte, 160))
	waitFor(t, 2*time.Second, "the stray packet discarded", func() bool {
		return h.Stats().PacketsDiscarded > before.PacketsDiscarded
	})
	assert.Equal(t, before.PacketsReceived, h.Stats().PacketsReceived)
	assert.Equal(t, before.RemoteAddr, h.Stats().RemoteAddr)

	// The latched source falls silent (its NAT binding changed): the
	// new one takes over.
	time.Sleep(relatchAfter + 50*time.Millisecond)
	send(t, third.sdpConn, h.LocalAddr(), 101, 0, make([]byte, 160))
	waitFor(t, 2*time.Second, "latching anew", func() bool {
		return h.Stats().RemoteAddr == third.sdpConn.LocalAddr().(*net.UDPAddr).AddrPort()
	})
	read(t, third.sdpConn)
}

// toneLog collects OnDTMF reports.
type toneLog struct {
	mu    sync.Mutex
	tones []rune
	durs  []time.Duration
}

func (l *toneLog) attach(h *Handler) {
	h.OnDTMF(func(c rune, d time.Duration) {
		l.mu.Lock()
		l.tones = append(l.tones, c)
		l.durs = append(l.durs, d)
		l.mu.Unlock()
	})
}

func (l *toneLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.tones)
}

// TestDTMFBothWays: RFC 4733 tones each way, reported once each with
// their duration; the packets on the wire follow RFC 4733 §2.5.
func TestDTMFBothWays(t *testing.T) {
	alice, bob := newHandler(t, Config{}), newHandler(t, Config{})
	var la, lb toneLog
	la.attach(alice)
	lb.attach(bob)
	var mu sync.Mutex
	var events []*prtp.Packet
	bob.OnRTP(func(p *prtp.Packet) {
		if p.PayloadType == 101 {
			mu.Lock()
			events = append(events, p)
			mu.Unlock()
		}
	})
	exchange(t, alice, bob, media.Options{}, media.Options{})
	require.NoError(t, alice.SendDTMF("1#9", 60*time.Millisecond))
	require.NoError(t, bob.SendDTMF("*0D", 0))
	waitFor(t, 5*time.Second, "the tones", func() bool { return lb.String() == "1#9" && la.String() == "*0D" })
	assert.Equal(t, []time.Duration{60 * time.Millisecond, 60 * time.Millisecond, 60 * time.Millisecond}, lb.durs)
	assert.Equal(t, []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}, la.durs)
	assert.Equal(t, uint64(3), alice.Stats().DTMFSent)
	assert.Equal(t, uint64(3), alice.Stats().DTMFReceived)
	assert.Equal(t, uint64(3), bob.Stats().DTMFReceived)

	// The wire: per event, one timestamp, marker on the first packet
	// only, growing durations, three end packets, consecutive sequence
	// numbers.
	mu.Lock()
	defer mu.Unlock()
	byTS := map[uint32][]*prtp.Packet{}
	var order []uint32
	for _, p := range events {
		if _, ok := byTS[p.Timestamp]; !ok {
			order = append(order, p.Timestamp)
		}
		byTS[p.Timestamp] = append(byTS[p.Timestamp], p)
	}
	require.Len(t, order, 3)
	for i, ts := range order {
		ps := byTS[ts]
		var durs []uint16
		ends := 0
		for j, p := range ps {
			assert.Equal(t, j == 0, p.Marker, "event %d packet %d marker", i, j)
			assert.Equal(t, []byte{1, 11, 9}[i], p.Payload[0])
			if j > 0 {
				assert.Equal(t, ps[j-1].SequenceNumber+1, p.SequenceNumber)
			}
			durs = append(durs, binary.BigEndian.Uint16(p.Payload[2:]))
			if p.Payload[1]&0x80 != 0 {
				ends++
			}
		}
		assert.Equal(t, []uint16{160, 320, 480, 480, 480}, durs, "event %d: 60 ms at 20 ms a packet", i)
		assert.Equal(t, 3, ends)
	}
}

// TestDTMFWaitsOnHold: tones queued while on hold go out at unhold.
func TestDTMFWaitsOnHold(t *testing.T) {
	alice, bob := newHandler(t, Config{}), newHandler(t, Config{})
	var lb toneLog
	lb.attach(bob)
	exchange(t, bob, alice, media.Options{Hold: true}, media.Options{}) // alice receives only
	require.NoError(t, alice.SendDTMF("5", 0))
	time.Sleep(200 * time.Millisecond)
	assert.Empty(t, lb.String())
	exchange(t, bob, alice, media.Options{}, media.Options{})
	waitFor(t, 2*time.Second, "the tone", func() bool { return lb.String() == "5" })
}

// TestRTCP: reports flow both ways on the next port, with a round-trip
// time measured, and a BYE at Close.
func TestRTCP(t *testing.T) {
	alice := newHandler(t, Config{RTCPInterval: 100 * time.Millisecond})
	bob := newHandler(t, Config{RTCPInterval: 100 * time.Millisecond})
	exchange(t, alice, bob, media.Options{}, media.Options{})
	waitFor(t, 3*time.Second, "RTCP both ways", func() bool {
		return alice.Stats().RTCPReceived >= 3 && bob.Stats().RTCPReceived >= 3
	})
	s := alice.Stats()
	t.Logf("alice: RTCP sent %d, received %d, RTT %v; loss %.3f, jitter %v; bob's report: lost %d (%.3f), jitter %v; MOS %.2f",
		s.RTCPSent, s.RTCPReceived, s.RoundTripTime, s.LossRate, s.Jitter, s.RemotePacketsLost, s.RemoteLossRate,
		s.RemoteJitter, s.MOS)
	assert.Greater(t, s.RoundTripTime, time.Duration(0), "an RTT below the resolution still counts as measured")
	assert.Less(t, s.RoundTripTime, 100*time.Millisecond)
	assert.True(t, s.RemoteReport)
	assert.Zero(t, s.RemotePacketsLost)
	assert.Less(t, s.RemoteJitter, 20*time.Millisecond)
	assert.Greater(t, s.MOS, 4.2)
	assert.LessOrEqual(t, s.MOS, 4.5)

	// A BYE at Close.
	n := bob.Stats().RTCPReceived
	require.NoError(t, alice.Close())
	waitFor(t, time.Second, "the BYE", func() bool { return bob.Stats().RTCPReceived > n })
}

// TestNoRTCP: a negative interval sends no RTCP (but the BYE).
func TestNoRTCP(t *testing.T) {
	alice := newHandler(t, Config{RTCPInterval: -1})
	bob := newHandler(t, Config{RTCPInterval: -1})
	exchange(t, alice, bob, media.Options{}, media.Options{})
	time.Sleep(300 * time.Millisecond)
	assert.Zero(t, alice.Stats().RTCPSent)
	assert.Zero(t, bob.Stats().RTCPReceived)
}

// TestJitterBufferPlayout: packets sent out of order by a fake peer come
// out of OnAudio in order.
func TestJitterBufferPlayout(t *testing.T) {
	h := newHandler(t, Config{JitterDelay: 100 * time.Millisecond})
	f := newFakePeer(t)
	var mu sync.Mutex
	var got []int16
	h.OnAudio(func(pcm []int16) {
		mu.Lock()
		if len(pcm) > 0 && pcm[0] != 0 {
			got = append(got, pcm[0])
		}
		mu.Unlock()
	})
	require.NoError(t, h.SetDescription(ctx, f.offer(), media.Options{}))
	_, err := h.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	// Packet i carries µ-law code 0x80+i: a distinct positive level each.
	frame := func(i int) []byte {
		b := make([]byte, 160)
		for k := range b {
			b[k] = byte(0x80 + i)
		}
		return b
	}
	for _, i := range []int{1, 3, 2, 5, 4, 6} {
		send(t, f.sdpConn, h.LocalAddr(), uint16(i), 0, frame(i))
	}
	waitFor(t, 2*time.Second, "six frames played", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 6 })
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < 6; i++ {
		assert.Greater(t, got[i-1], got[i], "in sequence order: levels fall as the code rises")
	}
}

// TestFactory: the factory runs Setup with each handler.
func TestFactory(t *testing.T) {
	var seen []media.SessionInfo
	f := NewFactory(Config{IP: loopback, Setup: func(h *Handler, info media.SessionInfo) {
		h.SetAudioSource(Tone(300))
		seen = append(seen, info)
	}})
	h, err := f(media.SessionInfo{ID: "abc", Incoming: true})
	require.NoError(t, err)
	defer h.Close()
	assert.Equal(t, []media.SessionInfo{{ID: "abc", Incoming: true}}, seen)
	_, err = NewFactory(Config{Ptime: time.Second})(media.SessionInfo{})
	assert.Error(t, err)
}

// TestDefaultIP: the zero Config names a usable address.
func TestDefaultIP(t *testing.T) {
	h, err := New(Config{})
	require.NoError(t, err)
	defer h.Close()
	assert.True(t, h.set.sdpIP.Is4())
	assert.False(t, h.set.sdpIP.IsUnspecified())
	d, err := h.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	assert.Contains(t, string(d.Body), "c=IN IP4 "+h.set.sdpIP.String())

	w, err := New(Config{IP: net.IPv4zero, ExternalIP: net.IPv4(192, 0, 2, 7)})
	require.NoError(t, err)
	defer w.Close()
	d, err = w.GetDescription(ctx, media.Options{})
	require.NoError(t, err)
	assert.Contains(t, string(d.Body), "c=IN IP4 192.0.2.7")
	assert.True(t, w.LocalAddr().Addr().IsUnspecified())
}

// TestIPv6: the same on ::1 (skipped where the host has no IPv6
// loopback).
func TestIPv6(t *testing.T) {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	c.Close()
	alice := newHandler(t, Config{IP: net.IPv6loopback})
	bob := newHandler(t, Config{IP: net.IPv6loopback})
	offer, _ := exchange(t, alice, bob, media.Options{}, media.Options{})
	assert.Contains(t, offer, "c=IN IP6 ::1\r\n")
	waitFor(t, 3*time.Second, "packets each way", func() bool {
		return alice.Stats().PacketsReceived >= 5 && bob.Stats().PacketsReceived >= 5
	})
}

// TestReplaceAnswer: another answer to the same offer (a fork's, or a 2xx
// answering differently than the 183) moves the media to its address.
func TestReplaceAnswer(t *testing.T) {
	ctx := context.Background()
	a := newHandler(t, Config{IP: net.IPv4(127, 0, 0, 1)})
	b := newHandler(t, Config{IP: net.IPv4(127, 0, 0, 1)})
	c := newHandler(t, Config{IP: net.IPv4(127, 0, 0, 1)})
	offer, err := a.GetDescription(ctx, media.Options{})
	if err != nil {
		t.Fatal(err)
	}
	answerFrom := func(h *Handler) media.Description {
		t.Helper()
		if err := h.SetDescription(ctx, offer, media.Options{}); err != nil {
			t.Fatal(err)
		}
		d, err := h.GetDescription(ctx, media.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	ab, ac := answerFrom(b), answerFrom(c)
	if err := a.SetDescription(ctx, ab, media.Options{}); err != nil {
		t.Fatal(err)
	}
	if got := a.Stats().RemoteAddr; got != b.LocalAddr() {
		t.Fatalf("media go to %v, want b at %v", got, b.LocalAddr())
	}
	if err := a.ReplaceAnswer(ctx, ac, media.Options{}); err != nil {
		t.Fatal(err)
	}
	if got := a.Stats().RemoteAddr; got != c.LocalAddr() {
		t.Fatalf("after ReplaceAnswer media go to %v, want c at %v", got, c.LocalAddr())
	}
	// b answered an offer of a's; b has no offer of its own to replace.
	if err := b.ReplaceAnswer(ctx, ac, media.Options{}); !strings.Contains(fmt.Sprint(err), "no offer of ours") {
		t.Fatalf("ReplaceAnswer without an offer of ours: %v", err)
	}
}
