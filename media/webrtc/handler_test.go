package webrtc

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	pion "github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/sipua/sip/media"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newHandler returns a loopback-only handler closed at the end of the test.
func newHandler(t *testing.T, cfg Config) *Handler {
	t.Helper()
	cfg.LoopbackOnly = true
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// exchange runs one offer/answer from offerer to answerer and returns
// both bodies.
func exchange(t *testing.T, offerer, answerer *Handler, offerOpts, answerOpts media.Options) (offer, answer string) {
	t.Helper()
	ctx := context.Background()
	o, err := offerer.GetDescription(ctx, offerOpts)
	if err != nil {
		t.Fatalf("offer: %v", err)
	}
	if o.ContentType != "application/sdp" {
		t.Fatalf("offer content type %q", o.ContentType)
	}
	if err := answerer.SetDescription(ctx, o, answerOpts); err != nil {
		t.Fatalf("set offer: %v", err)
	}
	a, err := answerer.GetDescription(ctx, answerOpts)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	if err := offerer.SetDescription(ctx, a, offerOpts); err != nil {
		t.Fatalf("set answer: %v", err)
	}
	return string(o.Body), string(a.Body)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// audioDirs returns the direction attributes of the m=audio sections.
func audioDirs(body string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(body, "\r\n") {
		switch {
		case strings.HasPrefix(l, "m="):
			in = strings.HasPrefix(l, "m=audio")
		case in && (l == "a=sendrecv" || l == "a=sendonly" || l == "a=recvonly" || l == "a=inactive"):
			out = append(out, l[2:])
		}
	}
	return out
}

func connected(a, b *Handler) func() bool {
	return func() bool {
		return a.Stats().ConnectionState == pion.PeerConnectionStateConnected &&
			b.Stats().ConnectionState == pion.PeerConnectionStateConnected
	}
}

// received waits until h has received n more audio packets than now.
func receivedMore(t *testing.T, name string, h *Handler, n uint64) {
	t.Helper()
	base := h.Stats().Audio.PacketsReceived
	waitFor(t, name+" receiving audio", 3*time.Second, func() bool {
		return h.Stats().Audio.PacketsReceived >= base+n
	})
}

// notSending checks that h sends no audio for a while.
func notSending(t *testing.T, name string, h *Handler) {
	t.Helper()
	time.Sleep(2 * frameInterval) // a frame already past the gate may still go
	before := h.Stats().Audio.PacketsSent
	time.Sleep(150 * time.Millisecond)
	if after := h.Stats().Audio.PacketsSent; after != before {
		t.Errorf("%s sent %d packets while its direction forbids it", name, after-before)
	}
}

func TestAudioBothWays(t *testing.T) {
	var iceMu sync.Mutex
	var iceStates []pion.ICEConnectionState
	a := newHandler(t, Config{})
	a.OnICEConnectionStateChange(func(s pion.ICEConnectionState) {
		iceMu.Lock()
		iceStates = append(iceStates, s)
		iceMu.Unlock()
	})
	b := newHandler(t, Config{})
	a.SetAudioSource(Tone(440))
	b.SetAudioSource(Tone(660))

	offer, answer := exchange(t, a, b, media.Options{}, media.Options{})
	for name, body := range map[string]string{"offer": offer, "answer": answer} {
		if !strings.Contains(body, "m=audio 9 UDP/TLS/RTP/SAVPF 0 8 111 101") {
			t.Errorf("%s: audio m-line not PCMU, PCMA, opus, telephone-event:\n%s", name, body)
		}
		if strings.Contains(body, "m=video") {
			t.Errorf("%s offers video without the constraint", name)
		}
		if !strings.Contains(body, " 127.0.0.1 ") || strings.Count(body, "typ host") == 0 {
			t.Errorf("%s has no loopback host candidate:\n%s", name, body)
		}
		for _, l := range strings.Split(body, "\r\n") {
			if strings.HasPrefix(l, "a=candidate:") && !strings.Contains(l, " 127.0.0.1 ") {
				t.Errorf("%s: non-loopback candidate %s", name, l)
			}
		}
		if d := audioDirs(body); len(d) != 1 || d[0] != "sendrecv" {
			t.Errorf("%s audio direction %v", name, d)
		}
	}
	waitFor(t, "ICE and DTLS connected", 5*time.Second, connected(a, b))
	receivedMore(t, "a", a, 25)
	receivedMore(t, "b", b, 25)

	for name, h := range map[string]*Handler{"a": a, "b": b} {
		s := h.Stats()
		if s.ICEConnectionState != pion.ICEConnectionStateConnected || s.DTLSState != pion.DTLSTransportStateConnected {
			t.Errorf("%s: ICE %s, DTLS %s", name, s.ICEConnectionState, s.DTLSState)
		}
		if s.SelectedPair == nil || s.SelectedPair.Local.Address != "127.0.0.1" || s.SelectedPair.Remote.Address != "127.0.0.1" {
			t.Errorf("%s: selected pair %v", name, s.SelectedPair)
		}
		if s.Audio.Codec != "audio/PCMU" || s.Audio.Direction != pion.RTPTransceiverDirectionSendrecv {
			t.Errorf("%s: codec %q direction %s", name, s.Audio.Codec, s.Audio.Direction)
		}
		if s.Audio.PacketsSent == 0 || s.Audio.BytesSent != 160*s.Audio.PacketsSent {
			t.Errorf("%s: sent %d packets, %d bytes (want 160 a packet)", name, s.Audio.PacketsSent, s.Audio.BytesSent)
		}
		if s.Audio.BytesReceived != 160*s.Audio.PacketsReceived {
			t.Errorf("%s: received %d packets, %d bytes", name, s.Audio.PacketsReceived, s.Audio.BytesReceived)
		}
		t.Logf("%s: ICE %s DTLS %s pair %s; audio %s %s: sent %d pkts/%d B, received %d pkts/%d B, lost %d, jitter %v",
			name, s.ICEConnectionState, s.DTLSState, s.SelectedPair, s.Audio.Codec, s.Audio.Direction,
			s.Audio.PacketsSent, s.Audio.BytesSent, s.Audio.PacketsReceived, s.Audio.BytesReceived,
			s.Audio.PacketsLost, s.Audio.Jitter)
	}
	iceMu.Lock()
	if len(iceStates) == 0 || iceStates[len(iceStates)-1] != pion.ICEConnectionStateConnected {
		t.Errorf("ICE state callbacks %v", iceStates)
	}
	iceMu.Unlock()

	ctx := context.Background()
	// An unacceptable re-offer is refused and the call goes on.
	bad := strings.Replace(offer, "m=audio 9 UDP/TLS/RTP/SAVPF 0 8 111 101", "m=audio 9 UDP/TLS/RTP/SAVPF 101", 1)
	bad = strings.Replace(bad, "o=- ", "o=- 1", 1)
	if err := b.SetDescription(ctx, media.Description{ContentType: "application/sdp", Body: []byte(bad)}, media.Options{}); !errors.Is(err, media.ErrNotAcceptable) {
		t.Fatalf("re-offer with telephone-event only: %v, want ErrNotAcceptable", err)
	}
	receivedMore(t, "b after refused re-offer", b, 5)
}

func sdpOf(body string) media.Description {
	return media.Description{ContentType: "application/sdp", Body: []byte(body)}
}

func TestRepeatedSDP(t *testing.T) {
	ctx := context.Background()
	a := newHandler(t, Config{})
	b := newHandler(t, Config{})
	a.SetAudioSource(Tone(440))
	b.SetAudioSource(Tone(660))
	_, answer := exchange(t, a, b, media.Options{}, media.Options{})
	waitFor(t, "connected", 5*time.Second, connected(a, b))

	// The answer again (a 183's, then the 200's) changes nothing; the
	// next SDP from the peer (here a hold re-offer) drops it.
	if err := a.SetDescription(ctx, sdpOf(answer), media.Options{}); err != nil {
		t.Fatalf("repeated answer: %v", err)
	}
	offer, hold := exchange(t, b, a, media.Options{Hold: true}, media.Options{})
	if d := audioDirs(offer); len(d) != 1 || d[0] != "sendonly" {
		t.Fatalf("hold offer %v", d)
	}
	if d := audioDirs(hold); len(d) != 1 || d[0] != "recvonly" {
		t.Fatalf("answer to hold %v", d)
	}

	// b answers an unhold; the same SDP again followed by GetDescription
	// is an unchanged re-offer (a session refresh, RFC 3264 §8): a
	// answers it, and media goes on.
	_, answer = exchange(t, a, b, media.Options{}, media.Options{})
	if err := a.SetDescription(ctx, sdpOf(answer), media.Options{}); err != nil {
		t.Fatalf("unchanged re-offer: %v", err)
	}
	refresh, err := a.GetDescription(ctx, media.Options{})
	if err != nil {
		t.Fatal(err)
	}
	body := string(refresh.Body)
	if strings.Contains(body, "a=setup:actpass") {
		t.Errorf("answer to the refresh is an offer:\n%s", body)
	}
	if d := audioDirs(body); len(d) != 1 || d[0] != "sendrecv" {
		t.Errorf("answer to the refresh: %v", d)
	}
	if got := a.Stats().Audio.Direction; got != pion.RTPTransceiverDirectionSendrecv {
		t.Errorf("a's direction after the refresh: %s", got)
	}
	receivedMore(t, "a after the refresh", a, 5)
	receivedMore(t, "b after the refresh", b, 5)
}

func TestCrossingOffers(t *testing.T) {
	ctx := context.Background()
	a := newHandler(t, Config{})
	b := newHandler(t, Config{})
	a.SetAudioSource(Tone(440))
	b.SetAudioSource(Tone(660))
	exchange(t, a, b, media.Options{}, media.Options{})
	waitFor(t, "connected", 5*time.Second, connected(a, b))

	// a's hold offer is refused (say 491): its next offer replaces it.
	if _, err := a.GetDescription(ctx, media.Options{Hold: true}); err != nil {
		t.Fatal(err)
	}
	offer, answer := exchange(t, a, b, media.Options{}, media.Options{})
	if d := audioDirs(offer); len(d) != 1 || d[0] != "sendrecv" {
		t.Errorf("offer after a refused one: %v", d)
	}
	if d := audioDirs(answer); len(d) != 1 || d[0] != "sendrecv" {
		t.Errorf("its answer: %v", d)
	}

	// Glare: both offer at once; a takes b's offer (an actpass SDP is
	// never an answer) and answers it.
	if _, err := a.GetDescription(ctx, media.Options{}); err != nil {
		t.Fatal(err)
	}
	bo, err := b.GetDescription(ctx, media.Options{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetDescription(ctx, bo, media.Options{}); err != nil {
		t.Fatalf("crossing offer: %v", err)
	}
	aa, err := a.GetDescription(ctx, media.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := audioDirs(string(aa.Body)); len(d) != 1 || d[0] != "recvonly" {
		t.Errorf("answer to the crossing hold offer: %v", d)
	}
	if err := b.SetDescription(ctx, aa, media.Options{Hold: true}); err != nil {
		t.Fatalf("b takes the answer: %v", err)
	}
	if got := b.Stats().Audio.Direction; got != pion.RTPTransceiverDirectionSendonly {
		t.Errorf("b's direction %s", got)
	}

	// An offer refused by the application stays unanswered; the next
	// one replaces it.
	o1, err := b.GetDescription(ctx, media.Options{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetDescription(ctx, o1, media.Options{}); err != nil {
		t.Fatal(err)
	}
	offer, answer = exchange(t, b, a, media.Options{}, media.Options{})
	if d := audioDirs(answer); len(d) != 1 || d[0] != "sendrecv" {
		t.Errorf("answer after a refused offer: %v (offer %v)", d, audioDirs(offer))
	}
	receivedMore(t, "a at the end", a, 5)
	receivedMore(t, "b at the end", b, 5)
}

func TestHoldUnhold(t *testing.T) {
	a := newHandler(t, Config{})
	b := newHandler(t, Config{})
	a.SetAudioSource(Tone(440))
	b.SetAudioSource(Tone(660))
	exchange(t, a, b, media.Options{}, media.Options{})
	waitFor(t, "connected", 5*time.Second, connected(a, b))
	receivedMore(t, "a", a, 5)
	receivedMore(t, "b", b, 5)

	check := func(step, offer, answer, wantOffer, wantAnswer string, wantA, wantB pion.RTPTransceiverDirection) {
		t.Helper()
		if d := audioDirs(offer); len(d) != 1 || d[0] != wantOffer {
			t.Errorf("%s: offer direction %v, want %s", step, d, wantOffer)
		}
		if d := audioDirs(answer); len(d) != 1 || d[0] != wantAnswer {
			t.Errorf("%s: answer direction %v, want %s", step, d, wantAnswer)
		}
		if got := a.Stats().Audio.Direction; got != wantA {
			t.Errorf("%s: a's direction %s, want %s", step, got, wantA)
		}
		if got := b.Stats().Audio.Direction; got != wantB {
			t.Errorf("%s: b's direction %s, want %s", step, got, wantB)
		}
	}

	// a holds: sendonly, answered recvonly; b stops sending.
	offer, answer := exchange(t, a, b, media.Options{Hold: true}, media.Options{})
	check("a holds", offer, answer, "sendonly", "recvonly",
		pion.RTPTransceiverDirectionSendonly, pion.RTPTransceiverDirectionRecvonly)
	notSending(t, "b", b)
	receivedMore(t, "b while a holds", b, 5)

	// b, the first answerer, re-offers on hold too: inactive both ways.
	offer, answer = exchange(t, b, a, media.Options{Hold: true}, media.Options{Hold: true})
	check("both hold", offer, answer, "inactive", "inactive",
		pion.RTPTransceiverDirectionInactive, pion.RTPTransceiverDirectionInactive)
	notSending(t, "a", a)
	notSending(t, "b", b)

	// a unholds and b too: media flows both ways again (an inactive
	// offer must not have stopped pion's transceivers for good).
	offer, answer = exchange(t, a, b, media.Options{}, media.Options{})
	check("unhold", offer, answer, "sendrecv", "sendrecv",
		pion.RTPTransceiverDirectionSendrecv, pion.RTPTransceiverDirectionSendrecv)
	receivedMore(t, "a after unhold", a, 5)
	receivedMore(t, "b after unhold", b, 5)

	// The answerer holds: a sendrecv offer gets sendonly.
	offer, answer = exchange(t, a, b, media.Options{}, media.Options{Hold: true})
	check("answerer holds", offer, answer, "sendrecv", "sendonly",
		pion.RTPTransceiverDirectionRecvonly, pion.RTPTransceiverDirectionSendonly)
	notSending(t, "a", a)
}

func TestDTMF(t *testing.T) {
	a := newHandler(t, Config{})
	b := newHandler(t, Config{})
	if err := a.SendDTMF("1", 0); !errors.Is(err, media.ErrNotSupported) {
		t.Errorf("DTMF before negotiation: %v, want ErrNotSupported", err)
	}
	type got struct {
		tone rune
		d    time.Duration
	}
	tones := make(chan got, 8)
	b.OnDTMF(func(r rune, d time.Duration) { tones <- got{r, d} })
	exchange(t, a, b, media.Options{}, media.Options{})
	waitFor(t, "connected", 5*time.Second, connected(a, b))
	if err := a.SendDTMF("1x", 0); err == nil {
		t.Error("invalid tone accepted")
	}
	if err := a.SendDTMF("9#", 60*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, want := range []got{{'9', 60 * time.Millisecond}, {'#', 60 * time.Millisecond}} {
		select {
		case g := <-tones:
			if g != want {
				t.Errorf("received tone %q %v, want %q %v", g.tone, g.d, want.tone, want.d)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("tone %q not received", want.tone)
		}
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.Audio.DTMFSent != 2 || sb.Audio.DTMFReceived != 2 {
		t.Errorf("DTMF sent %d, received %d", sa.Audio.DTMFSent, sb.Audio.DTMFReceived)
	}
}

func TestUnsupportedContent(t *testing.T) {
	h := newHandler(t, Config{})
	for ct, want := range map[string]bool{
		"application/sdp":               true,
		"Application/SDP":               true,
		"application/sdp; charset=utf8": true,
		"text/plain":                    false,
		"application/json":              false,
		"":                              false,
	} {
		if got := h.HasDescription(ct); got != want {
			t.Errorf("HasDescription(%q) = %v", ct, got)
		}
	}
	err := h.SetDescription(context.Background(), media.Description{ContentType: "text/plain", Body: []byte("hi")}, media.Options{})
	if !errors.Is(err, media.ErrUnsupportedContent) {
		t.Errorf("text/plain: %v, want ErrUnsupportedContent", err)
	}
}

func TestNotAcceptable(t *testing.T) {
	a := newHandler(t, Config{})
	o, err := a.GetDescription(context.Background(), media.Options{})
	if err != nil {
		t.Fatal(err)
	}
	offer := string(o.Body)
	unknown := strings.Replace(offer, "m=audio 9 UDP/TLS/RTP/SAVPF 0 8 111 101", "m=audio 9 UDP/TLS/RTP/SAVPF 96", 1)
	unknown = strings.Replace(unknown, "a=rtpmap:0 PCMU/8000", "a=rtpmap:96 FOO/8000", 1)
	plain := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n"
	videoOnly := strings.Replace(offer, "m=audio 9 UDP/TLS/RTP/SAVPF 0 8 111 101", "m=video 9 UDP/TLS/RTP/SAVPF 96", 1)
	videoOnly = strings.Replace(videoOnly, "a=rtpmap:0 PCMU/8000", "a=rtpmap:96 VP8/90000", 1)
	for name, body := range map[string]string{
		"unknown codec only":          unknown,
		"plain RTP/AVP":               plain,
		"video to an audio-only side": videoOnly,
		"not SDP at all":              "hello",
		"empty":                       "",
	} {
		b := newHandler(t, Config{})
		err := b.SetDescription(context.Background(), media.Description{ContentType: "application/sdp", Body: []byte(body)}, media.Options{})
		if !errors.Is(err, media.ErrNotAcceptable) {
			t.Errorf("%s: %v, want ErrNotAcceptable", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestVideoConstraint(t *testing.T) {
	a := newHandler(t, Config{})
	b := newHandler(t, Config{})
	video := media.Options{Constraints: media.Constraints{Audio: true, Video: true}}
	offer, answer := exchange(t, a, b, video, media.Options{})
	if !strings.Contains(offer, "m=video 9 UDP/TLS/RTP/SAVPF 96") || !strings.Contains(offer, "a=rtpmap:96 VP8/90000") {
		t.Errorf("video offer without VP8:\n%s", offer)
	}
	if !strings.Contains(answer, "m=video 0 ") {
		t.Errorf("audio-only answerer did not reject video:\n%s", answer)
	}
	if got := a.Stats().Video.Direction; got != pion.RTPTransceiverDirectionInactive {
		t.Errorf("rejected video direction %s", got)
	}
	c := newHandler(t, Config{})
	d := newHandler(t, Config{})
	offer, answer = exchange(t, c, d, video, video)
	if strings.Contains(answer, "m=video 0 ") || !strings.Contains(answer, "a=rtpmap:96 VP8/90000") {
		t.Errorf("video answerer rejected video:\n%s", answer)
	}
	// Neither side sends video: both offer recvonly, so it ends inactive.
	if got := c.Stats().Video.Direction; got != pion.RTPTransceiverDirectionInactive {
		t.Errorf("video direction %s", got)
	}
	_ = offer
}

// silentSTUN is a UDP server on loopback that never answers.
func silentSTUN(t *testing.T) string {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			if _, _, err := conn.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return "stun:" + conn.LocalAddr().String()
}

func TestGatheringTimeout(t *testing.T) {
	stun := silentSTUN(t)
	servers := []pion.ICEServer{{URLs: []string{stun}}}

	// From the Config.
	h := newHandler(t, Config{ICEServers: servers, GatheringTimeout: 150 * time.Millisecond})
	start := time.Now()
	d, err := h.GetDescription(context.Background(), media.Options{})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if took > 2*time.Second {
		t.Errorf("GetDescription took %v with a 150 ms gathering timeout", took)
	}
	if st := h.Stats().ICEGatheringState; st == pion.ICEGatheringStateComplete {
		t.Errorf("gathering %s: the STUN server answered?", st)
	}
	if !strings.Contains(string(d.Body), "typ host") {
		t.Errorf("no host candidate after the timeout:\n%s", d.Body)
	}
	t.Logf("returned after %v with gathering %s", took, h.Stats().ICEGatheringState)

	// From the Options, overriding the default 5 s.
	h2 := newHandler(t, Config{ICEServers: servers})
	start = time.Now()
	if _, err := h2.GetDescription(context.Background(), media.Options{GatheringTimeout: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Options.GatheringTimeout not honoured: %v", took)
	}

	// The context bounds it too.
	h3 := newHandler(t, Config{ICEServers: servers})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := h3.GetDescription(ctx, media.Options{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled gathering: %v", err)
	}
	// Asked again, the same first offer is finished and returned.
	d3, err := h3.GetDescription(context.Background(), media.Options{GatheringTimeout: 50 * time.Millisecond})
	if err != nil || !strings.Contains(string(d3.Body), "a=setup:actpass") || !strings.Contains(string(d3.Body), "typ host") {
		t.Errorf("offer after a cancelled one: %v\n%s", err, d3.Body)
	}

	// Close during gathering ends GetDescription and returns promptly.
	h4 := newHandler(t, Config{ICEServers: servers})
	errc := make(chan error, 1)
	go func() {
		_, err := h4.GetDescription(context.Background(), media.Options{})
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	if err := h4.Close(); err != nil {
		t.Error(err)
	}
	if err := <-errc; !errors.Is(err, media.ErrClosed) {
		t.Errorf("GetDescription during Close: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close took %v", took)
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	// Never used.
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.GetDescription(ctx, media.Options{}); !errors.Is(err, media.ErrClosed) {
		t.Errorf("GetDescription after Close: %v", err)
	}

	// Connected with media, closed twice.
	a := newHandler(t, Config{})
	b := newHandler(t, Config{})
	exchange(t, a, b, media.Options{}, media.Options{})
	waitFor(t, "connected", 5*time.Second, connected(a, b))
	receivedMore(t, "a", a, 3)
	for range 2 {
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.SetDescription(ctx, media.Description{ContentType: "application/sdp", Body: []byte("v=0\r\n")}, media.Options{}); !errors.Is(err, media.ErrClosed) {
		t.Errorf("SetDescription after Close: %v", err)
	}
	if err := a.SendDTMF("1", 0); !errors.Is(err, media.ErrClosed) {
		t.Errorf("SendDTMF after Close: %v", err)
	}
	_ = a.Stats() // still answers
}

// TestStatsWhileClosing: Stats called all the time, as a status page
// polls it, while the handler closes (pion's GetStats and its close
// touch the same state; run with -race).
func TestStatsWhileClosing(t *testing.T) {
	a := newHandler(t, Config{})
	b := newHandler(t, Config{})
	exchange(t, a, b, media.Options{}, media.Options{})
	waitFor(t, "connected", 5*time.Second, connected(a, b))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				_ = a.Stats()
			}
		}
	}()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
}

func TestNewRejectsNegativeTimeout(t *testing.T) {
	if _, err := New(Config{GatheringTimeout: -time.Second}); err == nil {
		t.Error("negative GatheringTimeout accepted")
	}
}

func TestFactory(t *testing.T) {
	var setup []media.SessionInfo
	f := NewFactory(Config{Setup: func(h *Handler, info media.SessionInfo) {
		setup = append(setup, info)
		h.SetAudioSource(Tone(1000))
	}})
	mh, err := f(media.SessionInfo{ID: "call-1", Incoming: true})
	if err != nil {
		t.Fatal(err)
	}
	defer mh.Close()
	if _, ok := mh.(*Handler); !ok {
		t.Fatalf("factory made a %T", mh)
	}
	if len(setup) != 1 || setup[0].ID != "call-1" || !setup[0].Incoming {
		t.Errorf("Setup called with %v", setup)
	}
}

// browserOffer is shaped like a Chromium offer from SIP.js (ICE and DTLS
// values made up): Opus first, RED, G722, CN and two telephone-events.
const browserOffer = "v=0\r\n" +
	"o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n" +
	"s=-\r\n" +
	"t=0 0\r\n" +
	"a=group:BUNDLE 0\r\n" +
	"a=extmap-allow-mixed\r\n" +
	"a=msid-semantic: WMS stream1\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n" +
	"c=IN IP4 0.0.0.0\r\n" +
	"a=rtcp:9 IN IP4 0.0.0.0\r\n" +
	"a=ice-ufrag:Wq3N\r\n" +
	"a=ice-pwd:bT0jLhZ0kO7WpSkqXcJ3hE1m\r\n" +
	"a=ice-options:trickle\r\n" +
	"a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC\r\n" +
	"a=setup:actpass\r\n" +
	"a=mid:0\r\n" +
	"a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n" +
	"a=%s\r\n" +
	"a=msid:stream1 track1\r\n" +
	"a=rtcp-mux\r\n" +
	"a=rtpmap:111 opus/48000/2\r\n" +
	"a=rtcp-fb:111 transport-cc\r\n" +
	"a=fmtp:111 minptime=10;useinbandfec=1\r\n" +
	"a=rtpmap:63 red/48000/2\r\n" +
	"a=fmtp:63 111/111\r\n" +
	"a=rtpmap:9 G722/8000\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:13 CN/8000\r\n" +
	"a=rtpmap:110 telephone-event/48000\r\n" +
	"a=rtpmap:126 telephone-event/8000\r\n" +
	"a=ssrc:1111 cname:3Vt2dVhMXmWq6v0d\r\n" +
	"a=ssrc:1111 msid:stream1 track1\r\n"

func TestAnswerBrowserOffer(t *testing.T) {
	for _, tc := range []struct{ offered, answered string }{
		{"sendrecv", "sendrecv"},
		{"sendonly", "recvonly"},
		{"recvonly", "sendonly"},
		{"inactive", "inactive"},
	} {
		h := newHandler(t, Config{})
		offer := media.Description{ContentType: "application/sdp", Body: []byte(strings.Replace(browserOffer, "%s", tc.offered, 1))}
		if err := h.SetDescription(context.Background(), offer, media.Options{}); err != nil {
			t.Fatalf("%s offer: %v", tc.offered, err)
		}
		a, err := h.GetDescription(context.Background(), media.Options{})
		if err != nil {
			t.Fatal(err)
		}
		body := string(a.Body)
		var mline string
		for _, l := range strings.Split(body, "\r\n") {
			if strings.HasPrefix(l, "m=audio") {
				mline = l
			}
		}
		fmts := strings.Fields(mline)[3:]
		if len(fmts) < 2 || fmts[0] != "0" || fmts[1] != "8" {
			t.Errorf("%s: answer does not prefer PCMU then PCMA: %s", tc.offered, mline)
		}
		want := map[string]bool{"0": true, "8": true, "111": true, "126": true}
		for _, f := range fmts {
			if !want[f] {
				t.Errorf("%s: answer has payload type %s: %s", tc.offered, f, mline)
			}
			delete(want, f)
		}
		if len(want) > 0 {
			t.Errorf("%s: answer lacks %v: %s", tc.offered, want, mline)
		}
		if d := audioDirs(body); len(d) != 1 || d[0] != tc.answered {
			t.Errorf("%s offer answered %v, want %s", tc.offered, d, tc.answered)
		}
		if !strings.Contains(body, "a=setup:active") {
			t.Errorf("%s: answer's DTLS role is not active", tc.offered)
		}
		// The codec sent is reported only when the direction lets us send.
		wantCodec := ""
		if strings.HasPrefix(tc.answered, "send") {
			wantCodec = "audio/PCMU"
		}
		if s := h.Stats(); s.Audio.Codec != wantCodec {
			t.Errorf("%s: sending %q, want %q", tc.offered, s.Audio.Codec, wantCodec)
		}
		if err := h.SendDTMF("5", 0); err != nil {
			t.Errorf("%s: DTMF with telephone-event/8000 negotiated: %v", tc.offered, err)
		}
	}
}

// iceUfrag returns the first a=ice-ufrag of an SDP.
func iceUfrag(body string) string {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}

// TestICERestart: a re-offer with media.Options.ICERestart carries new
// ICE credentials, the answerer restarts too, and media flow on.
func TestICERestart(t *testing.T) {
	a, b := newHandler(t, Config{}), newHandler(t, Config{})
	offer1, answer1 := exchange(t, a, b, media.Options{}, media.Options{})
	waitFor(t, "connected", 10*time.Second, connected(a, b))
	receivedMore(t, "b", b, 5)

	offer2, answer2 := exchange(t, a, b, media.Options{ICERestart: true}, media.Options{})
	if iceUfrag(offer1) == "" || iceUfrag(offer1) == iceUfrag(offer2) {
		t.Fatalf("the restart offer keeps its ICE credentials: %q then %q", iceUfrag(offer1), iceUfrag(offer2))
	}
	if iceUfrag(answer1) == iceUfrag(answer2) {
		t.Fatalf("the answer to a restart keeps its ICE credentials: %q", iceUfrag(answer2))
	}
	waitFor(t, "connected again", 10*time.Second, connected(a, b))
	receivedMore(t, "b after the restart", b, 5)
	receivedMore(t, "a after the restart", a, 5)

	// Without ICERestart, a re-offer keeps the credentials.
	offer3, _ := exchange(t, a, b, media.Options{}, media.Options{})
	if iceUfrag(offer3) != iceUfrag(offer2) {
		t.Fatalf("a plain re-offer changed the ICE credentials")
	}
}
