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

// simCallPair starts alice (caller) and bob, who accepts every call, on n.
func simCallPair(t *testing.T, n *siptest.Network) (alice *sip.UserAgent, invs <-chan *sip.Invitation) {
	t.Helper()
	ch := make(chan *sip.Invitation, 4)
	start := func(name, addr string, d sip.UserAgentDelegate) *sip.UserAgent {
		ua, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI:          "sip:" + name + "@" + addr,
			Transport:    sip.TransportOptions{Listen: []string{"udp://" + addr}, ListenPacket: n.PacketListener(name)},
			Delegate:     d,
			MediaFactory: sip.NoMedia, // pion's sockets have no place in a synctest bubble
		})
		require.NoError(t, err)
		require.NoError(t, ua.Start(context.Background()))
		t.Cleanup(func() { assert.NoError(t, ua.Stop(context.Background())) })
		return ua
	}
	alice = start("alice", aliceAddr.String(), sip.UserAgentDelegate{})
	start("bob", bobAddr.String(), sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
		assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		ch <- inv
	}})
	return alice, ch
}

// TestSimCallLadder: a whole call on the in-memory network, as a ladder.
func TestSimCallLadder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(3)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		alice, invs := simCallPair(t, n)
		call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
		inv := <-invs
		time.Sleep(time.Second)
		assert.Equal(t, sip.SessionEstablished, inv.State())
		require.NoError(t, call.Bye(context.Background()))
		synctest.Wait()
		assert.Equal(t, sip.SessionTerminated, inv.State())
		assert.Equal(t, []string{
			"alice→bob INVITE",
			"bob→alice 180",
			"bob→alice 200",
			"alice→bob ACK",
			"alice→bob BYE",
			"bob→alice 200",
		}, n.Flow())
	})
}

// TestSimLostAckEndsCall: every ACK is lost; bob retransmits his 200 until
// 64*T1 and then hangs up with BYE (RFC 3261 §13.3.1.4).
func TestSimLostAckEndsCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(4)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		alice, invs := simCallPair(t, n)
		call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		// Once the INVITE is through, alice→bob goes dark.
		go func() {
			time.Sleep(15 * time.Millisecond)
			require.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Down: true}))
		}()
		require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
		inv := <-invs
		start := time.Now()
		<-inv.Done()
		assert.Equal(t, sip.EndNoAck, inv.EndReason().Cause)
		assert.InDelta(t, (32 * time.Second).Seconds(), time.Since(start).Seconds(), 0.05)
		<-call.Done()
		assert.Equal(t, sip.EndRemoteBye, call.EndReason().Cause, "alice got bob's BYE")
		retransmits := 0
		for _, f := range n.Flow() {
			if f == "bob→alice 200" {
				retransmits++
			}
		}
		assert.GreaterOrEqual(t, retransmits, 10, "2xx retransmitted until 64*T1")
	})
}

// TestSimInviteTimeout: nobody answers at all; Timer B ends the call
// after 64*T1 with ErrTimeout.
func TestSimInviteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(5)
		defer n.Close()
		alice, _ := simCallPair(t, n)
		call, err := sip.NewInviter(alice, "sip:nobody@192.0.2.99:5060", sip.InviterOptions{})
		require.NoError(t, err)
		start := time.Now()
		err = call.Invite(context.Background(), sip.InviteOptions{})
		require.ErrorIs(t, err, sip.ErrTimeout)
		assert.Equal(t, 32*time.Second, time.Since(start))
		assert.Equal(t, sip.EndTimeout, call.EndReason().Cause)
		assert.Equal(t, sip.SessionTerminated, call.State())
	})
}

// TestSimCancelCrosses200: alice cancels just as bob answers; the 200
// crosses the CANCEL, so alice acknowledges it and hangs up at once (RFC
// 3261 §9.1, §15), and bob's call ends with her BYE.
func TestSimCancelCrosses200(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(6)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 50 * time.Millisecond}))
		ringing := make(chan *sip.Invitation, 1)
		ua := func(name, addr string, d sip.UserAgentDelegate) *sip.UserAgent {
			u, err := sip.NewUserAgent(sip.UserAgentOptions{URI: "sip:" + name + "@" + addr, MediaFactory: sip.NoMedia,
				Transport: sip.TransportOptions{Listen: []string{"udp://" + addr}, ListenPacket: n.PacketListener(name)}, Delegate: d})
			require.NoError(t, err)
			require.NoError(t, u.Start(context.Background()))
			t.Cleanup(func() { assert.NoError(t, u.Stop(context.Background())) })
			return u
		}
		alice := ua("alice", aliceAddr.String(), sip.UserAgentDelegate{})
		ua("bob", bobAddr.String(), sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			assert.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
			ringing <- inv
		}})
		call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- call.Invite(context.Background(), sip.InviteOptions{}) }()
		inv := <-ringing
		time.Sleep(60 * time.Millisecond) // the 180 has reached alice
		// Both at the same instant: bob's 200 and alice's CANCEL cross.
		go func() { assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{})) }()
		assert.NoError(t, call.Cancel(context.Background(), ""))
		assert.ErrorIs(t, <-errc, sip.ErrCanceled)
		<-inv.Done()
		<-call.Done()
		assert.Equal(t, sip.EndCanceled, call.EndReason().Cause)
		assert.Equal(t, sip.EndRemoteBye, inv.EndReason().Cause, "bob had answered: the call ends with alice's BYE")
		flow := n.Flow()
		assert.Contains(t, flow, "alice→bob CANCEL")
		assert.Contains(t, flow, "alice→bob ACK")
		assert.Contains(t, flow, "alice→bob BYE")
		assert.NotContains(t, flow, "bob→alice 481", "a CANCEL that matches a transaction gets 200 (RFC 3261 §9.2)")
		t.Log("\n" + n.Ladder())
	})
}
