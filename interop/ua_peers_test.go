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
)

// fixedSDP offers and answers one audio SDP and carries no media: the Node
// peers have none either.
type fixedSDP struct{}

const peerSDP = "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

func (fixedSDP) GetDescription(context.Context, media.Options) (media.Description, error) {
	return media.Description{ContentType: "application/sdp", Body: []byte(peerSDP)}, nil
}
func (fixedSDP) SetDescription(context.Context, media.Description, media.Options) error { return nil }
func (fixedSDP) HasDescription(ct string) bool                                          { return ct == "application/sdp" }
func (fixedSDP) SendDTMF(string, time.Duration) error                                   { return media.ErrNotSupported }
func (fixedSDP) Close() error                                                           { return nil }

// TestUserAgentWithPeers: our UserAgent (carol, over WebSocket) calls and
// is called by SIP.js and JsSIP (dave) through Kamailio — answer, reject
// 486, cancel while ringing, BYE from each side — and exchanges MESSAGEs
// with them both ways.
func TestUserAgentWithPeers(t *testing.T) {
	k := StartKamailio(t)
	for _, kind := range []PeerKind{SIPJS, JsSIP} {
		t.Run(string(kind), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			invs := make(chan *sip.Invitation, 4)
			msgs := make(chan string, 4)
			ua, err := sip.NewUserAgent(sip.UserAgentOptions{
				URI:                   "sip:carol@" + Domain,
				AuthorizationPassword: Users["carol"],
				Transport:             sip.TransportOptions{Server: k.WSURL(), TLSConfig: &tls.Config{RootCAs: k.CertPool}},
				MediaFactory:          func(media.SessionInfo) (media.Handler, error) { return fixedSDP{}, nil },
				Delegate: sip.UserAgentDelegate{
					OnInvite:  func(inv *sip.Invitation) { invs <- inv },
					OnMessage: func(m *sip.IncomingRequest) { msgs <- string(m.Request.Body) },
				},
			})
			require.NoError(t, err)
			require.NoError(t, ua.Start(ctx))
			defer ua.Stop(context.Background())
			reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
			require.NoError(t, err)
			require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))

			peer := StartPeer(t, k, PeerConfig{Kind: kind, User: "dave"})
			registerPeers(t, peer)
			target := "sip:dave@" + Domain

			// We call, the peer answers, we hang up.
			call, err := sip.NewInviter(ua, target, sip.InviterOptions{})
			require.NoError(t, err)
			errc := make(chan error, 1)
			go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
			pc := peer.Expect(t, "invite", "from", "sip:carol@"+Domain).Get("call")
			peer.Do(t, "answer", "call", pc)
			require.NoError(t, <-errc, k.Log())
			peer.Expect(t, "accepted", "call", pc)
			require.NoError(t, call.Bye(ctx))
			peer.Expect(t, "terminated", "call", pc, "reason", "remote_bye")

			// The peer calls, we answer, the peer hangs up.
			peer.Do(t, "call", "target", "sip:carol@"+Domain)
			pc = peer.Expect(t, "calling").Get("call")
			inv := <-invs
			require.NoError(t, inv.Progress(ctx, sip.ProgressOptions{}))
			peer.Expect(t, "progress", "call", pc, "code", "180")
			require.NoError(t, inv.Accept(ctx, sip.AcceptOptions{}))
			peer.Expect(t, "accepted", "call", pc)
			require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
			peer.Do(t, "hangup", "call", pc)
			<-inv.Done()
			assert.Equal(t, sip.EndRemoteBye, inv.EndReason().Cause)

			// We reject 486.
			peer.Do(t, "call", "target", "sip:carol@"+Domain)
			pc = peer.Expect(t, "calling").Get("call")
			require.NoError(t, (<-invs).Reject(context.Background(), 486, ""))
			peer.Expect(t, "rejected", "call", pc, "code", "486")

			// We cancel while it rings.
			call, err = sip.NewInviter(ua, target, sip.InviterOptions{})
			require.NoError(t, err)
			go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
			pc = peer.Expect(t, "invite").Get("call")
			require.Eventually(t, func() bool { return call.State() == sip.SessionEstablishing }, 5*time.Second, 10*time.Millisecond)
			time.Sleep(100 * time.Millisecond) // let the 180 arrive: CANCEL follows a provisional response
			require.NoError(t, call.Cancel(ctx, ""))
			assert.ErrorIs(t, <-errc, sip.ErrCanceled)
			peer.Expect(t, "terminated", "call", pc, "reason", "remote_cancel")

			// MESSAGE both ways.
			m, err := sip.NewMessager(ua, target, []byte("hi from sipua"), "text/plain", sip.RequestOptions{})
			require.NoError(t, err)
			require.NoError(t, m.Message(ctx))
			peer.Expect(t, "message", "body", "hi from sipua")
			peer.Do(t, "message", "target", "sip:carol@"+Domain, "body", "hi from "+string(kind))
			select {
			case b := <-msgs:
				assert.Equal(t, "hi from "+string(kind), b)
			case <-ctx.Done():
				t.Fatal("no MESSAGE from the peer")
			}
			noRouteSetViolations(t, k)
		})
	}
}
