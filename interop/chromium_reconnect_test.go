package interop

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/webrtc"
)

// TestChromiumCallSurvivesReconnect: our UserAgent (carol, WS, pion)
// calls SIP.js in headless Chromium (eve) through Kamailio; audio flows
// both ways. Then carol's connection is cut: she reconnects, registers
// again and re-INVITEs eve with her new Contact and an ICE-restart offer;
// SIP.js answers it, ICE and DTLS stay or come back up, and audio flows
// both ways again. The browser's BYE at the end reaches carol.
func TestChromiumCallSurvivesReconnect(t *testing.T) {
	k := StartKamailio(t)
	browser := StartBrowserPeer(t, k, BrowserPeerConfig{User: "eve"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:carol@" + Domain,
		AuthorizationPassword: Users["carol"],
		Transport: sip.TransportOptions{Server: k.WSURL(), TLSConfig: &tls.Config{RootCAs: k.CertPool},
			ReconnectMin: 100 * time.Millisecond, ReconnectMax: 500 * time.Millisecond},
		MediaFactory: webrtc.NewFactory(webrtc.Config{
			LoopbackOnly: true,
			Setup:        func(h *webrtc.Handler, _ media.SessionInfo) { h.SetAudioSource(webrtc.Tone(440)) },
		}),
	})
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx))
	defer ua.Stop(context.Background())
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
	browser.Do(t, "register")
	browser.Expect(t, "registered")

	call, err := sip.NewInviter(ua, "sip:eve@"+Domain, sip.InviterOptions{})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
	bc := browser.Expect(t, "invite", "from", "sip:carol@"+Domain).Get("call")
	browser.Do(t, "answer", "call", bc)
	require.NoError(t, <-errc, "our INVITE")
	browser.Expect(t, "accepted", "call", bc)
	browser.Expect(t, "local_sdp", "type", "answer")
	h := call.MediaHandler().(*webrtc.Handler)
	flowing := func(ours, theirs uint64) {
		t.Helper()
		require.Eventually(t, func() bool {
			return h.Stats().Audio.PacketsReceived > ours+20 && browser.Stats(t, bc).PacketsReceived > theirs+20
		}, 10*time.Second, 50*time.Millisecond, "audio does not flow both ways: ours %+v, browser %+v", h.Stats(), browser.Stats(t, bc))
	}
	flowing(0, 0)

	states := make(chan sip.MediaState, 4)
	call.OnMediaStateChange(func(m sip.MediaState) { states <- m })
	cut := time.Now()
	require.NoError(t, ua.Reconnect(ctx))
	for _, want := range []sip.MediaState{sip.MediaInterrupted, sip.MediaRestored} {
		select {
		case got := <-states:
			require.Equal(t, want, got)
		case <-ctx.Done():
			t.Fatalf("no media %v event\n%s", want, k.Log())
		}
	}
	t.Logf("call restored %v after the cut", time.Since(cut).Round(time.Millisecond))
	ev := browser.Expect(t, "local_sdp", "type", "answer")
	t.Logf("SIP.js answered the re-INVITE (%s loopback candidates)", ev.Get("kept"))
	flowing(h.Stats().Audio.PacketsReceived, browser.Stats(t, bc).PacketsReceived)
	st := h.Stats()
	t.Logf("after the ICE restart: ours ICE %s DTLS %s, received %d packets; browser %+v",
		st.ICEConnectionState, st.DTLSState, st.Audio.PacketsReceived, browser.Stats(t, bc))

	browser.Do(t, "hangup", "call", bc)
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatalf("the browser's BYE did not reach us\n%s", k.Log())
	}
	assert.Equal(t, sip.EndRemoteBye, call.EndReason().Cause)
	noRouteSetViolations(t, k)
}
