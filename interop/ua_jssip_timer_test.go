package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
)

// wsUser starts one of our UserAgents (fixed SDP) over WebSocket through
// k, registered, with the given session timers.
func wsUser(t *testing.T, k *Kamailio, user string, st sip.SessionTimerOptions, d sip.UserAgentDelegate) *sip.UserAgent {
	t.Helper()
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI: "sip:" + user + "@" + Domain, AuthorizationPassword: Users[user],
		Transport:     sip.TransportOptions{Server: k.WSURL()},
		MediaFactory:  func(media.SessionInfo) (media.Handler, error) { return fixedSDP{}, nil },
		SessionTimers: st,
		Delegate:      d,
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
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
	return ua
}

// updatesTo counts the UPDATEs Kamailio relayed to ua (it logs every
// request as "METHOD R-URI from …"; ua's Contact is the R-URI).
func updatesTo(k *Kamailio, ua *sip.UserAgent) int {
	return strings.Count(k.Log(), "UPDATE sip:"+ua.ContactURI().User+"@")
}

// TestJsSIPUpdateAndSessionTimers: UPDATE and session timers (RFC 3311,
// 4028) with JsSIP 3.13.8 through Kamailio, both ways round, with a 60 s
// session (JsSIP's floor), each refreshed once at 30 s:
//   - we call JsSIP, which becomes the refresher (our INVITE leaves the
//     choice to it): we answer its UPDATE with an offer and its refresh
//     UPDATE; its 2xx has no Allow, so our own Update is refused locally;
//   - JsSIP calls us and we choose to refresh (refresher=uas): we answer
//     JsSIP's UPDATE with an offer, send it one with ours, and our
//     refresh UPDATE reaches JsSIP at 30 s with Session-Expires.
//
// The two run in parallel: about 33 s in all.
func TestJsSIPUpdateAndSessionTimers(t *testing.T) {
	k := StartKamailio(t)
	st := sip.SessionTimerOptions{Expires: 60 * time.Second, MinSE: 60 * time.Second}
	t.Run("ua-calls-jssip", func(t *testing.T) {
		t.Parallel()
		ua := wsUser(t, k, "carol", st, sip.UserAgentDelegate{})
		peer := StartPeer(t, k, PeerConfig{Kind: JsSIP, User: "dave", SessionTimers: 60})
		registerPeers(t, peer)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
		defer cancel()
		call, err := sip.NewInviter(ua, "sip:dave@"+Domain, sip.InviterOptions{})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
		pc := peer.Expect(t, "invite").Get("call")
		peer.Do(t, "answer", "call", pc)
		require.NoError(t, <-errc)
		start := time.Now()
		peer.Expect(t, "accepted", "call", pc)
		time.Sleep(500 * time.Millisecond) // JsSIP takes the ACK first
		// JsSIP's 2xx has no Allow: we may not send it UPDATE (RFC 3311
		// §5.1); it may send us one, with an offer we answer.
		assert.ErrorIs(t, call.Update(ctx, sip.UpdateOptions{Offer: true}), sip.ErrInvalidState)
		peer.Do(t, "update", "call", pc)
		peer.Expect(t, "update_sent", "call", pc)
		// JsSIP's refresh comes at 30 s; the call is still up after it.
		time.Sleep(time.Until(start.Add(32 * time.Second)))
		assert.Equal(t, sip.SessionEstablished, call.State())
		assert.Equal(t, 2, updatesTo(k, ua), "JsSIP's UPDATE with an offer and its refresh:\n%s", k.Log())
		require.NoError(t, call.Bye(ctx))
		peer.Expect(t, "terminated", "call", pc, "reason", "remote_bye")
	})
	t.Run("jssip-calls-ua", func(t *testing.T) {
		t.Parallel()
		invs := make(chan *sip.Invitation, 1)
		uas := st
		uas.Refresher = "uas"
		wsUser(t, k, "eve", st, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{SessionTimers: &uas}))
			invs <- inv
		}})
		peer := StartPeer(t, k, PeerConfig{Kind: JsSIP, User: "alice", SessionTimers: 60})
		registerPeers(t, peer)
		peer.Do(t, "call", "target", "eve")
		pc := peer.Expect(t, "accepted").Get("call")
		var inv *sip.Invitation
		select {
		case inv = <-invs:
		case <-time.After(10 * time.Second):
			t.Fatal("no call")
		}
		start := time.Now()
		se, _, _ := inv.Request.Header.SessionExpires()
		assert.Equal(t, "60", se.Value)
		time.Sleep(500 * time.Millisecond)
		peer.Do(t, "update", "call", pc)
		peer.Expect(t, "update_sent", "call", pc)
		// JsSIP's INVITE listed UPDATE in Allow: we send one with an offer.
		require.NoError(t, inv.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		peer.Expect(t, "update", "call", pc, "sdp", "true")
		// Our refresh at 30 s.
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		ev, err := peer.WaitEvent(ctx, "update", Field("call", pc))
		require.NoError(t, err)
		assert.InDelta(t, 30, time.Since(start).Seconds(), 2)
		assert.Equal(t, "false", ev.Get("sdp"), "a refresh without a body")
		assert.Equal(t, "60;refresher=uac", ev.Get("sessionExpires"), "we stay the refresher")
		assert.Equal(t, sip.SessionEstablished, inv.State())
		peer.Do(t, "hangup", "call", pc)
		<-inv.Done()
		assert.Equal(t, sip.EndRemoteBye, inv.EndReason().Cause)
	})
	noRouteSetViolations(t, k)
}
