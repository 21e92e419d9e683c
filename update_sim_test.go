package sip_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
)

// simCall sets up alice calling bob; bob's invitation comes back once it
// arrives and the Invite's outcome on errc.
func simCall(t *testing.T, n *siptest.Network, aliceOpts, bobOpts sip.UserAgentOptions, io sip.InviterOptions) (call *sip.Inviter, inv *sip.Invitation, errc <-chan error, aliceMedia, bobMedia func() *sip.TestMedia) {
	t.Helper()
	alice, am := simUA(t, n, "alice", aliceAddr, aliceOpts)
	invs := make(chan *sip.Invitation, 1)
	bobOpts.Delegate.OnInvite = func(inv *sip.Invitation) { invs <- inv }
	_, bm := simUA(t, n, "bob", bobAddr, bobOpts)
	call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), io)
	require.NoError(t, err)
	ec := make(chan error, 1)
	go func() { ec <- call.Invite(context.Background(), sip.InviteOptions{}) }()
	return call, <-invs, ec, am, bm
}

// TestSimUpdateEarlyAndConfirmed: UPDATE with and without an offer, in
// the early dialog (after the reliable 183 and its PRACK) and in the
// confirmed one, from both sides; the answers come through the media
// handlers.
func TestSimUpdateEarlyAndConfirmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(21)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		call, inv, errc, am, bm := simCall(t, n, sip.UserAgentOptions{}, sip.UserAgentOptions{}, sip.InviterOptions{})
		require.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{Reliable: true, EarlyMedia: true}))
		synctest.Wait()
		time.Sleep(100 * time.Millisecond) // the PRACK is through
		// Early: bob offers, alice answers; then alice offers, bob answers.
		require.NoError(t, inv.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		require.NoError(t, call.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		require.NoError(t, <-errc)
		time.Sleep(100 * time.Millisecond)
		// Confirmed: with and without an offer, both ways.
		require.NoError(t, call.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		require.NoError(t, inv.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		require.NoError(t, call.Update(context.Background(), sip.UpdateOptions{}))
		require.NoError(t, inv.Update(context.Background(), sip.UpdateOptions{}))
		a, b := am().Body(), bm().Body()
		// alice: bob's early answer, bob's early offer, bob's answer,
		// bob's answer, bob's offer.
		assert.Equal(t, []string{b, b, b, b, b}, am().Given())
		assert.Equal(t, []string{a, a, a, a, a}, bm().Given())
		assert.Equal(t, 6, count(n.Flow(), "alice→bob UPDATE")+count(n.Flow(), "bob→alice UPDATE"))
		assert.Equal(t, sip.SessionEstablished, call.State())
		assert.Equal(t, sip.SessionEstablished, inv.State())
		require.NoError(t, call.Bye(context.Background()))
		t.Log("\n" + n.Ladder())
	})
}

// TestSimUpdateGlare: both sides send an UPDATE with an offer at once:
// each answers the other's with 491 (RFC 3311 §5.2) and both calls stay
// up; an UPDATE before any dialog fails at once.
func TestSimUpdateGlare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(22)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 50 * time.Millisecond}))
		call, inv, errc, _, _ := simCall(t, n, sip.UserAgentOptions{}, sip.UserAgentOptions{}, sip.InviterOptions{})
		assert.ErrorIs(t, call.Update(context.Background(), sip.UpdateOptions{}), sip.ErrInvalidState, "no dialog yet")
		require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		require.NoError(t, <-errc)
		time.Sleep(200 * time.Millisecond)
		// Without retries, both crossing offers get 491.
		e1 := make(chan error, 1)
		go func() { e1 <- call.Update(context.Background(), sip.UpdateOptions{Offer: true, GlareRetries: -1}) }()
		e2 := inv.Update(context.Background(), sip.UpdateOptions{Offer: true, GlareRetries: -1})
		for _, err := range []error{<-e1, e2} {
			var re *sip.ResponseError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, 491, re.StatusCode)
		}
		// Afterwards one goes through.
		require.NoError(t, call.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		// With the default retries, crossing offers both succeed: the
		// callee sends again after 0–2 s, the caller after 2.1–4 s.
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		var callerDone, calleeDone time.Duration
		go func() {
			err := call.Update(context.Background(), sip.UpdateOptions{Offer: true})
			callerDone = time.Since(start)
			e1 <- err
		}()
		require.NoError(t, inv.Update(context.Background(), sip.UpdateOptions{Offer: true}))
		calleeDone = time.Since(start)
		require.NoError(t, <-e1)
		assert.LessOrEqual(t, calleeDone, 2100*time.Millisecond+time.Second, "callee retried within 0–2 s")
		assert.GreaterOrEqual(t, callerDone, 2100*time.Millisecond, "caller retried after at least 2.1 s")
		t.Logf("glare: callee done after %v, caller after %v", calleeDone, callerDone)
		assert.Equal(t, sip.SessionEstablished, inv.State())
		require.NoError(t, inv.Bye(context.Background()))
		t.Log("\n" + n.Ladder())
	})
}

