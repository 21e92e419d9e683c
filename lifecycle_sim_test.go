package sip_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
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

// TestSimStopEndsEveryCall: after Stop returns, every call of the
// UserAgent has ended, whatever its state and however little the peer
// answers, and nothing is left running (issue 17, finding 3).
func TestSimStopEndsEveryCall(t *testing.T) {
	type setup struct {
		name string
		// run brings alice's call into the state and returns it.
		run  func(t *testing.T, n *siptest.Network, alice, bob *sip.UserAgent, bobInvs <-chan *sip.Invitation, aliceInvs <-chan *sip.Invitation) *sip.Session
		want []sip.EndCause
	}
	dark := func(t *testing.T, n *siptest.Network) {
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Down: true}))
	}
	cases := []setup{
		{name: "BYE unanswered", want: []sip.EndCause{sip.EndStopped},
			run: func(t *testing.T, n *siptest.Network, alice, bob *sip.UserAgent, bobInvs, _ <-chan *sip.Invitation) *sip.Session {
				call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
				require.NoError(t, err)
				go func() {
					inv := <-bobInvs
					assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
				}()
				require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
				time.Sleep(time.Second)
				dark(t, n)
				return call.Session
			}},
		{name: "early, CANCEL unanswered", want: []sip.EndCause{sip.EndStopped},
			run: func(t *testing.T, n *siptest.Network, alice, bob *sip.UserAgent, bobInvs, _ <-chan *sip.Invitation) *sip.Session {
				call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
				require.NoError(t, err)
				errc := make(chan error, 1)
				go func() { errc <- call.Invite(context.Background(), sip.InviteOptions{}) }()
				inv := <-bobInvs
				require.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
				time.Sleep(time.Second)
				dark(t, n)
				t.Cleanup(func() { assert.ErrorIs(t, <-errc, sip.ErrStopped) })
				return call.Session
			}},
		{name: "ringing incoming", want: []sip.EndCause{sip.EndRejected, sip.EndStopped},
			run: func(t *testing.T, n *siptest.Network, alice, bob *sip.UserAgent, _, aliceInvs <-chan *sip.Invitation) *sip.Session {
				call, err := sip.NewInviter(bob, "sip:alice@"+aliceAddr.String(), sip.InviterOptions{})
				require.NoError(t, err)
				go func() { _ = call.Invite(context.Background(), sip.InviteOptions{}) }()
				inv := <-aliceInvs
				require.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
				time.Sleep(time.Second)
				dark(t, n)
				return inv.Session
			}},
		{name: "2xx not acknowledged", want: []sip.EndCause{sip.EndStopped},
			run: func(t *testing.T, n *siptest.Network, alice, bob *sip.UserAgent, _, aliceInvs <-chan *sip.Invitation) *sip.Session {
				call, err := sip.NewInviter(bob, "sip:alice@"+aliceAddr.String(), sip.InviterOptions{})
				require.NoError(t, err)
				go func() { _ = call.Invite(context.Background(), sip.InviteOptions{}) }()
				inv := <-aliceInvs
				require.NoError(t, n.SetLink(bobAddr, aliceAddr, siptest.Link{Down: true}))
				require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
				return inv.Session
			}},
		{name: "re-INVITE pending", want: []sip.EndCause{sip.EndStopped},
			run: func(t *testing.T, n *siptest.Network, alice, bob *sip.UserAgent, bobInvs, _ <-chan *sip.Invitation) *sip.Session {
				call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
				require.NoError(t, err)
				go func() {
					inv := <-bobInvs
					assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
				}()
				require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
				time.Sleep(time.Second)
				dark(t, n)
				errc := make(chan error, 1)
				go func() { errc <- call.Reinvite(context.Background(), sip.ReinviteOptions{}) }()
				time.Sleep(100 * time.Millisecond)
				t.Cleanup(func() { assert.Error(t, <-errc) })
				return call.Session
			}},
		{name: "UPDATE pending", want: []sip.EndCause{sip.EndStopped},
			run: func(t *testing.T, n *siptest.Network, alice, bob *sip.UserAgent, bobInvs, _ <-chan *sip.Invitation) *sip.Session {
				call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
				require.NoError(t, err)
				go func() {
					inv := <-bobInvs
					assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
				}()
				require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
				time.Sleep(time.Second)
				dark(t, n)
				errc := make(chan error, 1)
				go func() { errc <- call.Update(context.Background(), sip.UpdateOptions{}) }()
				time.Sleep(100 * time.Millisecond)
				t.Cleanup(func() { assert.Error(t, <-errc) })
				return call.Session
			}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ignore := goleak.IgnoreCurrent()
				n := siptest.NewNetwork(uint64(10 + i))
				defer n.Close()
				require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
				aliceInvs := make(chan *sip.Invitation, 1)
				bobInvs := make(chan *sip.Invitation, 1)
				alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) { aliceInvs <- inv }})
				bob := lifeUA(t, n, "bob", bobAddr, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) { bobInvs <- inv }})
				require.NoError(t, alice.Start(context.Background()))
				require.NoError(t, bob.Start(context.Background()))
				s := c.run(t, n, alice, bob, bobInvs, aliceInvs)

				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				require.NoError(t, alice.Stop(ctx))
				select {
				case <-s.Done():
				default:
					t.Fatalf("Stop returned, the call is still %v", s.State())
				}
				assert.Equal(t, sip.SessionTerminated, s.State())
				assert.Contains(t, c.want, s.EndReason().Cause, "%v", s.EndReason())
				// Nothing of alice's goes on: no retransmission after Stop.
				before := len(n.Flow())
				time.Sleep(time.Minute)
				for _, f := range n.Flow()[before:] {
					assert.NotContains(t, f, "alice→", "alice sent after Stop")
				}
				// With bob stopped too, nothing of either is left running.
				ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel2()
				require.NoError(t, bob.Stop(ctx2))
				goleak.VerifyNone(t, ignore)
			})
		})
	}
}

