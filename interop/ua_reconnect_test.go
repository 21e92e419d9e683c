package interop

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/transport"
)

// reconnectUser starts one of our UserAgents with plain RTP media on 127.0.0.1
// and registers it with Kamailio.
func reconnectUser(t *testing.T, k *Kamailio, user string, proto transport.Proto, d sip.UserAgentDelegate) (*sip.UserAgent, *sip.Registerer) {
	t.Helper()
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:" + user + "@" + Domain,
		AuthorizationPassword: Users[user],
		Transport: sip.TransportOptions{
			Server:       server(k, proto),
			ReconnectMin: 100 * time.Millisecond, ReconnectMax: 500 * time.Millisecond,
		},
		MediaFactory: rtp.NewFactory(rtp.Config{IP: net.IPv4(127, 0, 0, 1), RTCPInterval: 500 * time.Millisecond}),
		Delegate:     d,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ua.Stop(ctx)
	})
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}), "%s", k.Log())
	return ua, reg
}

func rtpStats(s *sip.Session) rtp.Stats { return s.MediaHandler().(*rtp.Handler).Stats() }

// waitPackets waits until both ends have received more than n RTP packets
// beyond the counts given.
func waitPackets(t *testing.T, a, b *sip.Session, fromA, fromB uint64, n uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		return rtpStats(a).PacketsReceived > fromA+n && rtpStats(b).PacketsReceived > fromB+n
	}, 5*time.Second, 20*time.Millisecond, "media does not flow: alice %+v bob %+v", rtpStats(a), rtpStats(b))
}

// TestCallSurvivesKamailioOutage: our alice (over WS or TCP) is in a call
// with our bob (UDP) through Kamailio, plain RTP both ways. Her connection
// is cut (she reconnects), then Kamailio is killed and restarted (losing
// its registrations). Each time alice reconnects, registers again and
// re-INVITEs bob with her new Contact; the call stays Established, RTP
// flows again, and bob's BYE at the end reaches her over the new
// connection. The time from Kamailio's return to alice's registration and
// to the call's restoration is measured (issue 13: under 5 s).
//
// What the restart costs, with this configuration (usrloc in memory, no
// dialog module): the registrations are lost, so the UserAgent registers
// again on its new connection; in-dialog requests need no state, since
// Kamailio's Record-Route entries carry all it needs (r2, transport, and
// the WS client's alias in its Contact), so the re-INVITE and the BYE are
// routed by the restarted Kamailio as before. When both ends of a call are
// connection-bound clients of the restarted proxy (WS or TCP), each one's
// remote target names the other's dead connection and neither re-INVITE
// is delivered (tried once by hand with two WS clients: both calls ended
// with EndConnectionLost after CallRecoveryTimeout). Surviving that needs
// GRUU Contacts (RFC 5627) resolved by the proxy's location lookup for
// in-dialog requests, which neither side does yet.
func TestCallSurvivesKamailioOutage(t *testing.T) {
	k := StartKamailio(t)
	for _, proto := range []transport.Proto{transport.WS, transport.TCP} {
		t.Run(string(proto), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			invs := make(chan *sip.Invitation, 1)
			_, _ = reconnectUser(t, k, "bob", transport.UDP, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
				assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
				invs <- inv
			}})
			alice, reg := reconnectUser(t, k, "alice", proto, sip.UserAgentDelegate{})
			regStates := make(chan sip.RegistererState, 16)
			reg.OnStateChange(func(s sip.RegistererState) { regStates <- s })

			call, err := sip.NewInviter(alice, "sip:bob@"+Domain, sip.InviterOptions{})
			require.NoError(t, err)
			require.NoError(t, call.Invite(ctx, sip.InviteOptions{}), "%s", k.Log())
			inv := <-invs
			require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
			media := make(chan sip.MediaState, 8)
			call.OnMediaStateChange(func(m sip.MediaState) { media <- m })
			waitPackets(t, call.Session, inv.Session, 0, 0, 10)

			expect := func(want sip.MediaState) time.Time {
				t.Helper()
				select {
				case got := <-media:
					require.Equal(t, want, got)
				case <-ctx.Done():
					t.Fatalf("no media %v event\n%s", want, k.Log())
				}
				return time.Now()
			}

			// (a) The connection is cut under the call.
			contact := alice.ContactURI()
			require.NoError(t, alice.Reconnect(ctx))
			expect(sip.MediaInterrupted)
			expect(sip.MediaRestored)
			assert.Equal(t, sip.SessionEstablished, call.State())
			t.Logf("%s: call moved to a new connection (Contact %s, was %s)", proto, alice.ContactURI(), contact)
			a, b := rtpStats(call.Session).PacketsReceived, rtpStats(inv.Session).PacketsReceived
			waitPackets(t, call.Session, inv.Session, a, b, 10)

			// (b) Kamailio is killed and comes back on the same ports.
			for len(regStates) > 0 {
				<-regStates
			}
			k.Stop(t)
			expect(sip.MediaInterrupted)
			k.Start(t)
			back := time.Now()
			var registered time.Duration
			for registered == 0 {
				select {
				case s := <-regStates:
					if s == sip.Registered {
						registered = time.Since(back)
					}
				case <-ctx.Done():
					t.Fatalf("alice did not register again\n%s", k.Log())
				}
			}
			restored := expect(sip.MediaRestored).Sub(back)
			t.Logf("%s: Kamailio back; alice registered again after %v, call restored after %v",
				proto, registered.Round(time.Millisecond), restored.Round(time.Millisecond))
			assert.Less(t, registered, 5*time.Second, "registered again within 5 s of Kamailio's return")
			assert.Less(t, restored, 5*time.Second, "call restored within 5 s of Kamailio's return")
			assert.Equal(t, sip.SessionEstablished, call.State())
			assert.Equal(t, sip.SessionEstablished, inv.State())
			a, b = rtpStats(call.Session).PacketsReceived, rtpStats(inv.Session).PacketsReceived
			waitPackets(t, call.Session, inv.Session, a, b, 10)

			// bob hangs up; his BYE (Record-Route through the restarted
			// Kamailio) reaches alice at her new Contact.
			require.NoError(t, inv.Bye(ctx), "%s", k.Log())
			select {
			case <-call.Done():
			case <-ctx.Done():
				t.Fatalf("alice did not get bob's BYE\n%s", k.Log())
			}
			assert.Equal(t, sip.EndRemoteBye, call.EndReason().Cause)
			assert.Empty(t, k.RouteSetViolations())
		})
	}
}
