package sip

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

// subscribeFromPeer sends an out-of-dialog SUBSCRIBE from peer to ua.
func subscribeFromPeer(peer *sipPeer, ua *UserAgent, event, expires string) (*message.Request, *net.UDPAddr) {
	to, err := net.ResolveUDPAddr("udp", ua.listenAddrs[0].addr.String())
	require.NoError(peer.t, err)
	req := peer.newRequest("SUBSCRIBE", message.MustParseURI(addr(ua)),
		"From: <sip:watcher@"+peer.addr()+">;tag=w1", "To: <"+addr(ua)+">",
		"Call-ID: sub-"+itoa(peer.n), "CSeq: 1 SUBSCRIBE", "Contact: <sip:watcher@"+peer.addr()+">",
		"Event: "+event)
	if expires != "" {
		req.Header.Add("Expires", expires)
	}
	peer.send(to, req)
	return req, to
}

// inDialog builds a request of the watcher's dialog with bob.
func inDialog(peer *sipPeer, method string, ok *message.Response, seq int, headers ...string) *message.Request {
	contacts, err := ok.Header.Contacts()
	require.NoError(peer.t, err)
	require.Len(peer.t, contacts, 1)
	to, _ := ok.Header.To()
	from, _ := ok.Header.From()
	hs := append([]string{"From: " + from.String(), "To: " + to.String(), "Call-ID: " + ok.Header.CallID(),
		"CSeq: " + itoa(seq) + " " + method, "Contact: <sip:watcher@" + peer.addr() + ">"}, headers...)
	return peer.newRequest(method, contacts[0].URI, hs...)
}

func TestNotifierRefreshAndExpiry(t *testing.T) {
	subs := make(chan *IncomingSubscription, 4)
	bob := startUA(t, "bob", UserAgentDelegate{OnSubscribe: func(s *IncomingSubscription) {
		// Lifetimes are capped at 1 s.
		require.NoError(t, s.Accept(ctx5(t), AcceptSubscriptionOptions{Expires: 1, ContentType: "text/plain", Body: []byte("idle"),
			ExtraHeaders: []string{"X-Accepted: yes"}}))
		subs <- s
	}})
	peer := newSIPPeer(t)
	_, to := subscribeFromPeer(peer, bob, "dialog", "60")
	ok := peer.response("SUBSCRIBE", 2*time.Second)
	require.Equal(t, 200, ok.StatusCode)
	assert.Equal(t, "1", ok.Header.Get("Expires"))
	assert.Equal(t, "yes", ok.Header.Get("X-Accepted"))
	assert.NotEmpty(t, ok.Header.ToTag())
	notify, from := peer.request("NOTIFY", 2*time.Second)
	assert.Equal(t, "sip:watcher@"+peer.addr(), notify.URI.String())
	assert.Equal(t, "active;expires=1", notify.Header.Get("Subscription-State"))
	assert.Equal(t, "dialog", notify.Header.Get("Event"))
	assert.Equal(t, "idle", string(notify.Body))
	assert.Equal(t, "w1", notify.Header.ToTag())
	assert.Equal(t, ok.Header.ToTag(), notify.Header.FromTag())
	assert.NotEmpty(t, notify.Header.Get("Contact"))
	peer.send(from, message.NewResponse(notify, 200, "", ""))
	is := <-subs

	// A refresh of another package: 489.
	peer.send(to, inDialog(peer, "SUBSCRIBE", ok, 2, "Event: presence", "Expires: 60"))
	assert.Equal(t, 489, peer.response("SUBSCRIBE", 2*time.Second).StatusCode)

	// A refresh: 200 with the capped Expires, and a NOTIFY of the state.
	peer.send(to, inDialog(peer, "SUBSCRIBE", ok, 3, "Event: dialog", "Expires: 60"))
	r := peer.response("SUBSCRIBE", 2*time.Second)
	assert.Equal(t, 200, r.StatusCode)
	assert.Equal(t, "1", r.Header.Get("Expires"))
	refreshed := time.Now()
	notify2, from := peer.request("NOTIFY", 2*time.Second)
	assert.Equal(t, "active;expires=1", notify2.Header.Get("Subscription-State"))
	assert.Equal(t, "idle", string(notify2.Body))
	c1, _ := notify.Header.CSeq()
	c2, _ := notify2.Header.CSeq()
	assert.Equal(t, c1.Seq+1, c2.Seq)
	peer.send(from, message.NewResponse(notify2, 200, "", ""))

	// No refresh after that: the subscription times out.
	final, from := peer.request("NOTIFY", 3*time.Second)
	assert.GreaterOrEqual(t, time.Since(refreshed), 900*time.Millisecond)
	assert.Equal(t, "terminated;reason=timeout", final.Header.Get("Subscription-State"))
	assert.Empty(t, final.Body)
	peer.send(from, message.NewResponse(final, 200, "", ""))
	require.Eventually(t, func() bool { return is.State() == SubscriptionTerminated }, 2*time.Second, 5*time.Millisecond)
	clean(t, bob)

	// A refresh now: 481.
	peer.send(to, inDialog(peer, "SUBSCRIBE", ok, 4, "Event: dialog", "Expires: 60"))
	assert.Equal(t, 481, peer.response("SUBSCRIBE", 2*time.Second).StatusCode)
}