// TestSimStopWaitsForAck: Stop on a call whose 200 is not yet
// acknowledged sends its BYE only once the ACK is in, and the 200 is not
// retransmitted after the BYE (RFC 3261 §15; issue 17, finding 4).
func TestSimStopWaitsForAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(20)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 300 * time.Millisecond}))
		bobInvs := make(chan *sip.Invitation, 1)
		alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{})
		bob := lifeUA(t, n, "bob", bobAddr, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) { bobInvs <- inv }})
		require.NoError(t, alice.Start(context.Background()))
		require.NoError(t, bob.Start(context.Background()))
		call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		go func() { _ = call.Invite(context.Background(), sip.InviteOptions{}) }()
		inv := <-bobInvs
		require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, bob.Stop(ctx))
		assert.Equal(t, sip.EndLocalBye, inv.EndReason().Cause)
		assert.GreaterOrEqual(t, time.Since(start), 600*time.Millisecond, "the BYE waited for the ACK")
		<-call.Done()
		assert.Equal(t, sip.EndRemoteBye, call.EndReason().Cause)
		flow := n.Flow()
		ack, bye := -1, -1
		for i, f := range flow {
			switch {
			case f == "alice→bob ACK" && ack < 0:
				ack = i
			case f == "bob→alice BYE" && bye < 0:
				bye = i
			}
		}
		require.NotEqual(t, -1, bye, "BYE sent")
		assert.Less(t, ack, bye, "the ACK came before the BYE:\n%s", n.Ladder())
		for _, f := range flow[bye:] {
			assert.NotEqual(t, "bob→alice 200", f, "the 2xx was retransmitted after the BYE")
		}
	})
}

