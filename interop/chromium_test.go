package interop

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	pion "github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/webrtc"
)

// audioTime is how long audio flows in each call before the counts are
// taken.
const audioTime = 2 * time.Second

// TestChromiumCalls: our UserAgent (carol, WebSocket, pion/webrtc media
// sending a 440 Hz tone) and SIP.js 0.21.2 in headless Chromium (eve, real
// WebRTC with Chromium's fake microphone) call each other through Kamailio
// over WS. In each direction the call is answered, audio flows both ways
// for audioTime, and both ends must report ICE and DTLS connected over
// 127.0.0.1 and RTP received; then one side hangs up (we in the first call,
// the browser in the second).
func TestChromiumCalls(t *testing.T) {
	k := StartKamailio(t)
	browser := StartBrowserPeer(t, k, BrowserPeerConfig{User: "eve"})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	invs := make(chan *sip.Invitation, 2)
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:carol@" + Domain,
		AuthorizationPassword: Users["carol"],
		Transport:             sip.TransportOptions{Server: k.WSURL(), TLSConfig: &tls.Config{RootCAs: k.CertPool}},
		MediaFactory: webrtc.NewFactory(webrtc.Config{
			LoopbackOnly: true,
			Setup:        func(h *webrtc.Handler, _ media.SessionInfo) { h.SetAudioSource(webrtc.Tone(440)) },
		}),
		Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) { invs <- inv }},
	})
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx))
	defer ua.Stop(context.Background())
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
	browser.Do(t, "register")
	browser.Expect(t, "registered")

	t.Run("ua-calls-browser", func(t *testing.T) {
		call, err := sip.NewInviter(ua, "sip:eve@"+Domain, sip.InviterOptions{})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
		bc := browser.Expect(t, "invite", "from", "sip:carol@"+Domain).Get("call")
		browser.Do(t, "answer", "call", bc)
		require.NoError(t, <-errc, "our INVITE")
		browser.Expect(t, "accepted", "call", bc)
		browser.Expect(t, "ack", "call", bc)
		logBrowserSDP(t, browser, "answer")

		checkMedia(t, "carol→eve (browser answers)", call.MediaHandler(), browser, bc)

		require.NoError(t, call.Bye(ctx))
		browser.Expect(t, "terminated", "call", bc, "reason", "remote_bye")
		assert.Equal(t, sip.EndLocalBye, call.EndReason().Cause)
	})

	t.Run("browser-calls-ua", func(t *testing.T) {
		bc := browser.Do(t, "call", "target", "sip:carol@"+Domain)
		var inv *sip.Invitation
		select {
		case inv = <-invs:
		case <-ctx.Done():
			t.Fatal("the browser's INVITE did not reach our UA")
		}
		require.NoError(t, inv.Progress(ctx, sip.ProgressOptions{}))
		browser.Expect(t, "progress", "call", bc, "code", "180")
		require.NoError(t, inv.Accept(ctx, sip.AcceptOptions{}))
		browser.Expect(t, "accepted", "call", bc)
		require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond,
			"our side never saw the ACK")
		logBrowserSDP(t, browser, "offer")

		checkMedia(t, "eve→carol (we answer)", inv.MediaHandler(), browser, bc)

		browser.Do(t, "hangup", "call", bc)
		browser.Expect(t, "terminated", "call", bc, "reason", "local_bye")
		select {
		case <-inv.Done():
		case <-ctx.Done():
			t.Fatal("our side did not end after the browser's BYE")
		}
		assert.Equal(t, sip.EndRemoteBye, inv.EndReason().Cause)
	})
	noRouteSetViolations(t, k)
}

// logBrowserSDP logs how many ICE candidates the page kept (127.0.0.1 over
// UDP) and dropped in the SDP it sent, and fails when it kept none.
func logBrowserSDP(t *testing.T, browser *BrowserPeer, typ string) {
	t.Helper()
	ev := browser.Expect(t, "local_sdp", "type", typ)
	t.Logf("SIP.js's %s: %s loopback candidate(s) kept, %s other candidate(s) of the host dropped", typ, ev.Get("kept"), ev.Get("dropped"))
	assert.NotEqual(t, "0", ev.Get("kept"), "the page's %s has no loopback candidate", typ)
}

