package sip_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/siptest"
)

// simCall sets up alice calling bob; bob's invitation comes back once it
// arrives and the Invite's outcome on errc.
func simCall(t *testing.T, n *siptest.Network, aliceOpts, bobOpts sip.UserAgentOptions, io sip.InviterOptions) (call *sip.Inviter, inv *sip.Invitation, errc <-chan error, aliceMedia, bobMedia func() *recSDP) {
	t.Helper()
	alice, am := simUA(t, n, "alice", aliceAddr, aliceOpts)
	invs := make(chan *sip.Invitation, 1)
	bobOpts.Delegate.OnInvite = func(inv *sip.Invitation) { invs <- inv }
	_, bm := simUA(t, n, "bob", bobAddr, bobOpts)
	call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), io)
	require.NoError(t, err)
	ec := make(chan error, 1)
	go func() { ec <- call.Invite(context.Background(), sip.InviteOptions{}) }()
	return call, <-invs, ec, am, bm
}

// TestSimUpdateEarlyAndConfirmed: UPDATE with and without an offer, in
// the early dialog (after the reliable 183 and its PRACK) and in the
// confirmed one, from both sides; the answers come through the media
// handlers.
func TestSimUpdateEarlyAndConfirmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(21)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		call, inv, errc, am, bm := simCall(t, n, sip.UserAgentOptions{}, sip.UserAgentOptions{}, sip.InviterOptions{})
		require.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{Reliable: true, EarlyMedia: true}))
		synctest.Wait()
		time.Sleep(100 * time.Millisecond) // the PRACK is through
		// Early: bob offers, alice answers; then alice offers, bob answers.
		require.NoError(t, inv.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		require.NoError(t, call.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		require.NoError(t, <-errc)
		time.Sleep(100 * time.Millisecond)
		// Confirmed: with and without an offer, both ways.
		require.NoError(t, call.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		require.NoError(t, inv.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		require.NoError(t, call.Update(context.Background(), sip.UpdateOptions{}))
		require.NoError(t, inv.Update(context.Background(), sip.UpdateOptions{}))
		a, b := am().sdp(), bm().sdp()
		// alice: bob's early answer, bob's early offer, bob's answer,
		// bob's answer, bob's offer.
		assert.Equal(t, []string{b, b, b, b, b}, am().given())
		assert.Equal(t, []string{a, a, a, a, a}, bm().given())
		assert.Equal(t, 6, count(n.Flow(), "alice→bob UPDATE")+count(n.Flow(), "bob→alice UPDATE"))
		assert.Equal(t, sip.SessionEstablished, call.State())
		assert.Equal(t, sip.SessionEstablished, inv.State())
		require.NoError(t, call.Bye(context.Background()))
		t.Log("\n" + n.Ladder())
	})
}

// TestSimUpdateGlare: both sides send an UPDATE with an offer at once:
// each answers the other's with 491 (RFC 3311 §5.2) and both calls stay
// up; an UPDATE before any dialog fails at once.
func TestSimUpdateGlare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(22)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 50 * time.Millisecond}))
		call, inv, errc, _, _ := simCall(t, n, sip.UserAgentOptions{}, sip.UserAgentOptions{}, sip.InviterOptions{})
		assert.ErrorIs(t, call.Update(context.Background(), sip.UpdateOptions{}), sip.ErrInvalidState, "no dialog yet")
		require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		require.NoError(t, <-errc)
		time.Sleep(200 * time.Millisecond)
		e1 := make(chan error, 1)
		go func() { e1 <- call.Update(context.Background(), sip.UpdateOptions{Offer: true}) }()
		e2 := inv.Update(context.Background(), sip.UpdateOptions{Offer: true})
		for _, err := range []error{<-e1, e2} {
			var re *sip.ResponseError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, 491, re.StatusCode)
		}
		// Afterwards one goes through.
		require.NoError(t, call.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		assert.Equal(t, sip.SessionEstablished, inv.State())
		require.NoError(t, inv.Bye(context.Background()))
		t.Log("\n" + n.Ladder())
	})
}
