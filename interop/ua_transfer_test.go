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

// TestUserAgentTransfers: blind transfers through Kamailio with the Node
// peers. Our UA (carol) transfers a SIP.js caller (alice) to a JsSIP
// callee (bob); then our UA is the transferee of a SIP.js REFER.
func TestUserAgentTransfers(t *testing.T) {
	k := StartKamailio(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	invs := make(chan *sip.Invitation, 2)
	referrals := make(chan *sip.Referral, 1)
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI: "sip:carol@" + Domain, AuthorizationPassword: Users["carol"],
		Transport:    sip.TransportOptions{Server: k.WSURL()},
		MediaFactory: func(media.SessionInfo) (media.Handler, error) { return fixedSDP{}, nil },
		Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			inv.SetDelegate(sip.SessionDelegate{OnRefer: func(r *sip.Referral) { referrals <- r }})
			invs <- inv
		}},
	})
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx))
	defer ua.Stop(context.Background())
	reg, _ := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
	alice := StartPeer(t, k, PeerConfig{Kind: SIPJS, User: "alice"})
	bob := StartPeer(t, k, PeerConfig{Kind: JsSIP, User: "bob"})
	registerPeers(t, alice, bob)

	// SIP.js calls us; we transfer it to JsSIP.
	alice.Do(t, "call", "target", "sip:carol@"+Domain)
	ac := alice.Expect(t, "calling").Get("call")
	inv := <-invs
	require.NoError(t, inv.Accept(ctx, sip.AcceptOptions{}))
	alice.Expect(t, "accepted", "call", ac)
	require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
	final := make(chan int, 8)
	require.NoError(t, inv.Refer(ctx, "sip:bob@"+Domain, sip.ReferOptions{OnNotify: func(code int, last bool) {
		t.Logf("NOTIFY %d (last %v)", code, last)
		if code >= 200 {
			final <- code
		}
	}}))
	alice.Expect(t, "refer", "call", ac, "target", "sip:bob@"+Domain)
	ac2 := alice.Expect(t, "calling").Get("call")
	bc := bob.Expect(t, "invite", "from", "sip:alice@"+Domain).Get("call")
	bob.Do(t, "answer", "call", bc)
	alice.Expect(t, "accepted", "call", ac2)
	select {
	case code := <-final:
		assert.Equal(t, 200, code, "the transfer succeeded")
	case <-ctx.Done():
		t.Fatal("no final NOTIFY")
	}
	require.NoError(t, inv.Bye(ctx))
	alice.Expect(t, "terminated", "call", ac, "reason", "remote_bye")
	hangUp(t, alice, ac2, bob, bc)

	// SIP.js calls us again and refers us to JsSIP: we follow.
	alice.Do(t, "call", "target", "sip:carol@"+Domain)
	ac = alice.Expect(t, "calling").Get("call")
	inv = <-invs
	require.NoError(t, inv.Accept(ctx, sip.AcceptOptions{}))
	alice.Expect(t, "accepted", "call", ac)
	require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
	alice.Do(t, "refer", "call", ac, "target", "sip:bob@"+Domain)
	r := <-referrals
	assert.Equal(t, "bob", r.ReferTo.URI.User)
	go func() {
		bc := bob.Expect(t, "invite", "from", "sip:carol@"+Domain).Get("call")
		bob.Do(t, "answer", "call", bc)
	}()
	call, err := r.Accept(ctx, sip.InviterOptions{})
	require.NoError(t, err)
	alice.Expect(t, "notify", "call", ac, "body", "SIP/2.0 200 OK")
	alice.Do(t, "hangup", "call", ac)
	<-inv.Done()
	require.NoError(t, call.Bye(ctx))
	noRouteSetViolations(t, k)
}
