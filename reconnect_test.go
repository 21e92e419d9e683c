package sip_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest/sipserver"
	"github.com/sipua/sip/transport"
)

// reconnectPair starts a registrar/proxy listening on proto and alice and
// bob registered through it, alice with media handler h.
func reconnectPair(t *testing.T, proto transport.Proto, h media.Handler, recovery time.Duration, attempts int) (srv *sipserver.Server, alice, bob *sip.UserAgent, invs chan *sip.Invitation) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := sipserver.New(sipserver.Options{Domain: "sipua.test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	_, err = srv.Listen(ctx, proto, "127.0.0.1:0")
	require.NoError(t, err)
	server := srv.WSURL()
	if proto == transport.TCP {
		server = "sip:" + srv.Addr(transport.TCP).String() + ";transport=tcp"
	}
	invs = make(chan *sip.Invitation, 2)
	start := func(user string, f media.Factory, d sip.UserAgentDelegate) *sip.UserAgent {
		ua, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI: srv.AOR(user),
			Transport: sip.TransportOptions{Server: server,
				ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond, ReconnectAttempts: attempts},
			MediaFactory:        f,
			Delegate:            d,
			CallRecoveryTimeout: recovery,
		})
		require.NoError(t, err)
		require.NoError(t, ua.Start(ctx))
		t.Cleanup(func() { _ = ua.Stop(context.Background()) })
		reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
		require.NoError(t, err)
		require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
		return ua
	}
	alice = start("alice", func(media.SessionInfo) (media.Handler, error) { return h, nil }, sip.UserAgentDelegate{})
	// bob answers offers (NoMedia would refuse them with 488).
	bob = start("bob", func(media.SessionInfo) (media.Handler, error) { return &sip.TestMedia{Name: "bob"}, nil }, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		invs <- inv
	}})
	return srv, alice, bob, invs
}

