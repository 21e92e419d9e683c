package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/examples/internal/cli"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/media/wav"
	"github.com/sipua/sip/media/webrtc"
	"github.com/sipua/sip/siptest/sipserver"
	"github.com/sipua/sip/transport"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func noEnv(string) string { return "" }

const clip = "../../media/webrtc/testdata/clip.ivf"

func TestFlags(t *testing.T) {
	var out, errb syncBuffer
	ctx := context.Background()
	for _, args := range [][]string{
		{"-user", "bot"},
		{"-server", "x", "-user", "bot"}, // webrtc without -video
		{"-server", "x", "-user", "bot", "-video", "/no/such.ivf"},
		{"-server", "x", "-user", "bot", "-video", "main.go"}, // not a video
		{"-server", "x", "-user", "bot", "-video", clip, "-audio", "/no/such.wav"},
		{"-server", "x", "-user", "bot", "-video", clip, "-record", "/no/such/dir"},
		{"-server", "x", "-user", "bot", "-bogus"},
	} {
		assert.Equal(t, cli.ExitUsage, run(ctx, args, noEnv, &out, &errb), "%q", args)
	}
	assert.Equal(t, cli.ExitOK, run(ctx, []string{"-h"}, noEnv, &out, &errb))
	assert.Contains(t, errb.String(), "Exit codes")
}

// startBot runs the videobot against a local registrar/proxy over TCP
// until the test ends and returns the server, the bot's output and its
// recording folder.
func startBot(t *testing.T, mediaKind string, audio []int16) (*sipserver.Server, *syncBuffer, string) {
	t.Helper()
	srv, err := sipserver.New(sipserver.Options{Listen: []string{"tcp://127.0.0.1:0"}})
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	wavPath := filepath.Join(dir, "prompt.wav")
	require.NoError(t, wav.WriteFile(wavPath, audio))
	rec := filepath.Join(dir, "rec")
	require.NoError(t, os.Mkdir(rec, 0o755))
	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-server", srv.Addr(transport.TCP).String(), "-transport", "tcp",
			"-domain", sipserver.DefaultDomain, "-user", "bot", "-media", mediaKind, "-media-ip", "127.0.0.1",
			"-video", clip, "-audio", wavPath, "-record", rec}, noEnv, &out, &errb)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			assert.Equal(t, cli.ExitOK, code, errb.String())
		case <-time.After(10 * time.Second):
			t.Error("the bot did not stop")
		}
	})
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "ready for calls") }, 10*time.Second,
		10*time.Millisecond, "bot: %s %s", out.String(), errb.String())
	return srv, &out, rec
}

// tone returns d of a sine at hz.
func tone(hz float64, d time.Duration) []int16 {
	s := make([]int16, int(d.Seconds()*webrtc.SampleRate))
	_, _ = webrtc.Tone(hz).ReadSamples(s)
	return s
}

// callBot calls the bot with the given factory for callTime and hangs up.
func callBot(t *testing.T, srv *sipserver.Server, mf media.Factory, opts media.Options, during func(h media.Handler)) {
	t.Helper()
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:          "sip:caller@" + sipserver.DefaultDomain,
		Transport:    sip.TransportOptions{Server: srv.URI(transport.TCP).String()},
		MediaFactory: mf,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	defer ua.Stop(context.Background())
	call, err := sip.NewInviter(ua, srv.AOR("bot"), sip.InviterOptions{Media: opts})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{}))
	during(call.MediaHandler())
	require.NoError(t, call.Bye(ctx))
}

// checkWAV checks that a recording holds the tone hz.
func checkWAV(t *testing.T, path string, hz float64) {
	t.Helper()
	s, err := wav.ReadFile(path)
	require.NoError(t, err)
	require.Greater(t, len(s), webrtc.SampleRate/2, "recorded %d samples", len(s))
	tail := s[len(s)-webrtc.SampleRate/2:]
	level, other := wav.ToneLevel(tail, hz), wav.ToneLevel(tail, 2*hz+37)
	t.Logf("%s: %d samples, %.0f Hz level %.3f (another frequency: %.3f)", filepath.Base(path), len(s), hz, level, other)
	assert.Greater(t, level, 0.1, "the caller's tone is not in the recording")
}