// blockingSDP is a sip.TestMedia whose SetDescription waits for release
// while gate is set.
type blockingSDP struct {
	*sip.TestMedia
	gate chan chan struct{}
}

func (b blockingSDP) SetDescription(ctx context.Context, d media.Description, o media.Options) error {
	select {
	case release := <-b.gate:
		<-release
	default:
	}
	return b.TestMedia.SetDescription(ctx, d, o)
}

// TestSimUpdateWhileAnswering: a second UPDATE with an offer arrives while
// bob still answers the first: 500 with a Retry-After of 0–10 s (RFC 3311
// §5.2), and bob's own re-INVITE is refused; the first is answered
// normally.
func TestSimUpdateWhileAnswering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(23)
		defer n.Close()
		gate := make(chan chan struct{}, 1)
		invs := make(chan *sip.Invitation, 1)
		simUA(t, n, "bob", bobAddr, sip.UserAgentOptions{
			MediaFactory: func(media.SessionInfo) (media.Handler, error) {
				return blockingSDP{&sip.TestMedia{Name: "bob"}, gate}, nil
			},
			Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
				assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
				invs <- inv
			}}})
		alice := newPeer(t, n, "alice", aliceAddr)
		to := net.UDPAddrFromAddrPort(bobAddr)
		const sdp = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
		req := func(method string, cseq int, toTag string, body string) *message.Request {
			r, err := message.ParseRequest([]byte(method + " sip:bob@" + bobAddr.String() + " SIP/2.0\r\n" +
				"Via: SIP/2.0/UDP " + aliceAddr.String() + ";branch=z9hG4bK" + fmt.Sprint(method, cseq) + "\r\n" +
				"From: <sip:alice@" + aliceAddr.String() + ">;tag=a1\r\nTo: <sip:bob@" + bobAddr.String() + ">" + toTag + "\r\n" +
				"Call-ID: update500\r\nCSeq: " + fmt.Sprint(cseq) + " " + method + "\r\nMax-Forwards: 70\r\n" +
				"Contact: <sip:alice@" + aliceAddr.String() + ">\r\nContent-Type: application/sdp\r\n" +
				"Content-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body))
			require.NoError(t, err)
			return r
		}
		read := func() *message.Response {
			for {
				if r := alice.Response(); r.StatusCode != 100 {
					return r
				}
			}
		}
		invite := req("INVITE", 1, "", sdp)
		alice.Send(to, invite)
		ok := read()
		require.Equal(t, 200, ok.StatusCode)
		tag := ";tag=" + ok.Header.ToTag()
		ack, err := message.ParseRequest([]byte("ACK sip:bob@" + bobAddr.String() + " SIP/2.0\r\nVia: SIP/2.0/UDP " + aliceAddr.String() +
			";branch=z9hG4bKack1\r\nFrom: <sip:alice@" + aliceAddr.String() + ">;tag=a1\r\nTo: <sip:bob@" + bobAddr.String() + ">" + tag +
			"\r\nCall-ID: update500\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"))
		require.NoError(t, err)
		alice.Send(to, ack)
		inv := <-invs
		synctest.Wait()
		release := make(chan struct{})
		gate <- release // bob's handler will block on the next offer
		alice.Send(to, req("UPDATE", 2, tag, sdp))
		synctest.Wait()
		alice.Send(to, req("UPDATE", 3, tag, sdp))
		r := read()
		assert.Equal(t, 500, r.StatusCode)
		ra, present, err := r.Header.RetryAfter()
		assert.True(t, present)
		assert.NoError(t, err)
		assert.LessOrEqual(t, ra, uint32(10))
		// Nor does bob offer himself while he answers (one offer/answer
		// exchange at a time, RFC 3264 §4, RFC 6337 §3).
		assert.ErrorIs(t, inv.Reinvite(context.Background(), sip.ReinviteOptions{}), sip.ErrInvalidState)
		close(release)
		r = read()
		assert.Equal(t, 200, r.StatusCode)
		c, _ := r.Header.CSeq()
		assert.Equal(t, uint32(2), c.Seq)
		assert.Contains(t, string(r.Body), "o=bob", "the answer")
		assert.Equal(t, sip.SessionEstablished, inv.State())
		go func() {
			bye, from := alice.Read()
			alice.Send(from, message.NewResponse(bye, 200, "", ""))
		}()
		require.NoError(t, inv.Bye(context.Background()))
	})
}
