package sip_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
)

// simUA starts name at addr on n with a sip.TestMedia handler per call
// naming name (the last one made is returned by the function hs).
func simUA(t *testing.T, n *siptest.Network, name string, addr fmt.Stringer, opts sip.UserAgentOptions) (*sip.UserAgent, func() *sip.TestMedia) {
	t.Helper()
	hs := &sip.TestMediaFactory{Name: name}
	opts.URI = "sip:" + name + "@" + addr.String()
	opts.Transport = sip.TransportOptions{Listen: []string{"udp://" + addr.String()}, ListenPacket: n.PacketListener(name)}
	if opts.MediaFactory == nil {
		opts.MediaFactory = hs.New
	}
	return sip.StartTestUA(t, opts), hs.Last
}

func count(flow []string, what string) int {
	n := 0
	for _, f := range flow {
		if f == what {
			n++
		}
	}
	return n
}

// TestSimPrackRetransmission: bob's reliable 180 is repeated (T1,
// doubling) while alice's PRACKs are lost, then acknowledged; the call
// goes on and a second reliable response gets the next RSeq.
func TestSimPrackRetransmission(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(11)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		alice, _ := simUA(t, n, "alice", aliceAddr, sip.UserAgentOptions{})
		invs := make(chan *sip.Invitation, 1)
		simUA(t, n, "bob", bobAddr, sip.UserAgentOptions{Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) { invs <- inv }}})
		call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		var mu sync.Mutex
		var progress []string
		errc := make(chan error, 1)
		go func() {
			errc <- call.Invite(context.Background(), sip.InviteOptions{OnProgress: func(r *message.Response) {
				mu.Lock()
				defer mu.Unlock()
				rseq, _, _ := r.Header.RSeq()
				progress = append(progress, fmt.Sprintf("%d/%d", r.StatusCode, rseq))
			}})
		}()
		inv := <-invs
		assert.True(t, inv.Request.Header.HasToken("Supported", "100rel"))
		// alice→bob goes dark for 1.2 s: her PRACKs are lost.
		require.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Down: true}))
		go func() {
			time.Sleep(1200 * time.Millisecond)
			assert.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		}()
		start := time.Now()
		require.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{Reliable: true}))
		// The second reliable response waits for the first one's PRACK.
		require.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{StatusCode: 183, Reliable: true}))
		assert.GreaterOrEqual(t, time.Since(start), 1200*time.Millisecond)
		synctest.Wait()
		time.Sleep(100 * time.Millisecond)
		require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
		require.NoError(t, <-errc)
		flow := n.Flow()
		assert.GreaterOrEqual(t, count(flow, "bob→alice 180"), 3, "180 repeated until PRACK: %q", flow)
		assert.GreaterOrEqual(t, count(flow, "alice→bob PRACK"), 2, "%q", flow)
		mu.Lock()
		assert.Len(t, progress, 2, "repeated reliable responses are not reported twice: %q", progress)
		if len(progress) == 2 {
			var a, b uint32
			_, _ = fmt.Sscanf(progress[0], "180/%d", &a)
			_, _ = fmt.Sscanf(progress[1], "183/%d", &b)
			assert.Equal(t, a+1, b, "RSeq counts up: %q", progress)
		}
		mu.Unlock()
		time.Sleep(time.Second)
		assert.Equal(t, sip.SessionEstablished, inv.State())
		require.NoError(t, call.Bye(context.Background()))
		t.Log("\n" + n.Ladder())
	})
}

// TestSimPrackGiveUp: no PRACK ever arrives: after 64*T1 bob answers 504
// and the call ends with EndNoPrack (RFC 3262 §3).
func TestSimPrackGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(12)
		defer n.Close()
		alice, _ := simUA(t, n, "alice", aliceAddr, sip.UserAgentOptions{})
		invs := make(chan *sip.Invitation, 1)
		simUA(t, n, "bob", bobAddr, sip.UserAgentOptions{Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) { invs <- inv }}})
		call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{Rel100: sip.Rel100Required})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- call.Invite(context.Background(), sip.InviteOptions{}) }()
		inv := <-invs
		require.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Down: true}))
		start := time.Now()
		// Require: 100rel makes every provisional response reliable.
		require.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
		<-inv.Done()
		assert.Equal(t, 32*time.Second, time.Since(start))
		assert.Equal(t, sip.EndReason{Cause: sip.EndNoPrack, StatusCode: 504}, inv.EndReason())
		var re *sip.ResponseError
		require.ErrorAs(t, <-errc, &re)
		assert.Equal(t, 504, re.StatusCode)
		assert.Equal(t, 7, count(n.Flow(), "bob→alice 180"), "sent at 0, then T1 doubling: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s")
	})
}