// TestSimByeOutcomeWhenStoppedOnDone: an application that stops the
// UserAgent as soon as Done closes still gets its BYE's outcome from Bye
// (issue 17, finding 5).
func TestSimByeOutcomeWhenStoppedOnDone(t *testing.T) {
	for i := range 200 {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(uint64(100 + i))
			defer n.Close()
			bobInvs := make(chan *sip.Invitation, 1)
			alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{})
			bob := lifeUA(t, n, "bob", bobAddr, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
				assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
				bobInvs <- inv
			}})
			require.NoError(t, alice.Start(context.Background()))
			require.NoError(t, bob.Start(context.Background()))
			call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
			require.NoError(t, err)
			require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
			<-bobInvs
			stopped := make(chan struct{})
			go func() {
				<-call.Done()
				assert.NoError(t, alice.Stop(context.Background()))
				close(stopped)
			}()
			assert.NoError(t, call.Bye(context.Background()), "run %d", i)
			<-stopped
		})
	}
}

// TestSimNoAnswerTimeout: the callee rings and never answers; after
// DefaultNoAnswerTimeout (Timer C) the INVITE is canceled and Invite fails
// with ErrTimeout, the session ending with EndNoAnswer (issue 17,
// finding 9). Each provisional response starts the bound again.
func TestSimNoAnswerTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(30)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		bobInvs := make(chan *sip.Invitation, 1)
		alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{})
		bob := lifeUA(t, n, "bob", bobAddr, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			assert.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
			bobInvs <- inv
		}})
		require.NoError(t, alice.Start(context.Background()))
		require.NoError(t, bob.Start(context.Background()))
		call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		start := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- call.Invite(context.Background(), sip.InviteOptions{}) }()
		inv := <-bobInvs
		time.Sleep(time.Minute)
		require.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{StatusCode: 183}))
		err = <-errc
		assert.ErrorIs(t, err, sip.ErrTimeout)
		assert.InDelta(t, (time.Minute + sip.DefaultNoAnswerTimeout).Seconds(), time.Since(start).Seconds(), 0.1)
		assert.Equal(t, sip.EndNoAnswer, call.EndReason().Cause)
		assert.Equal(t, "no answer (487)", call.EndReason().String())
		<-inv.Done()
		assert.Equal(t, sip.EndRemoteCancel, inv.EndReason().Cause)
		assert.Contains(t, n.Flow(), "alice→bob CANCEL")
	})
}

// TestSimTransfereeByeAfterFinalNotify: the transferee hangs up the old
// call as soon as Referral.Accept returns; its BYE waits until the final
// NOTIFY is answered, so that on a link that reorders, the transferor
// still gets the 200 of the new call and no NOTIFY meets a 481 (issue 17,
// finding 12).
func TestSimTransfereeByeAfterFinalNotify(t *testing.T) {
	carolAddr := netip.MustParseAddrPort("192.0.2.3:5060")
	for seed := range 10 {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(uint64(200 + seed))
			defer n.Close()
			// bob→alice reorders: a later datagram may overtake an earlier one.
			require.NoError(t, n.SetLink(bobAddr, aliceAddr, siptest.Link{Delay: 5 * time.Millisecond, Jitter: 40 * time.Millisecond}))
			byeErr := make(chan error, 1)
			alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{})
			bob := lifeUA(t, n, "bob", bobAddr, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
				inv.SetDelegate(sip.SessionDelegate{OnRefer: func(r *sip.Referral) {
					call, err := r.Accept(context.Background(), sip.InviterOptions{})
					if assert.NoError(t, err) {
						defer func() { assert.NoError(t, call.Bye(context.Background())) }()
					}
					byeErr <- inv.Bye(context.Background())
				}})
				assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
			}})
			carol := lifeUA(t, n, "carol", carolAddr, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
				assert.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
				assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
			}})
			for _, ua := range []*sip.UserAgent{alice, bob, carol} {
				require.NoError(t, ua.Start(context.Background()))
			}
			call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
			require.NoError(t, err)
			require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
			time.Sleep(time.Second)
			finals := make(chan int, 4)
			require.NoError(t, call.Refer(context.Background(), "sip:carol@"+carolAddr.String(), sip.ReferOptions{
				OnNotify: func(code int, final bool) {
					if final {
						finals <- code
					}
				}}))
			assert.NoError(t, <-byeErr)
			<-call.Done()
			assert.Equal(t, sip.EndRemoteBye, call.EndReason().Cause)
			synctest.Wait()
			select {
			case code := <-finals:
				assert.Equal(t, 200, code, "seed %d", seed)
			default:
				t.Errorf("seed %d: the transferor never saw the final NOTIFY:\n%s", seed, n.Ladder())
			}
			assert.NotContains(t, n.Flow(), "alice→bob 481")
		})
	}
}

