package interop

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
)

// TestAttendedTransferWithSIPjs: three parties through Kamailio — our UA
// alice talks to SIP.js bob, consults our UA carol, and transfers bob to
// carol with Replaces: bob's new call replaces carol's call with alice.
func TestAttendedTransferWithSIPjs(t *testing.T) {
	k := StartKamailio(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func(user string, d sip.UserAgentDelegate) *sip.UserAgent {
		ua, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI: "sip:" + user + "@" + Domain, AuthorizationPassword: Users[user],
			Transport:    sip.TransportOptions{Server: k.WSURL()},
			MediaFactory: func(media.SessionInfo) (media.Handler, error) { return fixedSDP{}, nil },
			Delegate:     d,
		})
		require.NoError(t, err)
		require.NoError(t, ua.Start(ctx))
		t.Cleanup(func() { _ = ua.Stop(context.Background()) })
		reg, _ := sip.NewRegisterer(ua, sip.RegistererOptions{})
		require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
		return ua
	}
	carolCalls := make(chan *sip.Invitation, 2)
	start("carol", sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		carolCalls <- inv
	}})
	alice := start("alice", sip.UserAgentDelegate{})
	bob := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "bob"})
	registerPeers(t, bob)

	toBob, err := sip.NewInviter(alice, "sip:bob@"+Domain, sip.InviterOptions{})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- toBob.Invite(ctx, sip.InviteOptions{}) }()
	bc := bob.Expect(t, "invite").Get("call")
	bob.Do(t, "answer", "call", bc)
	require.NoError(t, <-errc)
	bob.Expect(t, "accepted", "call", bc)

	toCarol, err := sip.NewInviter(alice, "sip:carol@"+Domain, sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, toCarol.Invite(ctx, sip.InviteOptions{}))
	consult := <-carolCalls
	require.Eventually(t, func() bool { return consult.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // RFC 5407: let SIP.js finish with the ACK first

	final := make(chan int, 4)
	require.NoError(t, toBob.ReferReplacing(ctx, toCarol.Session, sip.ReferOptions{OnNotify: func(code int, _ bool) {
		if code >= 200 {
			final <- code
		}
	}}))
	bob.Expect(t, "refer", "call", bc)
	bc2 := bob.Expect(t, "calling").Get("call")
	var replacing *sip.Invitation
	select {
	case replacing = <-carolCalls:
	case <-ctx.Done():
		t.Fatalf("carol got no replacing INVITE\n%s", k.Log())
	}
	assert.Same(t, consult.Session, replacing.Replaces, "bob's INVITE carried the Replaces of alice's call with carol")
	bob.Expect(t, "accepted", "call", bc2)
	assert.Equal(t, 200, <-final)
	<-consult.Done()
	assert.Equal(t, sip.EndReplaced, consult.EndReason().Cause)
	<-toCarol.Done()
	require.NoError(t, toBob.Bye(ctx))
	bob.Expect(t, "terminated", "call", bc, "reason", "remote_bye")
	bob.Do(t, "hangup", "call", bc2)
	<-replacing.Done()
	noRouteSetViolations(t, k)
}
