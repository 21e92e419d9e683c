package interop

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
)

// directUA starts one of our UserAgents listening on UDP 127.0.0.1, for a
// sipp peer that talks to it directly.
func directUA(t *testing.T, user string, opts sip.UserAgentOptions) *sip.UserAgent {
	t.Helper()
	opts.URI = "sip:" + user + "@127.0.0.1"
	opts.Transport = sip.TransportOptions{Listen: []string{"udp://127.0.0.1:0"}}
	if opts.MediaFactory == nil {
		opts.MediaFactory = func(media.SessionInfo) (media.Handler, error) { return fixedSDP{}, nil }
	}
	ua, err := sip.NewUserAgent(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ua.Stop(ctx)
	})
	return ua
}

// TestSippPrackAndUpdateToUserAgent: a sipp UAC calls our UserAgent with
// Require: 100rel; our 183 with the answer is reliable (RSeq, repeated
// until sipp's PRACK), the 200 waits for the PRACK and carries no SDP;
// then sipp sends UPDATE without and with an offer, which we answer.
func TestSippPrackAndUpdateToUserAgent(t *testing.T) {
	invs := make(chan *sip.Invitation, 1)
	ua := directUA(t, "frank", sip.UserAgentOptions{Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		// Require: 100rel: every provisional response is reliable.
		assert.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{EarlyMedia: true}))
		assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		invs <- inv
	}}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := StartSipp(t, SippConfig{Scenario: "uac-prack-update.xml", Remote: ua.ContactURI().HostPort(), Service: "frank", Timeout: 15 * time.Second})
	require.NoError(t, p.Wait(ctx), "sipp:\n%s", p.Messages())
	inv := <-invs
	<-inv.Done()
	assert.Equal(t, sip.EndRemoteBye, inv.EndReason().Cause)
	msgs := p.Messages()
	assert.Contains(t, msgs, "RSeq: ")
	assert.Contains(t, msgs, "RAck: ")
	assert.Equal(t, 2, strings.Count(msgs, "UPDATE sip:"), "two UPDATEs sent")
}

// TestUserAgentPrackAndUpdateToSipp: our UserAgent calls a sipp UAS that
// answers with a reliable 183 carrying its answer: we PRACK it (RAck),
// apply the answer once, take the 200 without SDP, then send an UPDATE
// with a new offer (sipp's Allow lists UPDATE) and hang up.
func TestUserAgentPrackAndUpdateToSipp(t *testing.T) {
	uas := StartSipp(t, SippConfig{Scenario: "uas-prack-update.xml", Timeout: 15 * time.Second})
	var mu sync.Mutex
	var applied []string
	ua := directUA(t, "dave", sip.UserAgentOptions{MediaFactory: func(media.SessionInfo) (media.Handler, error) {
		return recordingSDP{fixedSDP{}, func(d media.Description) {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, string(d.Body))
		}}, nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call, err := sip.NewInviter(ua, "sip:eve@127.0.0.1:"+strconv.Itoa(int(uas.Port)), sip.InviterOptions{Rel100: sip.Rel100Required})
	require.NoError(t, err)
	// OnProgress runs on the callback goroutine: Invite returning does not
	// order it before the test's reads, the channel does.
	progress := make(chan *message.Response, 4)
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{OnProgress: func(r *message.Response) { progress <- r }}))
	select {
	case r := <-progress:
		assert.Equal(t, 183, r.StatusCode)
	case <-ctx.Done():
		t.Fatal("no OnProgress")
	}
	require.NoError(t, call.Update(ctx, sip.UpdateOptions{Offer: true}))
	require.NoError(t, call.Bye(ctx))
	require.NoError(t, uas.Wait(ctx), "sipp UAS:\n%s", uas.Messages())
	mu.Lock()
	assert.Len(t, applied, 2, "the 183's answer, then the UPDATE's")
	mu.Unlock()
	assert.Contains(t, uas.Messages(), "PRACK sip:")
}