// lifeMedia is a media handler for the lifecycle tests: its offers and
// answers are fixed; SetDescription takes slow (or until its context
// ends) for a description whose body is "slow", and fails for "bad".
type lifeMedia struct {
	slow  time.Duration
	mu    sync.Mutex
	offer string // the next description to give; "" for "sdp"
}

func (h *lifeMedia) setOffer(s string) {
	h.mu.Lock()
	h.offer = s
	h.mu.Unlock()
}

func (h *lifeMedia) GetDescription(context.Context, media.Options) (media.Description, error) {
	h.mu.Lock()
	body := h.offer
	h.mu.Unlock()
	if body == "" {
		body = "sdp"
	}
	return media.Description{ContentType: "application/sdp", Body: []byte(body)}, nil
}

func (h *lifeMedia) SetDescription(ctx context.Context, d media.Description, _ media.Options) error {
	switch string(d.Body) {
	case "slow":
		select {
		case <-time.After(h.slow):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case "bad":
		return errors.New("unusable description")
	}
	return nil
}

func (h *lifeMedia) HasDescription(string) bool           { return true }
func (h *lifeMedia) SendDTMF(string, time.Duration) error { return nil }
func (h *lifeMedia) Close() error                         { return nil }

// TestSimMediaOnTheCallsLane: media work runs on each call's own lane
// with a bounded context (issue 17, finding 8). One call's media handler
// hangs on a re-INVITE's offer: another call is set up meanwhile without
// delay, and the hung offer is refused with 488 once MediaHandlerTimeout passes.
// A failing handler ends the call with EndMediaFailure (ErrMedia) and a
// BYE instead of being ignored.
func TestSimMediaOnTheCallsLane(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(40)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		withMedia := func(o *sip.UserAgentOptions) {
			o.MediaFactory = func(media.SessionInfo) (media.Handler, error) { return &lifeMedia{slow: time.Hour}, nil }
			o.MediaHandlerTimeout = 5 * time.Second
		}
		invs := make(chan *sip.Invitation, 4)
		invited := make(chan time.Time, 4)
		alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{}, withMedia)
		bob := lifeUA(t, n, "bob", bobAddr, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			invited <- time.Now()
			assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
			invs <- inv
		}}, withMedia)
		require.NoError(t, alice.Start(context.Background()))
		require.NoError(t, bob.Start(context.Background()))
		dial := func(opts sip.InviterOptions) *sip.Inviter {
			call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), opts)
			require.NoError(t, err)
			require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
			<-invited
			return call
		}
		first := dial(sip.InviterOptions{})
		<-invs
		time.Sleep(time.Second)

		// A re-INVITE whose offer bob's handler takes for ever.
		reErr := make(chan error, 1)
		start := time.Now()
		first.MediaHandler().(*lifeMedia).setOffer("slow")
		go func() { reErr <- first.Reinvite(context.Background(), sip.ReinviteOptions{}) }()
		time.Sleep(100 * time.Millisecond)
		// Meanwhile a second call: its OnInvite does not wait.
		second, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		sent := time.Now()
		require.NoError(t, second.Invite(context.Background(), sip.InviteOptions{}))
		at := <-invited
		<-invs
		assert.Less(t, at.Sub(sent), 100*time.Millisecond, "the second call waited for the first one's media")
		var re *sip.ResponseError
		require.ErrorAs(t, <-reErr, &re)
		assert.Equal(t, 488, re.StatusCode)
		assert.InDelta(t, 5.0, time.Since(start).Seconds(), 0.2, "refused after MediaHandlerTimeout")
		assert.Equal(t, sip.SessionEstablished, first.State())
		require.NoError(t, first.Bye(context.Background()))
		require.NoError(t, second.Bye(context.Background()))

		// An offerless call whose answer (in the ACK) bob's handler
		// refuses: bob hangs up, saying why.
		third, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{Offerless: true})
		require.NoError(t, err)
		third.MediaHandler().(*lifeMedia).setOffer("bad")
		require.NoError(t, third.Invite(context.Background(), sip.InviteOptions{}))
		<-invited
		bobThird := <-invs
		<-bobThird.Done()
		assert.Equal(t, sip.EndMediaFailure, bobThird.EndReason().Cause)
		assert.ErrorIs(t, bobThird.EndReason().Err, sip.ErrMedia)
		<-third.Done()
		assert.Equal(t, sip.EndRemoteBye, third.EndReason().Cause)
	})
}

