package sip_test

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
	"github.com/sipua/sip/siptest/sipserver"
)

// lifeUA starts a UserAgent called name on n at addr (signalling only),
// with opts applied on top; it is stopped when the test ends.
func lifeUA(t *testing.T, n *siptest.Network, name string, addr netip.AddrPort, d sip.UserAgentDelegate, opts ...func(*sip.UserAgentOptions)) *sip.UserAgent {
	t.Helper()
	o := sip.UserAgentOptions{
		URI:          "sip:" + name + "@" + addr.String(),
		Transport:    sip.TransportOptions{Listen: []string{"udp://" + addr.String()}, ListenPacket: n.PacketListener(name)},
		Delegate:     d,
		MediaFactory: sip.NoMedia,
	}
	for _, f := range opts {
		f(&o)
	}
	ua, err := sip.NewUserAgent(o)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, ua.Stop(context.Background())) })
	return ua
}

// stopFrom calls ua.Stop from a callback and reports its result.
func stopFrom(ua *sip.UserAgent, res chan<- error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res <- ua.Stop(ctx)
}

// awaitStop fails the test unless Stop, called from a callback, returned.
func awaitStop(t *testing.T, ua *sip.UserAgent, res <-chan error) {
	t.Helper()
	select {
	case err := <-res:
		assert.NoError(t, err)
		assert.Equal(t, sip.Stopped, ua.State())
	case <-time.After(time.Minute):
		t.Fatal("Stop called from a callback did not return")
	}
}

// TestSimStopFromCallbacks: Stop may be called from every kind of
// callback (issue 17, finding 2): it returns, and stops the UserAgent.
func TestSimStopFromCallbacks(t *testing.T) {
	call := func(t *testing.T, alice *sip.UserAgent, opts sip.InviteOptions) *sip.Inviter {
		inv, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = inv.Invite(ctx, opts)
		}()
		return inv
	}
	accept := sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		_ = inv.Accept(context.Background(), sip.AcceptOptions{})
	}}

	t.Run("UserAgentState", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(1)
			defer n.Close()
			res := make(chan error, 1)
			alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{})
			alice.OnStateChange(func(s sip.UserAgentState) {
				if s == sip.Started {
					stopFrom(alice, res)
				}
			})
			require.NoError(t, alice.Start(context.Background()))
			awaitStop(t, alice, res)
		})
	})
	t.Run("SessionState", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(2)
			defer n.Close()
			res := make(chan error, 1)
			alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{})
			bob := lifeUA(t, n, "bob", bobAddr, accept)
			require.NoError(t, alice.Start(context.Background()))
			require.NoError(t, bob.Start(context.Background()))
			inv, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
			require.NoError(t, err)
			inv.OnStateChange(func(s sip.SessionState) {
				if s == sip.SessionEstablished {
					stopFrom(alice, res)
				}
			})
			require.NoError(t, inv.Invite(context.Background(), sip.InviteOptions{}))
			awaitStop(t, alice, res)
			<-inv.Done()
			assert.Equal(t, sip.EndLocalBye, inv.EndReason().Cause)
		})
	})
	t.Run("OnInvite", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(3)
			defer n.Close()
			res := make(chan error, 1)
			var bob *sip.UserAgent
			alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{})
			bob = lifeUA(t, n, "bob", bobAddr, sip.UserAgentDelegate{OnInvite: func(*sip.Invitation) { stopFrom(bob, res) }})
			require.NoError(t, alice.Start(context.Background()))
			require.NoError(t, bob.Start(context.Background()))
			inv := call(t, alice, sip.InviteOptions{})
			awaitStop(t, bob, res)
			<-inv.Done()
			assert.Equal(t, sip.EndRejected, inv.EndReason().Cause, "bob's Stop rejects the ringing call")
		})
	})
	t.Run("OnProgress", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(4)
			defer n.Close()
			res := make(chan error, 1)
			alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{})
			bob := lifeUA(t, n, "bob", bobAddr, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
				_ = inv.Progress(context.Background(), sip.ProgressOptions{})
			}})
			require.NoError(t, alice.Start(context.Background()))
			require.NoError(t, bob.Start(context.Background()))
			inv := call(t, alice, sip.InviteOptions{OnProgress: func(*message.Response) { stopFrom(alice, res) }})
			awaitStop(t, alice, res)
			<-inv.Done()
		})
	})
	t.Run("OnMessage", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(5)
			defer n.Close()
			res := make(chan error, 1)
			var bob *sip.UserAgent
			alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{})
			bob = lifeUA(t, n, "bob", bobAddr, sip.UserAgentDelegate{OnMessage: func(r *sip.IncomingRequest) {
				assert.NoError(t, r.Accept(context.Background()))
				stopFrom(bob, res)
			}})
			require.NoError(t, alice.Start(context.Background()))
			require.NoError(t, bob.Start(context.Background()))
			require.NoError(t, sendMessage(context.Background(), t, alice, "hi"))
			awaitStop(t, bob, res)
		})
	})
	t.Run("RegistererState", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(6)
			defer n.Close()
			srv, err := sipserver.New(sipserver.Options{Domain: "sipua.test", ListenPacket: n.PacketListener("registrar")})
			require.NoError(t, err)
			defer srv.Close()
			_, err = srv.Listen(t.Context(), "udp", "192.0.2.10:5060")
			require.NoError(t, err)
			res := make(chan error, 1)
			alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{}, func(o *sip.UserAgentOptions) { o.URI = "sip:alice@sipua.test" })
			require.NoError(t, alice.Start(context.Background()))
			reg, err := sip.NewRegisterer(alice, sip.RegistererOptions{Registrar: "sip:192.0.2.10:5060"})
			require.NoError(t, err)
			reg.OnStateChange(func(s sip.RegistererState) {
				if s == sip.Registered {
					stopFrom(alice, res)
				}
			})
			require.NoError(t, reg.Register(context.Background(), sip.RegisterOptions{}))
			awaitStop(t, alice, res)
			assert.Empty(t, srv.Bindings("alice"), "Stop unregistered")
		})
	})
	t.Run("SubscriptionState", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(7)
			defer n.Close()
			res := make(chan error, 1)
			alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{})
			bob := lifeUA(t, n, "bob", bobAddr, sip.UserAgentDelegate{OnSubscribe: func(s *sip.IncomingSubscription) {
				assert.NoError(t, s.Accept(context.Background(), sip.AcceptSubscriptionOptions{ContentType: "text/plain", Body: []byte("idle")}))
			}})
			require.NoError(t, alice.Start(context.Background()))
			require.NoError(t, bob.Start(context.Background()))
			sub, err := sip.NewSubscriber(alice, "sip:bob@"+bobAddr.String(), "presence", sip.SubscriberOptions{})
			require.NoError(t, err)
			sub.OnStateChange(func(s sip.SubscriptionState) {
				if s == sip.SubscriptionActive {
					stopFrom(alice, res)
				}
			})
			require.NoError(t, sub.Subscribe(context.Background(), sip.SubscribeOptions{}))
			awaitStop(t, alice, res)
			assert.Equal(t, sip.SubscriptionTerminated, sub.State())
		})
	})
}