// TestCallSurvivesReconnect: the proxy drops alice's connection during a
// call; alice reconnects, registers again, then re-INVITEs bob with her
// new Contact and an ICE-restart offer, so the call stays up: bob's
// re-INVITE reaches her over the new connection. The same for bob, the
// callee, before. The app sees the media interrupted, then restored.
func TestCallSurvivesReconnect(t *testing.T) {
	for _, proto := range []transport.Proto{transport.TCP, transport.WS} {
		t.Run(string(proto), func(t *testing.T) {
			h := sip.TestReplacingMedia{TestMedia: &sip.TestMedia{SDP: "sdp-offer"}}
			srv, alice, _, invs := reconnectPair(t, proto, h, 0, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			call, err := sip.NewInviter(alice, srv.AOR("bob"), sip.InviterOptions{})
			require.NoError(t, err)
			require.NoError(t, call.Invite(ctx, sip.InviteOptions{}))
			inv := <-invs
			require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
			states := make(chan sip.MediaState, 4)
			call.OnMediaStateChange(func(m sip.MediaState) { states <- m })
			oldContact := alice.ContactURI()
			srv.ClearTrace()

			// First bob's connection drops (the callee recovers, and
			// alice's BYE reaches him later), then alice's.
			bobStates := make(chan sip.MediaState, 4)
			inv.OnMediaStateChange(func(m sip.MediaState) { bobStates <- m })
			bs := srv.Bindings("bob")
			require.Len(t, bs, 1)
			require.NoError(t, srv.Transport().CloseFlow(bs[0].Flow))
			for _, want := range []sip.MediaState{sip.MediaInterrupted, sip.MediaRestored} {
				select {
				case got := <-bobStates:
					require.Equal(t, want, got)
				case <-ctx.Done():
					t.Fatalf("no %v event for bob\n%s", want, srv.Ladder())
				}
			}
			require.True(t, slices.Contains(srv.Flow(), "bob→proxy INVITE"), "bob re-INVITEs alice:\n%s", srv.Ladder())
			assert.Equal(t, sip.SessionEstablished, inv.State())
			srv.ClearTrace()

			bs = srv.Bindings("alice")
			require.Len(t, bs, 1)
			require.NoError(t, srv.Transport().CloseFlow(bs[0].Flow))
			for _, want := range []sip.MediaState{sip.MediaInterrupted, sip.MediaRestored} {
				select {
				case got := <-states:
					require.Equal(t, want, got)
				case <-ctx.Done():
					t.Fatalf("no %v event\n%s", want, srv.Ladder())
				}
			}
			assert.Equal(t, sip.SessionEstablished, call.State())
			assert.Equal(t, sip.MediaRestored, call.MediaState())
			flow := srv.Flow()
			reg := slices.Index(flow, "alice→proxy REGISTER")
			reinv := slices.Index(flow, "alice→proxy INVITE")
			require.True(t, reg >= 0 && reinv > reg, "REGISTER on the new flow, then the re-INVITE:\n%s", srv.Ladder())
			assert.Contains(t, flow, "proxy→bob INVITE")
			gets := h.Gets()
			require.NotEmpty(t, gets)
			assert.True(t, gets[len(gets)-1].ICERestart, "the recovery offer asks for an ICE restart")
			if proto == transport.TCP {
				assert.NotEqual(t, oldContact.String(), alice.ContactURI().String(), "a new connection, a new Contact")
			}
			var reinvite *message.Request
			for _, e := range srv.Trace() {
				if r, ok := e.Msg.(*message.Request); ok && r.Method == "INVITE" && e.From == "proxy" {
					reinvite = r
				}
			}
			require.NotNil(t, reinvite)
			assert.True(t, strings.Contains(reinvite.Header.Get("Contact"), alice.ContactURI().Host))

			// A re-INVITE from bob reaches alice on her new connection,
			// then alice's BYE reaches bob on his.
			require.NoError(t, inv.Reinvite(ctx, sip.ReinviteOptions{}), "%s", srv.Ladder())
			require.NoError(t, call.Bye(ctx))
			select {
			case <-inv.Done():
			case <-ctx.Done():
				t.Fatalf("bob did not get alice's BYE\n%s", srv.Ladder())
			}
			assert.Equal(t, sip.EndRemoteBye, inv.EndReason().Cause)
		})
	}
}

// TestCallEndsWhenNotRecovered: the server goes away for good; after
// CallRecoveryTimeout the call ends with EndConnectionLost.
func TestCallEndsWhenNotRecovered(t *testing.T) {
	srv, alice, _, invs := reconnectPair(t, transport.TCP, sip.TestReplacingMedia{TestMedia: &sip.TestMedia{SDP: "sdp-offer"}}, 500*time.Millisecond, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := sip.NewInviter(alice, srv.AOR("bob"), sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{}))
	inv := <-invs
	require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
	var mu sync.Mutex
	var states []sip.MediaState
	call.OnMediaStateChange(func(m sip.MediaState) {
		mu.Lock()
		states = append(states, m)
		mu.Unlock()
	})
	start := time.Now()
	require.NoError(t, srv.Close())
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("the call did not end")
	}
	assert.InDelta(t, 0.5, time.Since(start).Seconds(), 0.4)
	assert.Equal(t, sip.EndConnectionLost, call.EndReason().Cause)
	<-inv.Done()
	assert.Equal(t, sip.EndConnectionLost, inv.EndReason().Cause, "bob lost his connection too")
	mu.Lock()
	assert.Equal(t, []sip.MediaState{sip.MediaInterrupted}, states)
	mu.Unlock()
}

// TestCallEndsWhenReconnectGivesUp: the UserAgent gives up reconnecting
// (TransportOptions.ReconnectAttempts): the call ends at once with
// EndConnectionLost, without waiting for CallRecoveryTimeout.
func TestCallEndsWhenReconnectGivesUp(t *testing.T) {
	srv, alice, _, invs := reconnectPair(t, transport.TCP, sip.TestReplacingMedia{TestMedia: &sip.TestMedia{SDP: "sdp-offer"}}, time.Minute, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call, err := sip.NewInviter(alice, srv.AOR("bob"), sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{}))
	inv := <-invs
	require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
	start := time.Now()
	require.NoError(t, srv.Close())
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("the call did not end")
	}
	assert.Less(t, time.Since(start), 5*time.Second, "ended when the reconnection gave up, not after a minute")
	r := call.EndReason()
	assert.Equal(t, sip.EndConnectionLost, r.Cause)
	assert.ErrorIs(t, r.Err, sip.ErrTransportClosed)
	assert.ErrorIs(t, r.Err, transport.ErrGaveUp)
}
