package interop

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/transport"
)

// rtpUser starts one of our UserAgents registered with Kamailio over UDP,
// its calls' media plain RTP/AVP on 127.0.0.1 (media/rtp), each handler
// set up by setup.
func rtpUser(t *testing.T, k *Kamailio, user string, d sip.UserAgentDelegate, setup func(*rtp.Handler)) *sip.UserAgent {
	t.Helper()
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:" + user + "@" + Domain,
		AuthorizationPassword: Users[user],
		Transport:             sip.TransportOptions{Server: server(k, transport.UDP)},
		MediaFactory: rtp.NewFactory(rtp.Config{
			IP:           net.IPv4(127, 0, 0, 1),
			RTCPInterval: 500 * time.Millisecond,
			Setup:        func(h *rtp.Handler, _ media.SessionInfo) { setup(h) },
		}),
		Delegate: d,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() { _ = ua.Stop(context.Background()) })
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
	return ua
}

// TestUserAgentBaresip: our UserAgent (bob, plain RTP with media/rtp)
// and baresip (alice, answermode auto) call each other through Kamailio
// over UDP. In each call audio flows both ways (PCMU, 20 ms packets,
// counted by our handler's Stats and by baresip's audio_debug), baresip
// reads our RTCP (its CALL_RTCP event), an RFC 4733 tone from us reaches
// baresip (its CALL_DTMF_START event carries the digit, its log says
// "received event: '5' (end=1)"), a tone baresip sends with its sndcode
// command reaches our handler's OnDTMF, and each side hangs up once.
func TestUserAgentBaresip(t *testing.T) {
	k := StartKamailio(t)
	b := StartBaresip(t, k, BaresipConfig{User: "alice", AnswerMode: BaresipAuto})
	digits := make(chan dtmfTone, 16)
	invs := make(chan *sip.Invitation, 1)
	ua := rtpUser(t, k, "bob", sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		invs <- inv
	}}, func(h *rtp.Handler) {
		h.SetAudioSource(rtp.Tone(1000))
		h.OnDTMF(func(c rune, d time.Duration) { digits <- dtmfTone{c, d} })
	})

	t.Run("ua_calls_baresip/ua_hangs_up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		call, err := sip.NewInviter(ua, "sip:alice@"+Domain, sip.InviterOptions{})
		require.NoError(t, err)
		require.NoError(t, call.Invite(ctx, sip.InviteOptions{}), k.Log())
		b.Expect(t, "CALL_ESTABLISHED", "direction", "incoming")
		h, ok := call.MediaHandler().(*rtp.Handler)
		require.True(t, ok, "media handler %T", call.MediaHandler())
		mediaWithBaresip(t, ctx, b, call.Session, h, digits, "5", "7")

		require.NoError(t, call.Bye(ctx))
		b.Expect(t, "CALL_CLOSED", "param", "Connection reset by peer")
	})

	t.Run("baresip_calls_ua/baresip_hangs_up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		b.Do(t, "dial", "sip:bob@"+Domain)
		var inv *sip.Invitation
		select {
		case inv = <-invs:
		case <-ctx.Done():
			t.Fatalf("no INVITE from baresip\n%s", k.Log())
		}
		b.Expect(t, "CALL_ESTABLISHED", "direction", "outgoing")
		h, ok := inv.MediaHandler().(*rtp.Handler)
		require.True(t, ok, "media handler %T", inv.MediaHandler())
		mediaWithBaresip(t, ctx, b, inv.Session, h, digits, "#", "9")

		b.Do(t, "hangup")
		b.Expect(t, "CALL_CLOSED", "param", "Connection reset by user")
		select {
		case <-inv.Done():
		case <-ctx.Done():
			t.Fatal("our session did not end on baresip's BYE")
		}
		assert.Equal(t, sip.EndRemoteBye, inv.EndReason().Cause)
	})
	noRouteSetViolations(t, k)
}

// dtmfTone is a tone our handler reported.
type dtmfTone struct {
	tone     rune
	duration time.Duration
}

// mediaWithBaresip checks an established call's media: ~2 s of audio
// both ways, counted on both ends, then one RFC 4733 tone each way.
func mediaWithBaresip(t *testing.T, ctx context.Context, b *Baresip, s *sip.Session, h *rtp.Handler,
	digits <-chan dtmfTone, ours, theirs string) {
	t.Helper()
	callID, _, _ := s.DialogID() // baresip's events carry it as id
	b.Expect(t, "CALL_RTPESTAB", "id", callID, "param", "audio")

	// Audio: at 20 ms a packet, ~2 s make ~100 packets each way.
	start := time.Now()
	var bSent, bReceived int
	for {
		var err error
		bSent, bReceived, err = b.AudioPackets(ctx)
		require.NoError(t, err)
		st := h.Stats()
		if time.Since(start) >= 2*time.Second && st.PacketsReceived >= 75 && bReceived >= 75 {
			break
		}
		if ctx.Err() != nil || time.Since(start) > 8*time.Second {
			t.Fatalf("audio after %v: ours sent %d received %d; baresip sent %d received %d",
				time.Since(start), st.PacketsSent, st.PacketsReceived, bSent, bReceived)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := h.Stats()
	t.Logf("after %v: our UA sent %d RTP packets and received %d (lost %d, jitter %v, codec %v, %v, remote %v; "+
		"RTCP sent %d, received %d, RTT %v); baresip sent %d and received %d", time.Since(start).Round(time.Millisecond),
		st.PacketsSent, st.PacketsReceived, st.PacketsLost, st.Jitter, st.Codec, st.Direction, st.RemoteAddr,
		st.RTCPSent, st.RTCPReceived, st.RoundTripTime, bSent, bReceived)
	// baresip reports each RTCP packet it gets from us (our reports go
	// every 500 ms here).
	ev := b.Expect(t, "CALL_RTCP", "id", callID, "param", "audio")
	t.Logf("baresip got our RTCP: %v", ev.Fields["rtcp_stats"])
	assert.Equal(t, rtp.SendRecv, st.Direction)
	assert.Equal(t, rtp.PCMU, st.Codec)
	assert.True(t, st.DTMF, "telephone-event negotiated")
	assert.True(t, st.Latched, "baresip's RTP arrived from where it was sent to")
	assert.LessOrEqual(t, st.PacketsLost, int64(2))

	// DTMF from us: baresip reports the digit.
	require.NoError(t, s.SendDTMF(ctx, ours, 160*time.Millisecond, sip.DTMFRTP))
	ev = b.Expect(t, "CALL_DTMF_START", "id", callID, "param", ours)
	t.Logf("baresip: %s", ev.Raw)
	b.Expect(t, "CALL_DTMF_END", "id", callID)
	assert.Eventually(t, func() bool { return strings.Contains(b.Log(), "received event: '"+ours+"' (end=1)") },
		2*time.Second, 20*time.Millisecond, "baresip logs the tone")

	// DTMF from baresip: our handler reports the digit.
	b.Do(t, "sndcode", theirs)
	select {
	case d := <-digits:
		assert.Equal(t, theirs, string(d.tone))
		t.Logf("our handler got DTMF %c (%v) from baresip", d.tone, d.duration)
	case <-time.After(5 * time.Second):
		t.Fatalf("no DTMF from baresip; baresip log:\n%s", tail(b.Log(), 40))
	}
	st = h.Stats()
	assert.Equal(t, uint64(1), st.DTMFSent)
	assert.Equal(t, uint64(1), st.DTMFReceived)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