// checkMedia lets audio flow for audioTime once both ends receive RTP, then
// asserts ICE and DTLS connected over loopback and RTP received on both
// ends, and logs the counts each way.
func checkMedia(t *testing.T, label string, mh media.Handler, browser *BrowserPeer, call string) {
	t.Helper()
	h, ok := mh.(*webrtc.Handler)
	require.True(t, ok, "our media handler is %T, not *webrtc.Handler", mh)

	start := time.Now()
	var ours webrtc.Stats
	var theirs BrowserStats
	flowing := func() bool {
		ours, theirs = h.Stats(), browser.Stats(t, call)
		return ours.Audio.PacketsReceived > 0 && theirs.PacketsReceived > 0
	}
	deadline := start.Add(10 * time.Second)
	for !flowing() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no audio both ways after 10 s:\n  ours: ICE %s, DTLS %s, received %d packets, sent %d\n  browser: %+v",
				label, ours.ICEConnectionState, ours.DTLSState, ours.Audio.PacketsReceived, ours.Audio.PacketsSent, theirs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	firstAudio := time.Since(start)
	time.Sleep(audioTime)
	ours, theirs = h.Stats(), browser.Stats(t, call)

	t.Logf("%s: audio both ways %v after the call was up; after %v more:", label, firstAudio.Round(time.Millisecond), audioTime)
	pair := "-"
	if ours.SelectedPair != nil {
		pair = ours.SelectedPair.String()
	}
	t.Logf("  sipua  (pion):     ICE %s, DTLS %s, codec %s; sent %d packets / %d bytes, received %d packets / %d bytes; pair %s",
		ours.ICEConnectionState, ours.DTLSState, ours.Audio.Codec,
		ours.Audio.PacketsSent, ours.Audio.BytesSent, ours.Audio.PacketsReceived, ours.Audio.BytesReceived, pair)
	t.Logf("  SIP.js (Chromium): ICE %s (transport %s), DTLS %s, codec sent %s / received %s; sent %d packets / %d bytes, received %d packets / %d bytes; pair %s ↔ %s",
		theirs.ICEConnectionState, theirs.ICEState, theirs.DTLSState, theirs.CodecSent, theirs.CodecReceived,
		theirs.PacketsSent, theirs.BytesSent, theirs.PacketsReceived, theirs.BytesReceived, theirs.LocalCandidate, theirs.RemoteCandidate)

	// Our end.
	assert.Contains(t, []pion.ICEConnectionState{pion.ICEConnectionStateConnected, pion.ICEConnectionStateCompleted},
		ours.ICEConnectionState, "%s: our ICE", label)
	assert.Equal(t, pion.DTLSTransportStateConnected, ours.DTLSState, "%s: our DTLS", label)
	assert.Positive(t, ours.Audio.PacketsReceived, "%s: packets we received", label)
	assert.Positive(t, ours.Audio.BytesReceived, "%s: bytes we received", label)
	assert.Positive(t, ours.Audio.PacketsSent, "%s: packets we sent", label)
	// The browser's end.
	assert.Contains(t, []string{"connected", "completed"}, theirs.ICEConnectionState, "%s: the browser's ICE", label)
	assert.Equal(t, "connected", theirs.DTLSState, "%s: the browser's DTLS", label)
	assert.Equal(t, "connected", theirs.ConnectionState, "%s: the browser's peer connection", label)
	assert.Positive(t, theirs.PacketsReceived, "%s: packets the browser received", label)
	assert.Positive(t, theirs.BytesReceived, "%s: bytes the browser received", label)
	assert.Positive(t, theirs.BytesSent, "%s: bytes the browser sent", label)
	// Both on loopback: the page offers 127.0.0.1 only, pion filters to it.
	assert.True(t, strings.HasPrefix(theirs.LocalCandidate, "127.0.0.1:"), "%s: browser's local candidate %q", label, theirs.LocalCandidate)
	assert.True(t, strings.HasPrefix(theirs.RemoteCandidate, "127.0.0.1:"), "%s: browser's remote candidate %q", label, theirs.RemoteCandidate)
	// After audioTime of 20 ms frames, each side has received far more
	// than one packet; a trickle would mean media broke off.
	assert.Greater(t, ours.Audio.PacketsReceived, uint64(audioTime/(20*time.Millisecond)/2), "%s: we received too few packets", label)
	assert.Greater(t, theirs.PacketsReceived, uint64(audioTime/(20*time.Millisecond)/2), "%s: the browser received too few packets", label)
}
