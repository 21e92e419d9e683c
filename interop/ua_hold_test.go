package interop

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media/rtp"
)

// TestUserAgentHoldWithPeers: our UA (plain RTP media) calls SIP.js and
// JsSIP through Kamailio and puts them on hold and back; the peers see the
// direction of each re-INVITE's offer.
func TestUserAgentHoldWithPeers(t *testing.T) {
	k := StartKamailio(t)
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI: "sip:carol@" + Domain, AuthorizationPassword: Users["carol"],
		Transport:    sip.TransportOptions{Server: k.WSURL()},
		MediaFactory: rtp.NewFactory(rtp.Config{IP: net.IPv4(127, 0, 0, 1)}),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	defer ua.Stop(context.Background())
	for _, kind := range []PeerKind{SIPJS, JsSIP} {
		t.Run(string(kind), func(t *testing.T) {
			peer := StartPeer(t, k, PeerConfig{Kind: kind, User: "dave"})
			registerPeers(t, peer)
			call, err := sip.NewInviter(ua, "sip:dave@"+Domain, sip.InviterOptions{})
			require.NoError(t, err)
			errc := make(chan error, 1)
			go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
			pc := peer.Expect(t, "invite").Get("call")
			peer.Do(t, "answer", "call", pc)
			require.NoError(t, <-errc)
			peer.Expect(t, "accepted", "call", pc)
			// SIP.js refuses (500) a re-INVITE that comes while it still
			// processes the ACK of the call (RFC 5407 §3.1.5 race): wait a
			// little, as RFC 5407 suggests.
			time.Sleep(500 * time.Millisecond)

			require.NoError(t, call.Hold(ctx))
			require.True(t, call.OnHold())
			peer.Expect(t, "reinvite", "call", pc, "direction", "sendonly")
			time.Sleep(500 * time.Millisecond)
			require.NoError(t, call.Unhold(ctx))
			require.False(t, call.OnHold())
			peer.Expect(t, "reinvite", "call", pc, "direction", "sendrecv")
			require.NoError(t, call.Bye(ctx))
			peer.Expect(t, "terminated", "call", pc, "reason", "remote_bye")
		})
	}
	noRouteSetViolations(t, k)
}
