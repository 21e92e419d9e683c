package webrtc

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	pion "github.com/pion/webrtc/v4"

	"github.com/sipua/sip/media"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countFrames reads a source to its end.
func countFrames(t *testing.T, src VideoSource) (n int, total time.Duration) {
	t.Helper()
	for {
		f, err := src.ReadFrame()
		if errors.Is(err, io.EOF) {
			return n, total
		}
		if err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		if len(f.Data) == 0 {
			t.Fatalf("frame %d is empty", n)
		}
		n++
		total += f.Duration
	}
}

func TestIVFSource(t *testing.T) {
	clip := readFile(t, "testdata/clip.ivf")
	src, err := NewIVFSource(bytes.NewReader(clip))
	if err != nil {
		t.Fatal(err)
	}
	if src.Codec() != pion.MimeTypeVP8 {
		t.Errorf("codec %q", src.Codec())
	}
	n, total := countFrames(t, src)
	if n != 30 || total < 1900*time.Millisecond || total > 2100*time.Millisecond {
		t.Errorf("%d frames lasting %v, want 30 in 2 s", n, total)
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"not IVF":   []byte(strings.Repeat("x", 64)),
		"truncated": clip[:20],
		"VP9":       append(append(append([]byte{}, clip[:8]...), "VP90"...), clip[12:]...),
	} {
		if _, err := NewIVFSource(bytes.NewReader(b)); !errors.Is(err, ErrBadVideoFile) {
			t.Errorf("%s: %v, want ErrBadVideoFile", name, err)
		}
	}
	// A frame cut short is an error, not a panic.
	src, err = NewIVFSource(bytes.NewReader(clip[:len(clip)-10]))
	if err != nil {
		t.Fatal(err)
	}
	var last error
	for range 40 {
		if _, last = src.ReadFrame(); last != nil {
			break
		}
	}
	if !errors.Is(last, ErrBadVideoFile) {
		t.Errorf("truncated last frame: %v", last)
	}
}

func TestH264Source(t *testing.T) {
	src, err := NewH264Source(bytes.NewReader(readFile(t, "testdata/clip.h264")), 15)
	if err != nil {
		t.Fatal(err)
	}
	if src.Codec() != pion.MimeTypeH264 {
		t.Errorf("codec %q", src.Codec())
	}
	first, err := src.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	// The first access unit carries the parameter sets and the IDR slice.
	types := map[byte]bool{}
	for _, nal := range bytes.Split(first.Data, []byte{0, 0, 0, 1})[1:] {
		types[nal[0]&0x1f] = true
	}
	if !types[7] || !types[8] || !types[5] {
		t.Errorf("first access unit has NAL types %v, want SPS, PPS and IDR", types)
	}
	n, _ := countFrames(t, src)
	if n+1 != 30 {
		t.Errorf("%d access units, want 30", n+1)
	}
	if _, err := NewH264Source(strings.NewReader("hello"), 0); err == nil {
		t.Error("not H.264: no error")
	}
}

