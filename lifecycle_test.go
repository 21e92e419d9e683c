package sip

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

const peerOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

// TestNoMediaRefusesOffers: a UserAgent with NoMedia cannot answer a
// session description offer: an INVITE, re-INVITE or UPDATE carrying one
// gets 488, never a 2xx without an answer (issue 17, finding 10). An
// INVITE without an offer is still taken.
func TestNoMediaRefusesOffers(t *testing.T) {
	invs := make(chan *Invitation, 2)
	bob := startUAWith(t, UserAgentOptions{URI: "sip:bob@127.0.0.1", MediaFactory: NoMedia,
		Delegate: UserAgentDelegate{OnInvite: func(inv *Invitation) {
			invs <- inv
			assert.NoError(t, inv.Accept(ctx5(t), AcceptOptions{}))
		}}})
	peer := newSIPPeer(t)
	to, err := net.ResolveUDPAddr("udp", bob.listenAddrs[0].addr.String())
	require.NoError(t, err)
	invite := func(callID string, body bool, headers ...string) *message.Request {
		hs := append([]string{"From: <sip:alice@" + peer.addr() + ">;tag=a1", "To: <" + addr(bob) + ">",
			"Call-ID: " + callID, "Contact: <sip:alice@" + peer.addr() + ">"}, headers...)
		if len(headers) == 0 {
			hs = append(hs, "CSeq: 1 INVITE")
		}
		req := peer.newRequest("INVITE", message.MustParseURI(addr(bob)), hs...)
		if body {
			req.Header.Add("Content-Type", "application/sdp")
			req.Body = []byte(peerOffer)
		}
		return req
	}

	// An INVITE with an offer: 488, the application never sees it.
	req := invite("nomedia-1", true)
	peer.send(to, req)
	resp := peer.response("INVITE", 2*time.Second)
	require.Equal(t, 488, resp.StatusCode)
	assert.Empty(t, invs)
	ack := peer.newRequest("ACK", req.URI, "From: "+req.Header.Get("From"), "To: "+resp.Header.Get("To"),
		"Call-ID: nomedia-1", "CSeq: 1 ACK")
	peer.send(to, ack)

	// An INVITE without: answered, with no body.
	req = invite("nomedia-2", false)
	peer.send(to, req)
	var ok *message.Response
	for ok == nil || ok.StatusCode < 200 {
		ok = peer.response("INVITE", 2*time.Second)
	}
	require.Equal(t, 200, ok.StatusCode)
	assert.Empty(t, ok.Body)
	inv := <-invs
	peer.send(to, inDialog(peer, "ACK", ok, 1))
	require.Eventually(t, func() bool { return inv.State() == SessionEstablished }, 2*time.Second, 10*time.Millisecond)

	// In the call: an UPDATE and a re-INVITE with offers get 488 and
	// leave the call as it was.
	upd := inDialog(peer, "UPDATE", ok, 2, "Content-Type: application/sdp")
	upd.Body = []byte(peerOffer)
	peer.send(to, upd)
	assert.Equal(t, 488, peer.response("UPDATE", 2*time.Second).StatusCode)
	re := inDialog(peer, "INVITE", ok, 3, "Content-Type: application/sdp")
	re.Body = []byte(peerOffer)
	peer.send(to, re)
	assert.Equal(t, 488, peer.response("INVITE", 2*time.Second).StatusCode)
	assert.Equal(t, SessionEstablished, inv.State())
	peer.send(to, inDialog(peer, "BYE", ok, 4))
	assert.Equal(t, 200, peer.response("BYE", 2*time.Second).StatusCode)
	<-inv.Done()
}
