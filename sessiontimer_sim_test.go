package sip_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
)

func timers(expires, minSE time.Duration, refresher string) sip.SessionTimerOptions {
	return sip.SessionTimerOptions{Expires: expires, MinSE: minSE, Refresher: refresher}
}

// TestSimSessionTimerRefreshByUpdate: the refresher (alice, then bob)
// refreshes a 20 s session with UPDATE every 10 s; the call stays up.
func TestSimSessionTimerRefreshByUpdate(t *testing.T) {
	for _, refresher := range []string{"uac", "uas"} {
		t.Run(refresher, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := siptest.NewNetwork(31)
				defer n.Close()
				require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
				call, inv, errc, _, _ := simCall(t, n,
					sip.UserAgentOptions{SessionTimers: timers(20*time.Second, 10*time.Second, "")},
					sip.UserAgentOptions{SessionTimers: timers(0, 10*time.Second, "")}, sip.InviterOptions{})
				se, _, _ := inv.Request.Header.SessionExpires()
				assert.Equal(t, "20", se.Value)
				assert.True(t, inv.Request.Header.HasToken("Supported", "timer"))
				st := timers(0, 10*time.Second, refresher)
				require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{SessionTimers: &st}))
				require.NoError(t, <-errc)
				time.Sleep(45 * time.Second)
				from, to := "alice→bob", "bob→alice"
				if refresher == "uas" {
					from, to = to, from
				}
				flow := n.Flow()
				assert.Equal(t, 4, count(flow, from+" UPDATE"), "refreshes at 10, 20, 30, 40 s: %q", flow)
				assert.Zero(t, count(flow, to+" UPDATE"))
				assert.Equal(t, sip.SessionEstablished, call.State())
				assert.Equal(t, sip.SessionEstablished, inv.State())
				require.NoError(t, call.Bye(context.Background()))
			})
		})
	}
}

// TestSimSessionTimerExpiry: alice, the refresher, can no longer reach
// bob: bob hangs up with BYE at Session-Expires - min(32, SE/3) s (RFC
// 4028 §10) and says why.
func TestSimSessionTimerExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(32)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		st := timers(30*time.Second, 10*time.Second, "uac")
		call, inv, errc, _, _ := simCall(t, n, sip.UserAgentOptions{SessionTimers: st}, sip.UserAgentOptions{SessionTimers: st}, sip.InviterOptions{})
		require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		start := time.Now()
		require.NoError(t, <-errc)
		time.Sleep(100 * time.Millisecond)
		require.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Down: true}))
		<-inv.Done()
		assert.Equal(t, sip.EndSessionExpired, inv.EndReason().Cause)
		assert.Equal(t, 20*time.Second, time.Since(start).Round(100*time.Millisecond), "30 - min(32, 30/3) s")
		<-call.Done()
		assert.Equal(t, sip.EndRemoteBye, call.EndReason().Cause)
		assert.Equal(t, 1, count(n.Flow(), "bob→alice BYE"))
		assert.Equal(t, "session expired", sip.EndSessionExpired.String())
	})
}

// TestSimSessionTimer422: bob's Min-SE is larger than the interval alice
// asks for: 422, then alice asks again with bob's Min-SE (RFC 4028 §7.4).
func TestSimSessionTimer422(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(33)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		call, inv, errc, _, _ := simCall(t, n,
			sip.UserAgentOptions{SessionTimers: timers(30*time.Second, 10*time.Second, "")},
			sip.UserAgentOptions{SessionTimers: timers(0, 60*time.Second, "")}, sip.InviterOptions{})
		se, _, _ := inv.Request.Header.SessionExpires()
		assert.Equal(t, "60", se.Value)
		assert.Equal(t, "60", inv.Request.Header.Get("Min-SE"))
		require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		require.NoError(t, <-errc)
		time.Sleep(100 * time.Millisecond)
		assert.Equal(t, []string{
			"alice→bob INVITE", "bob→alice 422", "alice→bob ACK",
			"alice→bob INVITE", "bob→alice 200", "alice→bob ACK",
		}, n.Flow())
		time.Sleep(31 * time.Second)
		assert.Equal(t, 1, count(n.Flow(), "alice→bob UPDATE"), "refreshed at 30 s")
		require.NoError(t, call.Bye(context.Background()))
	})
}