func TestNotifierFetchAndErrors(t *testing.T) {
	subs := make(chan *IncomingSubscription, 4)
	bob := startUA(t, "bob", UserAgentDelegate{OnSubscribe: func(s *IncomingSubscription) {
		assert.ErrorIs(t, s.Notify(ctx5(t), SubscriptionActive, "", nil), ErrInvalidState, "not accepted yet")
		assert.ErrorIs(t, s.Terminate(ctx5(t), ""), ErrInvalidState, "not accepted yet")
		assert.ErrorIs(t, s.Accept(ctx5(t), AcceptSubscriptionOptions{State: SubscriptionTerminated}), ErrBadOptions)
		assert.ErrorIs(t, s.Reject(context.Background(), 200, ""), ErrBadOptions)
		require.NoError(t, s.Accept(ctx5(t), AcceptSubscriptionOptions{ContentType: "text/plain", Body: []byte("3 new")}))
		subs <- s
	}})
	peer := newSIPPeer(t)

	// A fetch (Expires: 0): 200, one NOTIFY with the state, terminated.
	subscribeFromPeer(peer, bob, "message-summary", "0")
	ok := peer.response("SUBSCRIBE", 2*time.Second)
	assert.Equal(t, 200, ok.StatusCode)
	assert.Equal(t, "0", ok.Header.Get("Expires"))
	notify, from := peer.request("NOTIFY", 2*time.Second)
	assert.Equal(t, "terminated;reason=timeout", notify.Header.Get("Subscription-State"))
	assert.Equal(t, "3 new", string(notify.Body))
	peer.send(from, message.NewResponse(notify, 200, "", ""))
	is := <-subs
	require.Eventually(t, func() bool { return is.State() == SubscriptionTerminated }, 2*time.Second, 5*time.Millisecond)
	clean(t, bob)

	// A SUBSCRIBE without Event: 400.
	to, _ := net.ResolveUDPAddr("udp", bob.listenAddrs[0].addr.String())
	req := peer.newRequest("SUBSCRIBE", message.MustParseURI(addr(bob)),
		"From: <sip:watcher@"+peer.addr()+">;tag=w2", "To: <"+addr(bob)+">",
		"Call-ID: noevent", "CSeq: 1 SUBSCRIBE", "Contact: <sip:watcher@"+peer.addr()+">")
	peer.send(to, req)
	assert.Equal(t, 400, peer.response("SUBSCRIBE", 2*time.Second).StatusCode)

	// A NOTIFY that fails ends the subscription; Notify reports it.
	subscribeFromPeer(peer, bob, "presence", "")
	ok = peer.response("SUBSCRIBE", 2*time.Second)
	assert.Equal(t, "3600", ok.Header.Get("Expires"))
	notify, from = peer.request("NOTIFY", 2*time.Second)
	peer.send(from, message.NewResponse(notify, 200, "", ""))
	is = <-subs
	errc := make(chan error, 1)
	go func() { errc <- is.Notify(ctx5(t), SubscriptionActive, "text/plain", []byte("4 new")) }()
	notify, from = peer.request("NOTIFY", 2*time.Second)
	assert.Equal(t, "4 new", string(notify.Body))
	peer.send(from, message.NewResponse(notify, 481, "", ""))
	var re *ResponseError
	require.ErrorAs(t, <-errc, &re)
	assert.Equal(t, 481, re.StatusCode)
	assert.Equal(t, SubscriptionTerminated, is.State())
	clean(t, bob)
}

// TestStopAnswersUnansweredSubscribe: a SUBSCRIBE still in OnSubscribe
// when the UserAgent stops gets 503, its subscription ends (listeners
// told), and the application's late Accept gets ErrStopped.
func TestStopAnswersUnansweredSubscribe(t *testing.T) {
	arrived := make(chan *IncomingSubscription, 1)
	release := make(chan struct{})
	acceptErr := make(chan error, 1)
	bob := startUA(t, "bob", UserAgentDelegate{OnSubscribe: func(s *IncomingSubscription) {
		arrived <- s
		<-release
		acceptErr <- s.Accept(context.Background(), AcceptSubscriptionOptions{})
	}})
	peer := newSIPPeer(t)
	subscribeFromPeer(peer, bob, "presence", "60")
	var s *IncomingSubscription
	select {
	case s = <-arrived:
	case <-time.After(2 * time.Second):
		t.Fatal("no OnSubscribe")
	}
	ended := make(chan SubscriptionState, 1)
	s.OnStateChange(func(st SubscriptionState) { ended <- st })
	stopped := make(chan error, 1)
	go func() { stopped <- bob.Stop(ctx5(t)) }()
	assert.Equal(t, 503, peer.response("SUBSCRIBE", 2*time.Second).StatusCode)
	close(release)
	require.ErrorIs(t, <-acceptErr, ErrStopped)
	require.NoError(t, <-stopped)
	assert.Equal(t, SubscriptionTerminated, s.State())
	select {
	case st := <-ended:
		assert.Equal(t, SubscriptionTerminated, st)
	case <-time.After(2 * time.Second):
		t.Fatal("state listener not told")
	}
}