// TestUserAgentSessionTimerWithSipp: our UserAgent asks for a 4 s session
// (Min-SE lowered to 2 s) and refreshes it every 2 s as refresher: by
// UPDATE when the sipp UAS allows it, else by re-INVITE.
func TestUserAgentSessionTimerWithSipp(t *testing.T) {
	for _, c := range []struct{ name, allow, method string }{
		{"update", "INVITE, ACK, BYE, CANCEL, UPDATE", "UPDATE"},
		{"reinvite", "INVITE, ACK, BYE, CANCEL", "INVITE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			uas := StartSipp(t, SippConfig{Scenario: "uas-timer.xml", Timeout: 15 * time.Second, Keys: map[string]string{"allow": c.allow}})
			ua := directUA(t, "dave", sip.UserAgentOptions{SessionTimers: sip.SessionTimerOptions{Expires: 4 * time.Second, MinSE: 2 * time.Second}})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			call, err := sip.NewInviter(ua, "sip:eve@127.0.0.1:"+strconv.Itoa(int(uas.Port)), sip.InviterOptions{})
			require.NoError(t, err)
			require.NoError(t, call.Invite(ctx, sip.InviteOptions{}))
			time.Sleep(5 * time.Second) // refreshes at 2 and 4 s
			assert.Equal(t, sip.SessionEstablished, call.State())
			require.NoError(t, call.Bye(ctx))
			require.NoError(t, uas.Wait(ctx), "sipp UAS:\n%s", uas.Messages())
			msgs := uas.Messages()
			assert.Equal(t, 2, strings.Count(msgs, c.method+" sip:")-boolInt(c.method == "INVITE"), "two refreshes by %s", c.method)
		})
	}
}

// TestSippSessionTimerToUserAgent: a sipp UAC asks our UserAgent (Min-SE
// 4 s) for a 2 s session: 422 with Min-SE 4; it asks again for 6 s as
// refresher and never refreshes, so we hang up at 6 - min(32, 6/3) = 4 s
// with EndSessionExpired.
func TestSippSessionTimerToUserAgent(t *testing.T) {
	invs := make(chan *sip.Invitation, 1)
	ua := directUA(t, "frank", sip.UserAgentOptions{
		SessionTimers: sip.SessionTimerOptions{MinSE: 4 * time.Second},
		Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
			invs <- inv
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := StartSipp(t, SippConfig{Scenario: "uac-timer.xml", Remote: ua.ContactURI().HostPort(), Service: "frank", Timeout: 15 * time.Second})
	var inv *sip.Invitation
	select {
	case inv = <-invs:
	case <-ctx.Done():
		t.Fatalf("no call: sipp:\n%s", p.Messages())
	}
	start := time.Now()
	select {
	case <-inv.Done():
	case <-ctx.Done():
		t.Fatal("the call did not end")
	}
	assert.InDelta(t, 4, time.Since(start).Seconds(), 0.5)
	assert.Equal(t, sip.EndSessionExpired, inv.EndReason().Cause)
	require.NoError(t, p.Wait(ctx), "sipp:\n%s", p.Messages())
	assert.Contains(t, p.Messages(), "SIP/2.0 422 ")
	assert.Contains(t, p.Messages(), "Min-SE: 4")
}

// recordingSDP is fixedSDP that reports the descriptions it is given.
type recordingSDP struct {
	fixedSDP
	set func(media.Description)
}

func (r recordingSDP) SetDescription(ctx context.Context, d media.Description, o media.Options) error {
	r.set(d)
	return r.fixedSDP.SetDescription(ctx, d, o)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestUserAgentPrackThroughKamailio: two of our UserAgents call each
// other through Kamailio over UDP with a reliable 183 (early media):
// the PRACK and an early UPDATE follow the early dialog's route set (the
// 183's Record-Route), then the call is refreshed by UPDATE in the
// confirmed dialog and hung up.
func TestUserAgentPrackThroughKamailio(t *testing.T) {
	k := StartKamailio(t)
	invs := make(chan *sip.Invitation, 1)
	udpUser(t, k, "bob", sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) { invs <- inv }})
	alice := udpUser(t, k, "alice", sip.UserAgentDelegate{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call, err := sip.NewInviter(alice, "sip:bob@"+Domain, sip.InviterOptions{Rel100: sip.Rel100Required})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- call.Invite(ctx, sip.InviteOptions{}) }()
	inv := <-invs
	require.NoError(t, inv.Progress(ctx, sip.ProgressOptions{EarlyMedia: true}))
	// An UPDATE in the early dialog, once the PRACK is through.
	require.Eventually(t, func() bool { return strings.Contains(k.Log(), "PRACK sip:") }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, inv.Update(ctx, sip.UpdateOptions{Offer: true}), k.Log())
	require.NoError(t, inv.Accept(ctx, sip.AcceptOptions{}))
	require.NoError(t, <-errc, k.Log())
	require.Eventually(t, func() bool { return inv.State() == sip.SessionEstablished }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, call.Update(ctx, sip.UpdateOptions{}))
	require.NoError(t, inv.Bye(ctx))
	<-call.Done()
	assert.Equal(t, sip.EndRemoteBye, call.EndReason().Cause)
	assert.Equal(t, 2, strings.Count(k.Log(), "UPDATE sip:"), k.Log())
	noRouteSetViolations(t, k)
}