func TestLoopVideo(t *testing.T) {
	clip := readFile(t, "testdata/clip.ivf")
	opens := 0
	src, err := LoopVideo(func() (VideoSource, error) {
		opens++
		return NewIVFSource(bytes.NewReader(clip))
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 75 {
		if _, err := src.ReadFrame(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if opens != 3 {
		t.Errorf("opened %d times for 75 frames of a 30-frame clip", opens)
	}
	empty, err := LoopVideo(func() (VideoSource, error) {
		return NewH264Source(bytes.NewReader([]byte{0, 0, 0, 1}), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := empty.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Errorf("a loop of nothing: %v, want io.EOF", err)
	}
}

// lockedBuffer is a bytes.Buffer for a sink written by one goroutine and
// read by the test after SetVideoSink(nil).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

func loopFile(t *testing.T, name string) VideoSource {
	t.Helper()
	clip := readFile(t, name)
	src, err := LoopVideo(func() (VideoSource, error) {
		if strings.HasSuffix(name, ".ivf") {
			return NewIVFSource(bytes.NewReader(clip))
		}
		return NewH264Source(bytes.NewReader(clip), 15)
	})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

var withVideo = media.Options{Constraints: media.Constraints{Audio: true, Video: true}}

// TestVideoBothWays: a sends VP8 from an IVF clip, b H.264 from an
// Annex-B clip; each records the other's video, which reads back as the
// frames sent.
func TestVideoBothWays(t *testing.T) {
	a := newHandler(t, Config{})
	b := newHandler(t, Config{})
	a.SetVideoSource(loopFile(t, "testdata/clip.ivf"))
	b.SetVideoSource(loopFile(t, "testdata/clip.h264"))
	var ivf, h264 lockedBuffer
	bSink, err := NewIVFSink(&ivf)
	if err != nil {
		t.Fatal(err)
	}
	b.SetVideoSink(bSink)
	a.SetVideoSink(NewH264Sink(&h264))

	offer, answer := exchange(t, a, b, withVideo, withVideo)
	for name, body := range map[string]string{"offer": offer, "answer": answer} {
		if !strings.Contains(body, "a=rtpmap:96 VP8/90000") || !strings.Contains(body, "H264/90000") {
			t.Errorf("%s lacks VP8 or H.264:\n%s", name, body)
		}
	}
	waitFor(t, "ICE and DTLS connected", 5*time.Second, connected(a, b))
	waitFor(t, "video both ways", 5*time.Second, func() bool {
		return a.Stats().Video.PacketsReceived > 50 && b.Stats().Video.PacketsReceived > 50
	})
	time.Sleep(time.Second)
	a.SetVideoSink(nil)
	b.SetVideoSink(nil)
	if err := bSink.Close(); err != nil {
		t.Fatal(err)
	}

	sa, sb := a.Stats(), b.Stats()
	for name, c := range map[string][2]string{
		"a sends":    {sa.Video.Codec, pion.MimeTypeVP8},
		"a receives": {sa.Video.CodecReceived, pion.MimeTypeH264},
		"b sends":    {sb.Video.Codec, pion.MimeTypeH264},
		"b receives": {sb.Video.CodecReceived, pion.MimeTypeVP8},
	} {
		if !strings.EqualFold(c[0], c[1]) {
			t.Errorf("%s %q, want %q", name, c[0], c[1])
		}
	}
	if sa.Video.Direction != pion.RTPTransceiverDirectionSendrecv || sb.Video.Direction != pion.RTPTransceiverDirectionSendrecv {
		t.Errorf("video directions %s, %s", sa.Video.Direction, sb.Video.Direction)
	}
	if sa.Video.KeyframeRequestsSent == 0 || sb.Video.KeyframeRequestsReceived == 0 {
		t.Errorf("keyframe requests: a sent %d, b received %d", sa.Video.KeyframeRequestsSent, sb.Video.KeyframeRequestsReceived)
	}
	t.Logf("a: sent %d frames / %d packets, received %d packets; b: sent %d frames / %d packets, received %d; PLI a→b %d",
		sa.Video.FramesSent, sa.Video.PacketsSent, sa.Video.PacketsReceived,
		sb.Video.FramesSent, sb.Video.PacketsSent, sb.Video.PacketsReceived, sa.Video.KeyframeRequestsSent)

	got, err := NewIVFSource(bytes.NewReader(ivf.Bytes()))
	if err != nil {
		t.Fatalf("b's recording: %v", err)
	}
	if n, _ := countFrames(t, got); n < 15 {
		t.Errorf("b recorded %d VP8 frames, want at least 15 (1 s at 15 fps)", n)
	} else {
		t.Logf("b recorded %d VP8 frames (%d bytes of IVF)", n, len(ivf.Bytes()))
	}
	hs, err := NewH264Source(bytes.NewReader(h264.Bytes()), 15)
	if err != nil {
		t.Fatalf("a's recording: %v", err)
	}
	if n, _ := countFrames(t, hs); n < 15 {
		t.Errorf("a recorded %d H.264 access units, want at least 15", n)
	} else {
		t.Logf("a recorded %d H.264 access units (%d bytes)", n, len(h264.Bytes()))
	}
}

// videoSentSince reports how many video packets h sent in d.
func videoSentSince(h *Handler, d time.Duration) uint64 {
	before := h.Stats().Video.PacketsSent
	time.Sleep(d)
	return h.Stats().Video.PacketsSent - before
}

// TestVideoReoffer: an audio call gets video by a re-offer, goes on hold
// (video stops from the holding side), comes back, and drops video again.
func TestVideoReoffer(t *testing.T) {
	a := newHandler(t, Config{})
	b := newHandler(t, Config{})
	a.SetVideoSource(loopFile(t, "testdata/clip.ivf"))
	b.SetVideoSource(loopFile(t, "testdata/clip.ivf"))
	_, answer := exchange(t, a, b, media.Options{}, media.Options{})
	if strings.Contains(answer, "m=video") {
		t.Fatalf("audio call answered with video:\n%s", answer)
	}
	waitFor(t, "connected", 5*time.Second, connected(a, b))

	// b adds video; a (which wants video too) answers.
	offer, answer := exchange(t, b, a, withVideo, withVideo)
	if !strings.Contains(offer, "m=video 9") || !strings.Contains(answer, "m=video 9") {
		t.Fatalf("video not added:\n%s\n%s", offer, answer)
	}
	waitFor(t, "video both ways", 5*time.Second, func() bool {
		return a.Stats().Video.PacketsReceived > 20 && b.Stats().Video.PacketsReceived > 20
	})

	// Hold covers video: b puts the call on hold and stops sending.
	hold := withVideo
	hold.Hold = true
	exchange(t, b, a, hold, withVideo)
	if d := b.Stats().Video.Direction; d != pion.RTPTransceiverDirectionSendonly {
		t.Errorf("b's video on hold: %s", d)
	}
	if d := a.Stats().Video.Direction; d != pion.RTPTransceiverDirectionRecvonly {
		t.Errorf("a's video held: %s", d)
	}
	time.Sleep(100 * time.Millisecond)
	if n := videoSentSince(a, 300*time.Millisecond); n != 0 {
		t.Errorf("a sent %d video packets while held", n)
	}
	if n := videoSentSince(b, 300*time.Millisecond); n == 0 {
		t.Error("b sent no video while holding (sendonly)")
	}
	exchange(t, b, a, withVideo, withVideo)
	waitFor(t, "a's video back", 3*time.Second, func() bool { return videoSentSince(a, 100*time.Millisecond) > 0 })

	// a drops video: the m-line goes inactive, nothing flows.
	exchange(t, a, b, media.Options{}, withVideo)
	if d := a.Stats().Video.Direction; d != pion.RTPTransceiverDirectionInactive {
		t.Errorf("a's dropped video: %s", d)
	}
	time.Sleep(100 * time.Millisecond)
	if na, nb := videoSentSince(a, 300*time.Millisecond), videoSentSince(b, 300*time.Millisecond); na+nb != 0 {
		t.Errorf("video packets after video was dropped: a %d, b %d", na, nb)
	}
	receivedMore(t, "a", a, 5)
	receivedMore(t, "b", b, 5)
}

// turnServer runs a TURN server on 127.0.0.1 until the test ends and
// returns its URL.
func turnServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key := turn.GenerateAuthKey("user", "sipua.test", "secret")
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: "sipua.test",
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			return ra.Username, key, ra.Username == "user"
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1",
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("TURN server close: %v", err)
		}
	})
	return "turn:" + pc.LocalAddr().String() + "?transport=udp"
}

// TestRelayOnly: with ICETransportPolicyRelay both ends gather only relay
// candidates from a local TURN server; audio flows both ways through it,
// the selected pair is relay↔relay, and it is still reported after Close.
func TestRelayOnly(t *testing.T) {
	url := turnServer(t)
	cfg := Config{
		ICEServers:         []pion.ICEServer{{URLs: []string{url}, Username: "user", Credential: "secret"}},
		ICETransportPolicy: pion.ICETransportPolicyRelay,
	}
	a := newHandler(t, cfg)
	b := newHandler(t, cfg)
	a.SetAudioSource(Tone(440))
	b.SetAudioSource(Tone(660))
	offer, answer := exchange(t, a, b, media.Options{}, media.Options{})
	for name, body := range map[string]string{"offer": offer, "answer": answer} {
		if !strings.Contains(body, "typ relay") || strings.Contains(body, "typ host") {
			t.Errorf("%s: not relay candidates only:\n%s", name, body)
		}
	}
	waitFor(t, "connected through the relay", 10*time.Second, connected(a, b))
	receivedMore(t, "a", a, 25)
	receivedMore(t, "b", b, 25)
	for name, h := range map[string]*Handler{"a": a, "b": b} {
		s := h.Stats()
		p := s.SelectedPair
		if p == nil || p.Local.Typ != pion.ICECandidateTypeRelay || p.Remote.Typ != pion.ICECandidateTypeRelay {
			t.Errorf("%s: selected pair %v, want relay↔relay", name, p)
		}
		t.Logf("%s: pair %s; sent %d, received %d audio packets", name, p, s.Audio.PacketsSent, s.Audio.PacketsReceived)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if p := a.Stats().SelectedPair; p == nil || p.Local.Typ != pion.ICECandidateTypeRelay {
		t.Errorf("after Close: selected pair %v, want the last one", p)
	}

	if _, err := New(Config{ICETransportPolicy: pion.ICETransportPolicyRelay}); err == nil {
		t.Error("relay policy without a TURN server: no error")
	}
}

// TestLoopbackWarning: a configuration that skips loopback, on a host
// with loopback only, logs a warning; one that includes it does not.
func TestLoopbackWarning(t *testing.T) {
	yes := func() bool { return true }
	for _, tc := range []struct {
		cfg  Config
		warn bool
	}{
		{Config{}, true},
		{Config{IncludeLoopback: true}, false},
		{Config{LoopbackOnly: true}, false},
	} {
		var buf lockedBuffer
		tc.cfg.warnLoopback(slog.New(slog.NewTextHandler(&buf, nil)), yes)
		if got := strings.Contains(string(buf.Bytes()), "only loopback"); got != tc.warn {
			t.Errorf("%+v: warned %v, want %v: %s", tc.cfg, got, tc.warn, buf.Bytes())
		}
	}
	var buf lockedBuffer
	(&Config{}).warnLoopback(slog.New(slog.NewTextHandler(&buf, nil)), func() bool { return false })
	if len(buf.Bytes()) != 0 {
		t.Errorf("warned on a host with other addresses: %s", buf.Bytes())
	}
}

// TestKeyframeOnLoss: a gap in the received video's sequence numbers
// (packets lost) makes the receiving handler ask for a keyframe again
// (PLI), which the sending side sees.
func TestKeyframeOnLoss(t *testing.T) {
	a := newHandler(t, Config{})
	b := newHandler(t, Config{})
	a.SetVideoSource(loopFile(t, "testdata/clip.ivf"))
	requests := make(chan struct{}, 16)
	a.OnKeyframeRequest(func() { requests <- struct{}{} })
	sink, err := NewIVFSink(&lockedBuffer{})
	if err != nil {
		t.Fatal(err)
	}
	b.SetVideoSink(sink)
	exchange(t, a, b, withVideo, withVideo)
	waitFor(t, "video", 5*time.Second, func() bool { return b.Stats().Video.PacketsReceived > 10 })
	select {
	case <-requests: // the sink's first keyframe request
	case <-time.After(3 * time.Second):
		t.Fatal("no keyframe request when the sink started")
	}
	time.Sleep(minKeyframeInterval)
	before := b.Stats().Video.KeyframeRequestsSent
	a.video.mu.Lock()
	a.video.seq += 20 // twenty packets "lost"
	a.video.mu.Unlock()
	select {
	case <-requests:
	case <-time.After(3 * time.Second):
		t.Fatal("no keyframe request after loss")
	}
	// b counts its request once WriteRTCP returned, which may be after
	// a has it.
	waitFor(t, "b counting its keyframe request", time.Second, func() bool {
		return b.Stats().Video.KeyframeRequestsSent > before
	})
	b.SetVideoSink(nil)
}
