package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	pion "github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/webrtc"
)

// videoTime is how long video flows in each call before it is checked.
const videoTime = 3 * time.Second

// syncBuffer is a bytes.Buffer a video sink writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

// recorder is the recording of one call's incoming video: IVF (VP8), or
// an H.264 Annex-B stream.
type recorder struct {
	buf  syncBuffer
	w    interface{ Close() error }
	h264 bool
}

// videoUA is our user agent in the video tests: carol over WebSocket,
// pion/webrtc media sending a tone and a looping clip (VP8, or H.264 when
// h264 is set at call time), recording the video it receives to IVF.
type videoUA struct {
	ua   *sip.UserAgent
	invs chan *sip.Invitation

	mu       sync.Mutex
	recs     map[*webrtc.Handler]*recorder
	h264     bool // the next handler sends H.264
	h264Sink bool // and records H.264 (else VP8 to IVF)
}

func startVideoUA(t *testing.T, ctx context.Context, k *Kamailio) *videoUA {
	t.Helper()
	v := &videoUA{invs: make(chan *sip.Invitation, 2), recs: map[*webrtc.Handler]*recorder{}}
	clipVP8, err := os.ReadFile("../media/webrtc/testdata/clip.ivf")
	require.NoError(t, err)
	clipH264, err := os.ReadFile("../media/webrtc/testdata/clip.h264")
	require.NoError(t, err)
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:carol@" + Domain,
		AuthorizationPassword: Users["carol"],
		Transport:             sip.TransportOptions{Server: k.WSURL(), TLSConfig: &tls.Config{RootCAs: k.CertPool}},
		MediaFactory: webrtc.NewFactory(webrtc.Config{
			LoopbackOnly: true,
			Setup: func(h *webrtc.Handler, _ media.SessionInfo) {
				h.SetAudioSource(webrtc.Tone(440))
				v.mu.Lock()
				h264, h264Sink := v.h264, v.h264Sink
				v.mu.Unlock()
				src, err := webrtc.LoopVideo(func() (webrtc.VideoSource, error) {
					if h264 {
						return webrtc.NewH264Source(bytes.NewReader(clipH264), 15)
					}
					return webrtc.NewIVFSource(bytes.NewReader(clipVP8))
				})
				if err != nil {
					t.Errorf("video source: %v", err)
					return
				}
				h.SetVideoSource(src)
				r := &recorder{h264: h264Sink}
				if h264Sink {
					w := webrtc.NewH264Sink(&r.buf)
					r.w = w
					h.SetVideoSink(w)
				} else {
					w, err := webrtc.NewIVFSink(&r.buf)
					if err != nil {
						t.Errorf("video sink: %v", err)
						return
					}
					r.w = w
					h.SetVideoSink(w)
				}
				v.mu.Lock()
				v.recs[h] = r
				v.mu.Unlock()
			},
		}),
		Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) { v.invs <- inv }},
	})
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() { _ = ua.Stop(context.Background()) })
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
	v.ua = ua
	return v
}

// recording stops the recording of h's incoming video and returns the
// number of frames the file (IVF, or H.264 access units) holds, read back
// from its bytes.
func (v *videoUA) recording(t *testing.T, h *webrtc.Handler) (frames int, size int) {
	t.Helper()
	v.mu.Lock()
	r := v.recs[h]
	v.mu.Unlock()
	require.NotNil(t, r, "no recorder for the call's handler")
	h.SetVideoSink(nil)
	require.NoError(t, r.w.Close())
	b := r.buf.Bytes()
	var src webrtc.VideoSource
	var err error
	if r.h264 {
		src, err = webrtc.NewH264Source(bytes.NewReader(b), 0)
	} else {
		src, err = webrtc.NewIVFSource(bytes.NewReader(b))
	}
	require.NoError(t, err, "the recording is not a valid video file")
	for {
		f, err := src.ReadFrame()
		if errors.Is(err, io.EOF) {
			return frames, len(b)
		}
		require.NoError(t, err, "frame %d of the recording", frames)
		require.NotEmpty(t, f.Data)
		frames++
	}
}

var videoConstraints = media.Options{Constraints: media.Constraints{Audio: true, Video: true}}