// TestSimStopEndsEverySubscription: after Stop returns, every
// subscription (Subscriber, IncomingSubscription) and registration of the
// UserAgent has ended and its state listeners were told, even when the
// peer never answers the un-SUBSCRIBE, the terminating NOTIFY or the
// un-REGISTER; nothing is left running (issue 17).
func TestSimStopEndsEverySubscription(t *testing.T) {
	registrarAddr := netip.MustParseAddrPort("192.0.2.10:5060")
	// seen records the states a listener was told, for the check after Stop.
	type seen struct {
		mu sync.Mutex
		s  []string
	}
	add := func(v *seen, s string) {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.s = append(v.s, s)
	}
	last := func(v *seen) string {
		v.mu.Lock()
		defer v.mu.Unlock()
		if len(v.s) == 0 {
			return ""
		}
		return v.s[len(v.s)-1]
	}
	type env struct {
		n             *siptest.Network
		alice, bob    *sip.UserAgent
		aliceIncoming <-chan *sip.IncomingSubscription
	}
	dark := func(t *testing.T, n *siptest.Network, peer netip.AddrPort) {
		require.NoError(t, n.SetLinks(aliceAddr, peer, siptest.Link{Down: true}))
	}
	cases := []struct {
		name string
		// run brings one of alice's usages into its state, silences the
		// peer and returns the check made after alice's Stop.
		run func(t *testing.T, e env) (check func(t *testing.T))
	}{
		{name: "un-SUBSCRIBE unanswered", run: func(t *testing.T, e env) func(t *testing.T) {
			sub, err := sip.NewSubscriber(e.alice, "sip:bob@"+bobAddr.String(), "presence", sip.SubscriberOptions{})
			require.NoError(t, err)
			var v seen
			sub.OnStateChange(func(s sip.SubscriptionState) { add(&v, s.String()) })
			require.NoError(t, sub.Subscribe(context.Background(), sip.SubscribeOptions{}))
			time.Sleep(time.Second)
			require.Equal(t, sip.SubscriptionActive, sub.State())
			dark(t, e.n, bobAddr)
			return func(t *testing.T) {
				assert.Equal(t, sip.SubscriptionTerminated, sub.State())
				assert.Equal(t, sip.SubscriptionTerminated.String(), last(&v))
			}
		}},
		{name: "first SUBSCRIBE unanswered", run: func(t *testing.T, e env) func(t *testing.T) {
			dark(t, e.n, bobAddr)
			sub, err := sip.NewSubscriber(e.alice, "sip:bob@"+bobAddr.String(), "presence", sip.SubscriberOptions{})
			require.NoError(t, err)
			var v seen
			sub.OnStateChange(func(s sip.SubscriptionState) { add(&v, s.String()) })
			errc := make(chan error, 1)
			go func() { errc <- sub.Subscribe(context.Background(), sip.SubscribeOptions{}) }()
			time.Sleep(time.Second)
			require.Equal(t, sip.SubscriptionNotifyWait, sub.State())
			t.Cleanup(func() { assert.Error(t, <-errc) })
			return func(t *testing.T) {
				assert.Equal(t, sip.SubscriptionTerminated, sub.State())
				assert.Equal(t, sip.SubscriptionTerminated.String(), last(&v))
			}
		}},
		{name: "terminating NOTIFY unanswered", run: func(t *testing.T, e env) func(t *testing.T) {
			sub, err := sip.NewSubscriber(e.bob, "sip:alice@"+aliceAddr.String(), "presence", sip.SubscriberOptions{})
			require.NoError(t, err)
			require.NoError(t, sub.Subscribe(context.Background(), sip.SubscribeOptions{}))
			in := <-e.aliceIncoming
			var v seen
			in.OnStateChange(func(s sip.SubscriptionState) { add(&v, s.String()) })
			time.Sleep(time.Second)
			require.Equal(t, sip.SubscriptionActive, in.State())
			dark(t, e.n, bobAddr)
			return func(t *testing.T) {
				assert.Equal(t, sip.SubscriptionTerminated, in.State())
				assert.Equal(t, sip.SubscriptionTerminated.String(), last(&v))
			}
		}},
		{name: "un-REGISTER unanswered", run: func(t *testing.T, e env) func(t *testing.T) {
			srv, err := sipserver.New(sipserver.Options{Domain: "sipua.test", ListenPacket: e.n.PacketListener("registrar")})
			require.NoError(t, err)
			_, err = srv.Listen(t.Context(), "udp", registrarAddr.String())
			require.NoError(t, err)
			reg, err := sip.NewRegisterer(e.alice, sip.RegistererOptions{Registrar: "sip:" + registrarAddr.String()})
			require.NoError(t, err)
			var v seen
			reg.OnStateChange(func(s sip.RegistererState) { add(&v, s.String()) })
			require.NoError(t, reg.Register(context.Background(), sip.RegisterOptions{}))
			dark(t, e.n, registrarAddr)
			return func(t *testing.T) {
				assert.Equal(t, sip.RegistererTerminated, reg.State())
				assert.Equal(t, sip.RegistererTerminated.String(), last(&v))
				assert.NoError(t, srv.Close())
			}
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ignore := goleak.IgnoreCurrent()
				n := siptest.NewNetwork(uint64(40 + i))
				defer n.Close()
				require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
				incoming := make(chan *sip.IncomingSubscription, 1)
				accept := func(s *sip.IncomingSubscription) {
					assert.NoError(t, s.Accept(context.Background(), sip.AcceptSubscriptionOptions{ContentType: "text/plain", Body: []byte("idle")}))
				}
				alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{OnSubscribe: func(s *sip.IncomingSubscription) {
					accept(s)
					incoming <- s
				}}, func(o *sip.UserAgentOptions) {
					if c.name == "un-REGISTER unanswered" {
						o.URI = "sip:alice@sipua.test"
					}
				})
				bob := lifeUA(t, n, "bob", bobAddr, sip.UserAgentDelegate{OnSubscribe: accept})
				require.NoError(t, alice.Start(context.Background()))
				require.NoError(t, bob.Start(context.Background()))
				check := c.run(t, env{n: n, alice: alice, bob: bob, aliceIncoming: incoming})

				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				require.NoError(t, alice.Stop(ctx))
				check(t)
				// Nothing of alice's goes on: no retransmission after Stop.
				before := len(n.Flow())
				time.Sleep(time.Minute)
				for _, f := range n.Flow()[before:] {
					assert.NotContains(t, f, "alice→", "alice sent after Stop")
				}
				ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel2()
				require.NoError(t, bob.Stop(ctx2))
				goleak.VerifyNone(t, ignore)
			})
		})
	}
}