// TestSimSessionTimerRefreshByReinvite: the callee (a hand-driven peer)
// does not allow UPDATE: alice refreshes with a re-INVITE repeating her
// SDP unchanged.
func TestSimSessionTimerRefreshByReinvite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(34)
		defer n.Close()
		alice, _ := simUA(t, n, "alice", aliceAddr, sip.UserAgentOptions{SessionTimers: timers(20*time.Second, 10*time.Second, "")})
		bob := newPeer(t, n, "bob", bobAddr)
		call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- call.Invite(context.Background(), sip.InviteOptions{}) }()
		invite := bob.Expect("INVITE")
		ok := invite.Reply(200, sip.WithTestContact(bob), sip.WithTestHeader("Allow", "INVITE, ACK, BYE, CANCEL"),
			sip.WithTestHeader("Require", "timer"), sip.WithTestHeader("Session-Expires", "20;refresher=uac"))
		bob.Expect("ACK")
		require.NoError(t, <-errc)
		start := time.Now()
		assert.ErrorIs(t, call.Update(context.Background(), sip.UpdateOptions{}), sip.ErrInvalidState, "bob's Allow has no UPDATE")
		re := bob.Expect("INVITE").Check("Session-Expires", "20;refresher=uac")
		assert.Equal(t, 10*time.Second, time.Since(start).Round(100*time.Millisecond))
		assert.Equal(t, "bobtag", re.Header.ToTag())
		assert.Equal(t, string(invite.Body), string(re.Body), "the same SDP, version unchanged")
		re.Reply(200, sip.WithTestContact(bob), sip.WithTestHeader("Session-Expires", "20;refresher=uac"))
		ack2 := bob.Expect("ACK")
		assert.Equal(t, mustCSeq(t, re.Request), mustCSeq(t, ack2.Request))
		assert.Equal(t, sip.SessionEstablished, call.State())
		// bob's own re-INVITE without Session-Expires (he does not
		// support timers): alice keeps the timer and refreshes herself.
		reinv, err := message.ParseRequest([]byte("INVITE " + mustContact(t, invite.Request).String() + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + bobAddr.String() + ";branch=z9hG4bKbobre1\r\n" +
			"From: <sip:bob@" + bobAddr.String() + ">;tag=bobtag\r\nTo: " + invite.Header.Get("From") + "\r\n" +
			"Call-ID: " + invite.Header.CallID() + "\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n" +
			"Contact: <sip:bob@" + bobAddr.String() + ">\r\nContent-Type: application/sdp\r\n" +
			"Content-Length: " + fmt.Sprint(len(ok.Body)) + "\r\n\r\n" + string(ok.Body)))
		require.NoError(t, err)
		bob.Send(invite.From, reinv)
		ok3 := bob.FinalResponse(200, "INVITE")
		assert.Equal(t, "20;refresher=uas", ok3.Header.Get("Session-Expires"))
		go func() { _ = call.Bye(context.Background()) }()
		bob.Expect("BYE").Reply(200)
		<-call.Done()
	})
}

// TestSimSessionTimerReinviteRefreshes: a re-INVITE of the application
// (here: hold) carries Session-Expires and refreshes the session too, so
// the next refresh comes half an interval after it.
func TestSimSessionTimerReinviteRefreshes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(35)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		st := timers(20*time.Second, 10*time.Second, "uac")
		call, inv, errc, _, _ := simCall(t, n, sip.UserAgentOptions{SessionTimers: st}, sip.UserAgentOptions{SessionTimers: st}, sip.InviterOptions{})
		require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		require.NoError(t, <-errc)
		time.Sleep(8 * time.Second)
		require.NoError(t, call.Hold(context.Background()))
		time.Sleep(7 * time.Second) // 15 s: the refresh due at 10 s moved to 18 s
		assert.Zero(t, count(n.Flow(), "alice→bob UPDATE"), "%q", n.Flow())
		time.Sleep(4 * time.Second)
		assert.Equal(t, 1, count(n.Flow(), "alice→bob UPDATE"))
		assert.Equal(t, sip.SessionEstablished, inv.State())
		require.NoError(t, call.Bye(context.Background()))
	})
}

func mustContact(t *testing.T, r *message.Request) message.URI {
	c, err := r.Header.Contacts()
	require.NoError(t, err)
	require.Len(t, c, 1)
	return c[0].URI
}
