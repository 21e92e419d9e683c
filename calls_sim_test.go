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
