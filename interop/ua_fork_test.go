package interop

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/transport"
)

// TestForkedCallThroughKamailio: bob is registered twice (two of our
// UserAgents), so Kamailio forks alice's INVITE to both. Each sends 183
// with early media, then both answer at the same instant. Alice sees two
// early dialogs; the first 2xx wins and the call is up with that bob; the
// other bob's call is ended: by alice's ACK and BYE when his 2xx got
// through (RFC 3261 §13.2.2.4), or by Kamailio's CANCEL when it came first.
func TestForkedCallThroughKamailio(t *testing.T) {
	k := StartKamailio(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ready sync.WaitGroup
	ready.Add(2)
	both := make(chan struct{})
	go func() { ready.Wait(); close(both) }()
	invs := make(chan *sip.Invitation, 2)
	for range 2 {
		reconnectUser(t, k, "bob", transport.UDP, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			invs <- inv
			go func() {
				assert.NoError(t, inv.Progress(ctx, sip.ProgressOptions{EarlyMedia: true}))
				ready.Done()
				select {
				case <-both:
				case <-ctx.Done():
					return
				}
				_ = inv.Accept(ctx, sip.AcceptOptions{}) // the loser may have been canceled
			}()
		}})
	}
	alice, _ := reconnectUser(t, k, "alice", transport.WS, sip.UserAgentDelegate{})
	call, err := sip.NewInviter(alice, "sip:bob@"+Domain, sip.InviterOptions{EarlyMedia: true})
	require.NoError(t, err)
	var mu sync.Mutex
	var early []string
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{OnEarlyMedia: func(e sip.EarlyDialog) {
		mu.Lock()
		early = append(early, e.RemoteTag)
		mu.Unlock()
	}}), "%s", k.Log())
	a, b := <-invs, <-invs
	eds := call.EarlyDialogs()
	require.Len(t, eds, 2, "two early dialogs, one per fork")
	assert.True(t, eds[0].HasAnswer && eds[1].HasAnswer)
	_, _, remote := call.DialogID()
	winner, loser := a, b
	if _, local, _ := b.DialogID(); local == remote {
		winner, loser = b, a
	}
	_, wtag, _ := winner.DialogID()
	require.Equal(t, remote, wtag, "alice's dialog is with one of the bobs")
	select {
	case <-loser.Done():
	case <-ctx.Done():
		t.Fatalf("the losing fork's call did not end\n%s", k.Log())
	}
	mu.Lock()
	t.Logf("losing fork ended by %v (alice's early media from %v)", loser.EndReason(), early)
	mu.Unlock()
	assert.Contains(t, []sip.EndCause{sip.EndRemoteBye, sip.EndRemoteCancel}, loser.EndReason().Cause)
	require.Eventually(t, func() bool { return winner.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, sip.SessionEstablished, call.State())
	waitPackets(t, call.Session, winner.Session, 0, 0, 10)
	require.NoError(t, call.Bye(ctx))
	<-winner.Done()
	assert.Empty(t, k.RouteSetViolations())
}
