package sip_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
)

// TestSimGlare: alice and bob re-INVITE each other at the same instant;
// both get 491 and send again after the RFC 3261 §14.1 delay: bob, who
// answered the call, after 0–2 s, alice, who made it (her Call-ID), after
// 2.1–4 s. Both re-INVITEs then succeed. Run several times for the
// randomness.
func TestSimGlare(t *testing.T) {
	for seed := uint64(20); seed < 26; seed++ {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(seed)
			defer n.Close()
			const delay = 5 * time.Millisecond
			require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: delay}))
			alice, invs := simCallPair(t, n)
			call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
			require.NoError(t, err)
			require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
			inv := <-invs
			time.Sleep(time.Second)
			require.Equal(t, sip.SessionEstablished, inv.State())
			n.ClearTrace()

			errs := make(chan error, 2)
			go func() { errs <- call.Reinvite(context.Background(), sip.ReinviteOptions{}) }()
			go func() { errs <- inv.Reinvite(context.Background(), sip.ReinviteOptions{}) }()
			require.NoError(t, <-errs)
			require.NoError(t, <-errs)

			// The INVITEs each side sent, with when they were sent, and
			// when each got its 491.
			var sent = map[string][]time.Time{}
			var got491 = map[string]time.Time{}
			for _, e := range n.Trace() {
				if e.Kind != siptest.EventSent {
					continue
				}
				m, err := message.Parse(e.Data)
				require.NoError(t, err)
				from := "alice"
				if e.From == bobAddr {
					from = "bob"
				}
				switch m := m.(type) {
				case *message.Request:
					if m.Method == "INVITE" {
						sent[from] = append(sent[from], e.At)
					}
				case *message.Response:
					if m.StatusCode == 491 {
						to := "bob"
						if from == "bob" {
							to = "alice"
						}
						got491[to] = e.At.Add(delay)
					}
				}
			}
			require.Len(t, sent["alice"], 2, "\n%s", n.Ladder())
			require.Len(t, sent["bob"], 2, "\n%s", n.Ladder())
			aliceWait := sent["alice"][1].Sub(got491["alice"])
			bobWait := sent["bob"][1].Sub(got491["bob"])
			t.Logf("alice (owner of the Call-ID) waited %v, bob %v", aliceWait, bobWait)
			assert.GreaterOrEqual(t, aliceWait, 2100*time.Millisecond)
			assert.LessOrEqual(t, aliceWait, 4000*time.Millisecond)
			assert.GreaterOrEqual(t, bobWait, time.Duration(0))
			assert.LessOrEqual(t, bobWait, 2000*time.Millisecond)
			assert.Zero(t, aliceWait%(10*time.Millisecond), "10 ms units")
			assert.Zero(t, bobWait%(10*time.Millisecond), "10 ms units")
			assert.Equal(t, sip.SessionEstablished, call.State())
			assert.Equal(t, sip.SessionEstablished, inv.State())
		})
	}
}

// TestSimGlareGivesUp: a peer that answers every re-INVITE 491 makes
// Reinvite give up after GlareRetries with ErrGlare (and the 491).
func TestSimGlareGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(27)
		defer n.Close()
		var p scriptPeer
		p.listen(t, n, "bob", bobAddr, func(req *message.Request, send func(message.Message)) {
			switch {
			case req.Method == "INVITE" && req.Header.ToTag() == "":
				send(reply(req, 200, "bobtag", bobAddr, ""))
			case req.Method == "INVITE":
				send(reply(req, 491, "", bobAddr, ""))
			case req.Method == "BYE":
				send(reply(req, 200, "", bobAddr, ""))
			}
		})
		alice := startSimUA(t, n, "alice", aliceAddr, nil, sip.UserAgentDelegate{})
		call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
		start := time.Now()
		err = call.Reinvite(context.Background(), sip.ReinviteOptions{GlareRetries: 2})
		require.ErrorIs(t, err, sip.ErrGlare)
		var re *sip.ResponseError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, 491, re.StatusCode)
		reinvites := 0
		for _, r := range p.requests("INVITE") {
			if r.req.Header.ToTag() != "" {
				reinvites++
			}
		}
		assert.Equal(t, 3, reinvites, "the first and two retries")
		el := time.Since(start)
		assert.True(t, el >= 4200*time.Millisecond && el <= 8100*time.Millisecond, "two waits of 2.1–4 s: %v", el)
		assert.Equal(t, sip.SessionEstablished, call.State(), "glare leaves the call as it was")
		assert.False(t, strings.Contains(err.Error(), "%!"))
	})
}