// TestSimPrackOfferAnswer: the offer/answer exchange in reliable
// responses and PRACK (RFC 3262 §5), both ways round.
func TestSimPrackOfferAnswer(t *testing.T) {
	for _, offerless := range []bool{false, true} {
		t.Run(fmt.Sprintf("offerless=%v", offerless), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := siptest.NewNetwork(13)
				defer n.Close()
				require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
				alice, aliceMedia := simUA(t, n, "alice", aliceAddr, sip.UserAgentOptions{})
				invs := make(chan *sip.Invitation, 1)
				_, bobMedia := simUA(t, n, "bob", bobAddr, sip.UserAgentOptions{Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) { invs <- inv }}})
				call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{Offerless: offerless})
				require.NoError(t, err)
				errc := make(chan error, 1)
				go func() { errc <- call.Invite(context.Background(), sip.InviteOptions{}) }()
				inv := <-invs
				// With an offer: its answer in the reliable 183; without:
				// the 183 carries bob's offer, alice answers in the PRACK.
				require.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{Reliable: true, EarlyMedia: true}))
				// Accept waits for the PRACK of a response with SDP.
				require.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
				require.NoError(t, <-errc)
				time.Sleep(time.Second)
				assert.Equal(t, sip.SessionEstablished, inv.State())
				assert.Equal(t, []string{bobMedia().Body()}, aliceMedia().Given(), "alice applied bob's SDP once")
				assert.Equal(t, []string{aliceMedia().Body()}, bobMedia().Given(), "bob applied alice's SDP once")
				require.NoError(t, call.Bye(context.Background()))
				// The 2xx waited for the PRACK (RFC 3262 §3): the PRACK's 200
				// comes first, then the INVITE's.
				assert.Equal(t, []string{"alice→bob INVITE", "bob→alice 183", "alice→bob PRACK", "bob→alice 200", "bob→alice 200", "alice→bob ACK"},
					n.Flow()[:6])
				ladder := n.Ladder()
				t.Log("\n" + ladder)
			})
		})
	}
}

// TestSimPrackOrderAndForks: as UAC, alice PRACKs each reliable
// provisional response once, in RSeq order per early dialog: a repeated
// or out-of-order one gets no PRACK (RFC 3262 §4), and two forked early
// dialogs get a PRACK each, in their own dialog.
func TestSimPrackOrderAndForks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(14)
		defer n.Close()
		alice, _ := simUA(t, n, "alice", aliceAddr, sip.UserAgentOptions{})
		bob := newPeer(t, n, "bob", bobAddr)
		call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- call.Invite(context.Background(), sip.InviteOptions{}) }()
		invite, from := bob.Read()
		reliable := func(tag string, rseq uint32) *message.Response {
			r := message.NewResponse(invite, 183, "", tag)
			r.Header.Add("Contact", "<sip:"+tag+"@"+bobAddr.String()+">")
			r.Header.Add("Require", "100rel")
			r.Header.Add("RSeq", fmt.Sprint(rseq))
			return r
		}
		var pracks []string
		expect := func(what string) {
			prack := bob.Expect("PRACK")
			ra, err := prack.Header.RAck()
			require.NoError(t, err, what)
			pracks = append(pracks, prack.Header.ToTag()+" "+ra.String())
			prack.Reply(200)
		}
		bob.Send(from, reliable("one", 5))
		expect("first")
		bob.Send(from, reliable("one", 7)) // out of order: no PRACK
		bob.Send(from, reliable("one", 5)) // repeated: no PRACK
		bob.Send(from, reliable("one", 6))
		expect("in order")
		bob.Send(from, reliable("two", 1)) // another fork
		expect("fork")
		ok := message.NewResponse(invite, 200, "", "two")
		ok.Header.Add("Contact", "<sip:two@"+bobAddr.String()+">")
		bob.Send(from, ok)
		ack := bob.Expect("ACK")
		assert.Equal(t, mustCSeq(t, invite), mustCSeq(t, ack.Request))
		require.NoError(t, <-errc)
		assert.Equal(t, []string{"one 5 1 INVITE", "one 6 1 INVITE", "two 1 1 INVITE"}, normalize(pracks, mustCSeq(t, invite)))
		// The confirmed dialog goes on after the PRACK's CSeq.
		go func() { _ = call.Bye(context.Background()) }()
		bye := bob.Expect("BYE")
		assert.Greater(t, mustCSeq(t, bye.Request), mustCSeq(t, invite))
		bye.Reply(200)
		<-call.Done()
	})
}