// TestVideoCall: a WebRTC caller sending a 660 Hz tone and a VP8 clip
// calls the bot; it receives the bot's video and audio, and the bot
// records the caller's video (a valid IVF with the frames sent) and audio
// (a WAV with the tone).
func TestVideoCall(t *testing.T) {
	srv, out, rec := startBot(t, "webrtc", tone(440, time.Second))
	var ivf syncBuffer
	sink, err := webrtc.NewIVFSink(&ivf)
	require.NoError(t, err)
	clipBytes, err := os.ReadFile(clip)
	require.NoError(t, err)
	mf := webrtc.NewFactory(webrtc.Config{LoopbackOnly: true, Setup: func(h *webrtc.Handler, _ media.SessionInfo) {
		h.SetAudioSource(webrtc.Tone(660))
		src, err := webrtc.LoopVideo(func() (webrtc.VideoSource, error) { return webrtc.NewIVFSource(bytes.NewReader(clipBytes)) })
		if err == nil {
			h.SetVideoSource(src)
		}
		h.SetVideoSink(sink)
	}})
	callBot(t, srv, mf, media.Options{Constraints: media.Constraints{Audio: true, Video: true}}, func(mh media.Handler) {
		h := mh.(*webrtc.Handler)
		require.Eventually(t, func() bool {
			s := h.Stats()
			return s.Video.PacketsReceived > 30 && s.Audio.PacketsReceived > 50
		}, 10*time.Second, 50*time.Millisecond, "no video and audio from the bot")
		time.Sleep(2 * time.Second)
		s := h.Stats()
		t.Logf("caller: received %d video packets (%s), %d audio packets (%s)", s.Video.PacketsReceived,
			s.Video.CodecReceived, s.Audio.PacketsReceived, s.Audio.CodecReceived)
		h.SetVideoSink(nil)
	})
	require.NoError(t, sink.Close())
	src, err := webrtc.NewIVFSource(bytes.NewReader([]byte(ivf.String())))
	require.NoError(t, err, "the bot's video as the caller recorded it")
	got := 0
	for {
		if _, err := src.ReadFrame(); err != nil {
			break
		}
		got++
	}
	assert.GreaterOrEqual(t, got, 15, "frames of the bot's video")

	require.Eventually(t, func() bool { return strings.Contains(out.String(), "call 1 ended") }, 10*time.Second, 20*time.Millisecond)
	t.Log(strings.TrimSpace(out.String()))
	checkWAV(t, filepath.Join(rec, "call-1.wav"), 660)
	frames := countFrames(filepath.Join(rec, "call-1.ivf"))
	assert.GreaterOrEqual(t, frames, 15, "the caller's video the bot recorded (15 fps for 2 s and more)")
}

// TestAudioCallRTP: the same bot with plain RTP records the caller's
// audio with the same recorder.
func TestAudioCallRTP(t *testing.T) {
	srv, out, rec := startBot(t, "rtp", tone(440, time.Second))
	mf := rtp.NewFactory(rtp.Config{IP: []byte{127, 0, 0, 1}, Setup: func(h *rtp.Handler, _ media.SessionInfo) {
		h.SetAudioSource(rtp.Tone(660))
	}})
	callBot(t, srv, mf, media.Options{}, func(mh media.Handler) {
		h := mh.(*rtp.Handler)
		require.Eventually(t, func() bool { return h.Stats().PacketsReceived > 50 }, 10*time.Second, 50*time.Millisecond)
		time.Sleep(time.Second)
	})
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "call 1 ended") }, 10*time.Second, 20*time.Millisecond)
	t.Log(strings.TrimSpace(out.String()))
	checkWAV(t, filepath.Join(rec, "call-1.wav"), 660)
	_, err := os.Stat(filepath.Join(rec, "call-1.ivf"))
	assert.True(t, os.IsNotExist(err), "an IVF file for an audio-only call")
}
