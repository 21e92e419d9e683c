package main

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/siptest"
)

// TestWithTheKit is the README's "Testing your application" example: an
// application's call handling tested on siptest's in-memory network with
// loss, on virtual time (TestREADME checks that the README shows it).
func TestWithTheKit(t *testing.T) {
	// kit begins
	synctest.Test(t, func(t *testing.T) { // virtual time: timers fire at once
		n := siptest.NewNetwork(1) // same seed, same losses: reproducible
		defer n.Close()
		alice, bob := siptest.Addr("192.0.2.1:5060"), siptest.Addr("192.0.2.2:5060")
		require.NoError(t, n.SetLinks(alice, bob, siptest.Link{Loss: 0.3, Delay: 40 * time.Millisecond}))
		ua := func(name string, addr string, d sip.UserAgentDelegate) *sip.UserAgent {
			u, err := sip.NewUserAgent(sip.UserAgentOptions{
				URI:          "sip:" + name + "@" + addr,
				Transport:    sip.TransportOptions{Listen: []string{"udp://" + addr}, ListenPacket: n.PacketListener(name)},
				MediaFactory: sip.NoMedia, // signalling only: no real sockets in the bubble
				Delegate:     d,
			})
			require.NoError(t, err)
			require.NoError(t, u.Start(t.Context()))
			t.Cleanup(func() { _ = u.Stop(context.Background()) })
			return u
		}
		// The application under test: answers every call.
		ua("bob", bob.String(), sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			go func() { _ = inv.Accept(context.Background(), sip.AcceptOptions{}) }()
		}})
		call, err := sip.NewInviter(ua("alice", alice.String(), sip.UserAgentDelegate{}), "sip:bob@"+bob.String(), sip.InviterOptions{})
		require.NoError(t, err)
		require.NoError(t, call.Invite(t.Context(), sip.InviteOptions{})) // retransmitted through the loss
		require.NoError(t, call.Bye(t.Context()))
		t.Log("\n" + n.Ladder()) // every datagram, lost ones marked
	})
	// kit ends
}