func mustCSeq(t *testing.T, r *message.Request) uint32 {
	c, err := r.Header.CSeq()
	require.NoError(t, err)
	return c.Seq
}

// normalize writes the INVITE's CSeq in RAck values as 1.
func normalize(pracks []string, inviteSeq uint32) []string {
	out := make([]string, len(pracks))
	for i, p := range pracks {
		out[i] = strings.Replace(p, fmt.Sprintf(" %d INVITE", inviteSeq), " 1 INVITE", 1)
	}
	return out
}

// TestSimPrackUnknownRAck: as UAS, bob answers a PRACK that matches no
// unacknowledged reliable response with 481 (RFC 3262 §3) and keeps
// repeating his 180 until the right PRACK comes.
func TestSimPrackUnknownRAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(15)
		defer n.Close()
		invs := make(chan *sip.Invitation, 1)
		simUA(t, n, "bob", bobAddr, sip.UserAgentOptions{Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			assert.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
			invs <- inv
		}}})
		alice := newPeer(t, n, "alice", aliceAddr)
		to := net.UDPAddrFromAddrPort(bobAddr)
		req := func(method string, cseq int, toTag, extra string) *message.Request {
			tt := ""
			if toTag != "" {
				tt = ";tag=" + toTag
			}
			r, err := message.ParseRequest([]byte(method + " sip:bob@" + bobAddr.String() + " SIP/2.0\r\n" +
				"Via: SIP/2.0/UDP " + aliceAddr.String() + ";branch=z9hG4bK" + fmt.Sprint(method, cseq) + "\r\n" +
				"From: <sip:alice@" + aliceAddr.String() + ">;tag=a1\r\nTo: <sip:bob@" + bobAddr.String() + ">" + tt + "\r\n" +
				"Call-ID: prack481\r\nCSeq: " + fmt.Sprint(cseq) + " " + method + "\r\nMax-Forwards: 70\r\n" +
				"Contact: <sip:alice@" + aliceAddr.String() + ">\r\n" + extra + "Content-Length: 0\r\n\r\n"))
			require.NoError(t, err)
			return r
		}
		alice.Send(to, req("INVITE", 1, "", "Require: 100rel\r\n"))
		read := func() *message.Response {
			for {
				if r := alice.Response(); r.StatusCode != 100 {
					return r
				}
			}
		}
		ringing := read()
		require.Equal(t, 180, ringing.StatusCode)
		assert.True(t, ringing.Header.HasToken("Require", "100rel"))
		rseq, ok, err := ringing.Header.RSeq()
		require.True(t, ok)
		require.NoError(t, err)
		tag := ringing.Header.ToTag()
		alice.Send(to, req("PRACK", 2, tag, fmt.Sprintf("RAck: %d 1 INVITE\r\n", rseq+1)))
		r := read()
		for r.StatusCode == 180 { // a repeat of the 180 may come first
			r = read()
		}
		assert.Equal(t, 481, r.StatusCode, "a PRACK for an RSeq never sent")
		alice.Send(to, req("PRACK", 3, tag, fmt.Sprintf("RAck: %d 1 INVITE\r\n", rseq)))
		r = read()
		for r.StatusCode == 180 {
			r = read()
		}
		assert.Equal(t, 200, r.StatusCode)
		c, _ := r.Header.CSeq()
		assert.Equal(t, "PRACK", c.Method)
		inv := <-invs
		require.NoError(t, inv.Reject(context.Background(), 486, ""))
		assert.Equal(t, 486, read().StatusCode)
	})
}
