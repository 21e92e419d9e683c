package sip

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/media"
)

// failingSDP is a TestMedia that can report its media dead.
type failingSDP struct {
	TestMedia
	mu sync.Mutex
	f  func(error)
}

func (h *failingSDP) OnFailure(f func(error)) {
	h.mu.Lock()
	h.f = f
	h.mu.Unlock()
}

func (h *failingSDP) fail(err error) {
	h.mu.Lock()
	f := h.f
	h.mu.Unlock()
	f(err)
}

// TestMediaFailureEndsCall: a handler that reports its media dead
// (media.FailureNotifier) ends the established call with a BYE and its
// own end cause: EndMediaTimeout for media.ErrMediaTimeout,
// EndMediaFailure for anything else; the peer sees a remote BYE.
func TestMediaFailureEndsCall(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want EndCause
	}{
		{fmt.Errorf("rtp: nothing for 2s: %w", media.ErrMediaTimeout), EndMediaTimeout},
		{fmt.Errorf("webrtc: %w", media.ErrICEFailed), EndMediaFailure},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			invs := make(chan *Invitation, 1)
			bob, _ := callUA(t, "bob", func(inv *Invitation) {
				invs <- inv
				assert.NoError(t, inv.Accept(ctx5(t), AcceptOptions{}))
			})
			var h *failingSDP
			alice, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1",
				Transport: TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
				MediaFactory: func(media.SessionInfo) (media.Handler, error) {
					h = &failingSDP{TestMedia: TestMedia{SDP: testSDP}}
					return h, nil
				}})
			require.NoError(t, err)
			require.NoError(t, alice.Start(ctx5(t)))
			defer alice.Stop(ctx5(t))
			call, err := NewInviter(alice, addr(bob), InviterOptions{})
			require.NoError(t, err)
			h.fail(tc.err) // before the call is up: nothing happens
			require.NoError(t, call.Invite(ctx5(t), InviteOptions{}))
			inv := <-invs
			waitState(t, inv.Session, SessionEstablished)
			h.fail(tc.err)
			waitState(t, call.Session, SessionTerminated)
			assert.Equal(t, tc.want, call.EndReason().Cause)
			assert.ErrorIs(t, call.EndReason().Err, tc.err)
			waitState(t, inv.Session, SessionTerminated)
			assert.Equal(t, EndRemoteBye, inv.EndReason().Cause)
		})
	}
}