// checkVideo waits for video both ways (or only from us, when fromBrowser
// is false), lets it flow for videoTime, and checks that Chromium decoded
// our frames and that we received the browser's video and recorded it as
// an IVF file with at least the frames expected.
func checkVideo(t *testing.T, label string, v *videoUA, mh media.Handler, browser *BrowserPeer, call, codec, recvCodec string, fromBrowser bool) {
	t.Helper()
	h, ok := mh.(*webrtc.Handler)
	require.True(t, ok, "our media handler is %T", mh)
	var ours webrtc.Stats
	var theirs BrowserStats
	start := time.Now()
	for {
		ours, theirs = h.Stats(), browser.Stats(t, call)
		if theirs.FramesDecoded > 0 && (!fromBrowser || ours.Video.PacketsReceived > 0) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s: no video after 10 s:\n  ours: %+v\n  browser: %+v", label, ours.Video, theirs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	first := time.Since(start)
	decoded0, received0 := theirs.FramesDecoded, ours.Video.FramesSent
	time.Sleep(videoTime)
	ours, theirs = h.Stats(), browser.Stats(t, call)
	t.Logf("%s: video %v after the call was up; in %v more:", label, first.Round(time.Millisecond), videoTime)
	t.Logf("  sipua  (pion):     sent %s: %d frames / %d packets, %d keyframe requests from the browser; received %s: %d packets, %d keyframe requests sent",
		ours.Video.Codec, ours.Video.FramesSent, ours.Video.PacketsSent, ours.Video.KeyframeRequestsReceived,
		ours.Video.CodecReceived, ours.Video.PacketsReceived, ours.Video.KeyframeRequestsSent)
	t.Logf("  SIP.js (Chromium): received %s: %d packets, %d frames, %d decoded (%d keyframes), %dx%d; sent %s: %d frames encoded / %d packets",
		theirs.VideoCodecReceived, theirs.VideoPacketsReceived, theirs.FramesReceived, theirs.FramesDecoded, theirs.KeyFramesDecoded,
		theirs.FrameWidth, theirs.FrameHeight, theirs.VideoCodecSent, theirs.FramesEncoded, theirs.VideoPacketsSent)

	// Chromium decodes our clip (160x120 at 15 fps): at least half the
	// frames of videoTime, at its size, in the codec we sent.
	assert.True(t, strings.EqualFold(theirs.VideoCodecReceived, codec), "%s: the browser received %q, want %q", label, theirs.VideoCodecReceived, codec)
	assert.True(t, strings.EqualFold(ours.Video.Codec, codec), "%s: we sent %q, want %q", label, ours.Video.Codec, codec)
	wantDecoded := uint64(videoTime.Seconds() * 15 / 2)
	assert.GreaterOrEqual(t, theirs.FramesDecoded-decoded0, wantDecoded, "%s: frames Chromium decoded from our video", label)
	assert.Equal(t, 160, theirs.FrameWidth, "%s: width of our video in Chromium", label)
	assert.Equal(t, 120, theirs.FrameHeight, "%s: height of our video in Chromium", label)
	assert.Greater(t, ours.Video.FramesSent, received0, "%s: we kept sending", label)
	if !fromBrowser {
		return
	}
	// Chromium's fake camera: its frames, recorded by us.
	assert.True(t, strings.EqualFold(ours.Video.CodecReceived, recvCodec), "%s: we received %q, want %q", label, ours.Video.CodecReceived, recvCodec)
	frames, size := v.recording(t, h)
	// Expected: what Chromium says it encoded after our first packet,
	// less the frames before the first keyframe we could use; at the
	// least 5 frames a second.
	want := max(int(videoTime.Seconds()*5), int(theirs.FramesEncoded)/2)
	t.Logf("  recorded the browser's video: %d frames in %d bytes (browser encoded %d in all)", frames, size, theirs.FramesEncoded)
	assert.GreaterOrEqual(t, frames, want, "%s: frames of the browser's video recorded", label)
}

// TestVideoChromium: audio and video between our UserAgent (carol,
// pion/webrtc sending a looping 160x120 clip, recording what it receives
// to IVF or H.264) and SIP.js in headless Chromium (eve, the fake camera),
// through Kamailio over WebSocket: we call with video, the browser calls
// with video (we send H.264), H.264 only both ways (a per-call codec
// list), video added to an audio call by our re-INVITE, held, resumed and
// dropped again; last, another UA whose media may only go through a TURN
// relay calls the browser.
func TestVideoChromium(t *testing.T) {
	k := StartKamailio(t)
	browser := StartBrowserPeer(t, k, BrowserPeerConfig{User: "eve"})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	v := startVideoUA(t, ctx, k)
	browser.Do(t, "register")
	browser.Expect(t, "registered")

	t.Run("ua-calls-browser", func(t *testing.T) {
		call, err := sip.NewInviter(v.ua, "sip:eve@"+Domain, sip.InviterOptions{Media: videoConstraints})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
		bc := browser.Expect(t, "invite", "from", "sip:carol@"+Domain).Get("call")
		browser.Do(t, "answer", "call", bc, "video", true)
		require.NoError(t, <-errc, "our INVITE")
		browser.Expect(t, "accepted", "call", bc)
		checkVideo(t, "carol→eve with video", v, call.MediaHandler(), browser, bc, "video/VP8", "video/VP8", true)
		require.NoError(t, call.Bye(ctx))
		browser.Expect(t, "terminated", "call", bc, "reason", "remote_bye")
		st := call.MediaHandler().(*webrtc.Handler).Stats()
		assert.NotNil(t, st.SelectedPair, "the selected pair is kept after the call")
	})

	t.Run("browser-calls-ua", func(t *testing.T) {
		v.mu.Lock()
		v.h264 = true
		v.mu.Unlock()
		defer func() { v.mu.Lock(); v.h264 = false; v.mu.Unlock() }()
		bc := browser.Do(t, "call", "target", "sip:carol@"+Domain, "video", true)
		var inv *sip.Invitation
		select {
		case inv = <-v.invs:
		case <-ctx.Done():
			t.Fatal("the browser's INVITE did not reach our UA")
		}
		offer := browser.Expect(t, "local_sdp", "type", "offer").Get("sdp")
		require.Contains(t, offer, "m=video", "the browser offered no video")
		codec := "video/VP8"
		if strings.Contains(offer, "H264/90000") {
			codec = "video/H264"
		} else {
			t.Log("Chromium offers no H.264: our H.264 clip cannot be sent; expecting no video from us")
		}
		require.NoError(t, inv.Accept(ctx, sip.AcceptOptions{Media: videoConstraints}))
		browser.Expect(t, "accepted", "call", bc)
		require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
		if codec != "video/H264" {
			t.Skip("no H.264 in Chromium")
		}
		checkVideo(t, "eve→carol with video (we send H.264)", v, inv.MediaHandler(), browser, bc, codec, "video/VP8", true)
		browser.Do(t, "hangup", "call", bc)
		browser.Expect(t, "terminated", "call", bc, "reason", "local_bye")
		select {
		case <-inv.Done():
		case <-ctx.Done():
			t.Fatal("our side did not end after the browser's BYE")
		}
	})

	t.Run("reinvite-adds-video", func(t *testing.T) {
		call, err := sip.NewInviter(v.ua, "sip:eve@"+Domain, sip.InviterOptions{})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
		bc := browser.Expect(t, "invite", "from", "sip:carol@"+Domain).Get("call")
		browser.Do(t, "answer", "call", bc, "reinviteVideo", true)
		require.NoError(t, <-errc, "our INVITE")
		browser.Expect(t, "accepted", "call", bc)
		h := call.MediaHandler().(*webrtc.Handler)
		require.Eventually(t, func() bool { return h.Stats().Audio.PacketsReceived > 10 }, 10*time.Second, 50*time.Millisecond,
			"no audio in the audio call")
		assert.Zero(t, browser.Stats(t, bc).VideoPacketsReceived, "video before it was added")

		require.NoError(t, call.Reinvite(ctx, sip.ReinviteOptions{Media: videoConstraints}), "re-INVITE adding video")
		checkVideo(t, "video added by re-INVITE", v, h, browser, bc, "video/VP8", "video/VP8", true)

		// Hold covers video: the browser stops sending us video, we go
		// on sending (sendonly).
		require.NoError(t, call.Hold(ctx))
		assert.Equal(t, "sendonly", h.Stats().Video.Direction.String(), "our video on hold")
		time.Sleep(500 * time.Millisecond)
		before, beforeDecoded := h.Stats().Video.PacketsReceived, browser.Stats(t, bc).FramesDecoded
		time.Sleep(time.Second)
		assert.LessOrEqual(t, h.Stats().Video.PacketsReceived-before, uint64(5), "video received while on hold")
		assert.Greater(t, browser.Stats(t, bc).FramesDecoded, beforeDecoded, "our video (sendonly) stopped on hold")
		require.NoError(t, call.Unhold(ctx))
		assert.Equal(t, "sendrecv", h.Stats().Video.Direction.String(), "our video after hold")
		before = h.Stats().Video.PacketsReceived
		require.Eventually(t, func() bool { return h.Stats().Video.PacketsReceived > before+20 }, 5*time.Second, 50*time.Millisecond,
			"the browser's video did not come back after hold")

		// A re-INVITE without video removes it: nothing flows either way.
		require.NoError(t, call.Reinvite(ctx, sip.ReinviteOptions{Media: media.Options{}}), "re-INVITE dropping video")
		assert.Equal(t, "inactive", h.Stats().Video.Direction.String(), "our video after it was dropped")
		time.Sleep(500 * time.Millisecond)
		sent, got, decoded := h.Stats().Video.PacketsSent, h.Stats().Video.PacketsReceived, browser.Stats(t, bc).FramesDecoded
		time.Sleep(time.Second)
		assert.Equal(t, sent, h.Stats().Video.PacketsSent, "video sent after it was dropped")
		assert.LessOrEqual(t, h.Stats().Video.PacketsReceived-got, uint64(5), "video received after it was dropped")
		assert.Equal(t, decoded, browser.Stats(t, bc).FramesDecoded, "frames Chromium decoded after video was dropped")
		assert.Greater(t, h.Stats().Audio.PacketsReceived, uint64(100), "audio goes on")

		require.NoError(t, call.Bye(ctx))
		browser.Expect(t, "terminated", "call", bc, "reason", "remote_bye")
	})
	t.Run("h264-both-ways", func(t *testing.T) {
		// This call's codecs (media.Options.Codecs) leave H.264 only:
		// we send our H.264 clip, Chromium its camera in H.264, which we
		// record as an Annex-B stream.
		v.mu.Lock()
		v.h264, v.h264Sink = true, true
		v.mu.Unlock()
		defer func() { v.mu.Lock(); v.h264, v.h264Sink = false, false; v.mu.Unlock() }()
		opts := videoConstraints
		opts.Codecs = []string{"H264", "PCMU"}
		call, err := sip.NewInviter(v.ua, "sip:eve@"+Domain, sip.InviterOptions{Media: opts})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
		bc := browser.Expect(t, "invite", "from", "sip:carol@"+Domain).Get("call")
		browser.Do(t, "answer", "call", bc, "video", true)
		require.NoError(t, <-errc, "our INVITE")
		browser.Expect(t, "accepted", "call", bc)
		checkVideo(t, "H.264 both ways", v, call.MediaHandler(), browser, bc, "video/H264", "video/H264", true)
		require.NoError(t, call.Bye(ctx))
		browser.Expect(t, "terminated", "call", bc, "reason", "remote_bye")
	})

	t.Run("relay-only", func(t *testing.T) {
		// dave's media may use only a TURN relay (a pion/turn server on
		// 127.0.0.1 in this process): audio must flow both ways through
		// it, on a relay pair at both ends.
		turnURL := startTURN(t)
		invs := make(chan *sip.Invitation, 1)
		dave, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI:                   "sip:dave@" + Domain,
			AuthorizationPassword: Users["dave"],
			Transport:             sip.TransportOptions{Server: k.WSURL()},
			MediaFactory: webrtc.NewFactory(webrtc.Config{
				LoopbackOnly:       true,
				ICEServers:         []pion.ICEServer{{URLs: []string{turnURL}, Username: "relay", Credential: "relay-secret"}},
				ICETransportPolicy: pion.ICETransportPolicyRelay,
				Setup:              func(h *webrtc.Handler, _ media.SessionInfo) { h.SetAudioSource(webrtc.Tone(440)) },
			}),
			Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) { invs <- inv }},
		})
		require.NoError(t, err)
		require.NoError(t, dave.Start(ctx))
		defer dave.Stop(context.Background())
		call, err := sip.NewInviter(dave, "sip:eve@"+Domain, sip.InviterOptions{})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
		bc := browser.Expect(t, "invite", "from", "sip:dave@"+Domain).Get("call")
		browser.Do(t, "answer", "call", bc)
		require.NoError(t, <-errc, "dave's INVITE")
		browser.Expect(t, "accepted", "call", bc)
		h := call.MediaHandler().(*webrtc.Handler)
		var ours webrtc.Stats
		var theirs BrowserStats
		require.Eventually(t, func() bool {
			ours, theirs = h.Stats(), browser.Stats(t, bc)
			return ours.Audio.PacketsReceived > 50 && theirs.PacketsReceived > 50
		}, 15*time.Second, 100*time.Millisecond, "no audio both ways through the relay")
		t.Logf("relay-only: we received %d audio packets, the browser %d; our pair %s; the browser's %s ↔ %s",
			ours.Audio.PacketsReceived, theirs.PacketsReceived, ours.SelectedPair, theirs.LocalCandidate, theirs.RemoteCandidate)
		require.NotNil(t, ours.SelectedPair)
		assert.Equal(t, pion.ICECandidateTypeRelay, ours.SelectedPair.Local.Typ, "our side of the pair")
		assert.True(t, strings.HasSuffix(theirs.RemoteCandidate, " relay"), "the browser's remote candidate %q", theirs.RemoteCandidate)
		require.NoError(t, call.Bye(ctx))
		browser.Expect(t, "terminated", "call", bc, "reason", "remote_bye")
		after := h.Stats().SelectedPair
		require.NotNil(t, after, "the selected pair is kept after the call")
		assert.Equal(t, pion.ICECandidateTypeRelay, after.Local.Typ)
	})
	noRouteSetViolations(t, k)
}

// startTURN runs a TURN server (pion/turn) on 127.0.0.1 until the test
// ends, with one user, relay / relay-secret, and returns its URL.
func startTURN(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	key := turn.GenerateAuthKey("relay", Domain, "relay-secret")
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: Domain,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			return ra.Username, key, ra.Username == "relay"
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"},
		}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, srv.Close()) })
	return "turn:" + pc.LocalAddr().String() + "?transport=udp"
}
