package sip

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

// sipPeer is a TestPeer on a loopback UDP socket, with the reading
// helpers of the subscription tests (by method, with a wait).
type sipPeer struct {
	*TestPeer
	n int
}

func newSIPPeer(t *testing.T) *sipPeer {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	return &sipPeer{TestPeer: NewTestPeer(t, c, "peer")}
}

func (p *sipPeer) addr() string { return p.Addr().String() }

func (p *sipPeer) send(to *net.UDPAddr, m message.Message) {
	p.t.Helper()
	p.Send(to, m)
}

// next returns the next message, or fails the test after wait.
func (p *sipPeer) next(wait time.Duration) (message.Message, *net.UDPAddr) {
	p.t.Helper()
	m, from := p.Next(wait)
	return m, from.(*net.UDPAddr)
}

// request returns the next request of method, skipping anything else
// (retransmissions, answers to earlier requests).
func (p *sipPeer) request(method string, wait time.Duration) (*message.Request, *net.UDPAddr) {
	p.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		m, from := p.next(time.Until(deadline))
		if r, ok := m.(*message.Request); ok && r.Method == method {
			return r, from
		}
	}
}

// response returns the next response to a request of method.
func (p *sipPeer) response(method string, wait time.Duration) *message.Response {
	p.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		m, _ := p.next(time.Until(deadline))
		if r, ok := m.(*message.Response); ok {
			if c, _ := r.Header.CSeq(); c.Method == method {
				return r
			}
		}
	}
}

// newRequest builds a request from the peer, with its Via.
func (p *sipPeer) newRequest(method string, uri message.URI, headers ...string) *message.Request {
	p.n++
	req := &message.Request{Method: method, URI: uri}
	req.Header.Add("Via", "SIP/2.0/UDP "+p.addr()+";branch="+message.NewBranch()+";rport")
	req.Header.Add("Max-Forwards", "70")
	for _, h := range headers {
		n, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(n), strings.TrimSpace(v))
	}
	return req
}

// startUAWith starts a UserAgent on UDP loopback with options.
func startUAWith(t *testing.T, opts UserAgentOptions) *UserAgent {
	t.Helper()
	opts.Transport.Listen = []string{"udp://127.0.0.1:0"}
	return StartTestUA(t, opts)
}

// recorder collects the states a listener sees.
type recorder[S any] struct {
	mu sync.Mutex
	s  []S
}

func (r *recorder[S]) add(s S) { r.mu.Lock(); r.s = append(r.s, s); r.mu.Unlock() }

func (r *recorder[S]) get() []S {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]S(nil), r.s...)
}

func nextNote(t *testing.T, ch chan *Notification, wait time.Duration) *Notification {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(wait):
		require.FailNow(t, "no NOTIFY")
		return nil
	}
}

// clean asserts that ua holds no dialog, usage or claim any more.
func clean(t *testing.T, ua *UserAgent) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, ua.call(ctx5(t), func() { n = ua.dialogs.Len() + len(ua.usages) + len(ua.claims) }))
		return n == 0
	}, 2*time.Second, 5*time.Millisecond, "dialogs, usages and claims freed")
}

func TestSubscribeNotifyBetweenUserAgents(t *testing.T) {
	subs := make(chan *IncomingSubscription, 1)
	bob := startUA(t, "bob", UserAgentDelegate{OnSubscribe: func(s *IncomingSubscription) {
		assert.Equal(t, "presence", s.Event())
		assert.Equal(t, 2*time.Second, s.Expires())
		assert.Equal(t, "text/plain", s.Request.Header.Get("Accept"))
		assert.Equal(t, "x", string(s.Body()))
		assert.False(t, s.Flow.IsZero())
		require.NoError(t, s.Accept(ctx5(t), AcceptSubscriptionOptions{ContentType: "text/plain", Body: []byte("open")}))
		assert.ErrorIs(t, s.Accept(ctx5(t), AcceptSubscriptionOptions{}), ErrInvalidState, "one answer only")
		subs <- s
	}})
	alice := startUA(t, "alice", UserAgentDelegate{})

	sub, err := NewSubscriber(alice, addr(bob), "presence", SubscriberOptions{
		Expires: 2, Accept: []string{"text/plain"}, ContentType: "text/x-filter", Body: []byte("x"),
	})
	require.NoError(t, err)
	notes := make(chan *Notification, 16)
	sub.OnNotify(func(n *Notification) { notes <- n })
	var states recorder[SubscriptionState]
	sub.OnStateChange(states.add)

	require.NoError(t, sub.Subscribe(ctx5(t), SubscribeOptions{ExtraHeaders: []string{"X-Test: 1"}}))
	n := nextNote(t, notes, 2*time.Second)
	assert.Equal(t, SubscriptionActive, n.State)
	assert.Equal(t, "open", string(n.Body()))
	assert.Equal(t, "text/plain", n.ContentType())
	assert.InDelta(t, 2, n.Expires.Seconds(), 1)
	assert.Equal(t, SubscriptionActive, sub.State())
	is := <-subs
	assert.Equal(t, SubscriptionActive, is.State())

	// A state change.
	require.NoError(t, is.Notify(ctx5(t), SubscriptionActive, "text/plain", []byte("closed")))
	n2 := nextNote(t, notes, 2*time.Second)
	assert.Equal(t, "closed", string(n2.Body()))
	c1, _ := n.Request.Header.CSeq()
	c2, _ := n2.Request.Header.CSeq()
	assert.Equal(t, c1.Seq+1, c2.Seq)

	// The lifetime is 2 s: the Subscriber refreshes after 1 s, and the
	// notifier answers the refresh with a NOTIFY of the current state.
	n3 := nextNote(t, notes, 3*time.Second)
	assert.Equal(t, "closed", string(n3.Body()))
	assert.Equal(t, SubscriptionActive, n3.State)
	// Past the first lifetime, both sides are still active.
	time.Sleep(1200 * time.Millisecond)
	assert.Equal(t, SubscriptionActive, sub.State())
	assert.Equal(t, SubscriptionActive, is.State())

	// Allow: SUBSCRIBE where OnSubscribe is set, NOTIFY while a
	// Subscriber is in use.
	resp, err := alice.Options(ctx5(t), addr(bob), RequestOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ACK, CANCEL, OPTIONS, SUBSCRIBE", resp.Header.Get("Allow"))
	resp, err = bob.Options(ctx5(t), addr(alice), RequestOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ACK, CANCEL, OPTIONS, NOTIFY", resp.Header.Get("Allow"))

	require.NoError(t, sub.Unsubscribe(ctx5(t)))
	assert.Equal(t, SubscriptionTerminated, sub.State())
	var last *Notification
	for last == nil || last.State != SubscriptionTerminated {
		last = nextNote(t, notes, 2*time.Second)
	}
	assert.Equal(t, "timeout", last.Reason)
	require.Eventually(t, func() bool { return is.State() == SubscriptionTerminated }, 2*time.Second, 5*time.Millisecond)
	clean(t, alice)
	clean(t, bob)
	assert.ErrorIs(t, sub.Subscribe(ctx5(t), SubscribeOptions{}), ErrInvalidState)
	assert.NoError(t, sub.Unsubscribe(ctx5(t)), "idempotent")
	assert.ErrorIs(t, is.Notify(ctx5(t), SubscriptionActive, "", nil), ErrInvalidState)
	assert.NoError(t, is.Terminate(ctx5(t), ""), "idempotent")
	require.Eventually(t, func() bool { return len(states.get()) == 3 }, time.Second, 5*time.Millisecond)
	assert.Equal(t, []SubscriptionState{SubscriptionNotifyWait, SubscriptionActive, SubscriptionTerminated}, states.get())

	resp, err = bob.Options(ctx5(t), addr(alice), RequestOptions{})
	require.NoError(t, err)
	assert.Equal(t, "ACK, CANCEL, OPTIONS", resp.Header.Get("Allow"))
}

func TestNotifierPendingThenTerminate(t *testing.T) {
	subs := make(chan *IncomingSubscription, 2)
	bob := startUA(t, "bob", UserAgentDelegate{OnSubscribe: func(s *IncomingSubscription) {
		if s.Event() == "dialog" {
			require.NoError(t, s.Reject(context.Background(), 489, ""))
			assert.Equal(t, SubscriptionTerminated, s.State())
			return
		}
		// Returning without an answer accepts as pending.
		subs <- s
	}})
	alice := startUA(t, "alice", UserAgentDelegate{})

	sub, err := NewSubscriber(alice, addr(bob), "presence;id=7", SubscriberOptions{})
	require.NoError(t, err)
	var states recorder[SubscriptionState]
	sub.OnStateChange(states.add)
	require.NoError(t, sub.Subscribe(ctx5(t), SubscribeOptions{}))
	require.Eventually(t, func() bool { return sub.State() == SubscriptionPending }, 2*time.Second, 5*time.Millisecond)
	is := <-subs
	assert.Equal(t, "presence;id=7", is.Request.Header.Get("Event"))
	require.Eventually(t, func() bool { return is.State() == SubscriptionPending }, 2*time.Second, 5*time.Millisecond)

	require.NoError(t, is.Notify(ctx5(t), SubscriptionActive, "text/plain", []byte("authorized")))
	require.Eventually(t, func() bool { return sub.State() == SubscriptionActive }, 2*time.Second, 5*time.Millisecond)

	// The application ends it.
	require.NoError(t, is.Terminate(ctx5(t), "deactivated"))
	assert.Equal(t, SubscriptionTerminated, is.State())
	require.Eventually(t, func() bool { return sub.State() == SubscriptionTerminated }, 2*time.Second, 5*time.Millisecond)
	clean(t, alice)
	clean(t, bob)
	require.Eventually(t, func() bool { return len(states.get()) == 4 }, time.Second, 5*time.Millisecond)
	assert.Equal(t, []SubscriptionState{SubscriptionNotifyWait, SubscriptionPending, SubscriptionActive, SubscriptionTerminated}, states.get())

	// A package the notifier does not serve: 489 from the application.
	sub, _ = NewSubscriber(alice, addr(bob), "dialog", SubscriberOptions{})
	err = sub.Subscribe(ctx5(t), SubscribeOptions{})
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 489, re.StatusCode)
	assert.Equal(t, SubscriptionTerminated, sub.State())

	// Without OnSubscribe, SUBSCRIBE is not allowed at all.
	sub, _ = NewSubscriber(bob, addr(alice), "presence", SubscriberOptions{})
	err = sub.Subscribe(ctx5(t), SubscribeOptions{})
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 405, re.StatusCode)
	assert.Equal(t, "ACK, CANCEL, OPTIONS", re.Response.Header.Get("Allow"))
	assert.Equal(t, SubscriptionTerminated, sub.State())
	clean(t, alice)
	clean(t, bob)
}

func TestSubscribeNotifyBefore2xx(t *testing.T) {
	alice := startUA(t, "alice", UserAgentDelegate{})
	peer := newSIPPeer(t)
	sub, err := NewSubscriber(alice, "sip:bob@"+peer.addr(), "dialog", SubscriberOptions{Expires: 600})
	require.NoError(t, err)
	notes := make(chan *Notification, 4)
	sub.OnNotify(func(n *Notification) { notes <- n })

	errc := make(chan error, 1)
	go func() { errc <- sub.Subscribe(ctx5(t), SubscribeOptions{}) }()
	subReq, from := peer.request("SUBSCRIBE", 2*time.Second)
	assert.Equal(t, "dialog", subReq.Header.Get("Event"))
	assert.Equal(t, "600", subReq.Header.Get("Expires"))
	contacts, err := subReq.Header.Contacts()
	require.NoError(t, err)
	require.Len(t, contacts, 1)
	subFrom, _ := subReq.Header.From()
	subSeq, _ := subReq.Header.CSeq()

	// The NOTIFY overtakes the 2xx.
	bobContact := "<sip:bob@" + peer.addr() + ">"
	notify := func(seq, state, event string) *message.Request {
		return peer.newRequest("NOTIFY", contacts[0].URI,
			"From: <sip:bob@"+peer.addr()+">;tag=bobtag", "To: "+subFrom.String(),
			"Call-ID: "+subReq.Header.CallID(), "CSeq: "+seq+" NOTIFY", "Contact: "+bobContact,
			"Event: "+event, "Subscription-State: "+state)
	}
	first := notify("1", "active;expires=600", "dialog")
	first.Header.Add("Content-Type", "application/dialog-info+xml")
	first.Body = []byte("<dialog-info/>")
	peer.send(from, first)
	resp := peer.response("NOTIFY", 2*time.Second)
	assert.Equal(t, 200, resp.StatusCode)
	n := nextNote(t, notes, 2*time.Second)
	assert.Equal(t, "<dialog-info/>", string(n.Body()))
	assert.Equal(t, SubscriptionActive, sub.State())

	ok := message.NewResponse(subReq, 202, "", "bobtag")
	ok.Header.Add("Contact", bobContact)
	ok.Header.Add("Expires", "600")
	peer.send(from, ok)
	require.NoError(t, <-errc)
	assert.Equal(t, SubscriptionActive, sub.State())

	// A NOTIFY of another event package: 489.
	peer.send(from, notify("2", "active;expires=600", "presence"))
	resp = peer.response("NOTIFY", 2*time.Second)
	assert.Equal(t, 489, resp.StatusCode)
	// A NOTIFY without Subscription-State: 400.
	bad := notify("3", "active", "dialog")
	bad.Header.Del("Subscription-State")
	peer.send(from, bad)
	resp = peer.response("NOTIFY", 2*time.Second)
	assert.Equal(t, 400, resp.StatusCode)

	// Unsubscribe: an in-dialog SUBSCRIBE to the NOTIFY's Contact, with
	// the CSeq after the first SUBSCRIBE's.
	go func() { errc <- sub.Unsubscribe(ctx5(t)) }()
	unsub, from := peer.request("SUBSCRIBE", 2*time.Second)
	assert.Equal(t, "0", unsub.Header.Get("Expires"))
	assert.Equal(t, "sip:bob@"+peer.addr(), unsub.URI.String())
	assert.Equal(t, "bobtag", unsub.Header.ToTag())
	assert.Equal(t, subReq.Header.CallID(), unsub.Header.CallID())
	unsubSeq, _ := unsub.Header.CSeq()
	assert.Equal(t, subSeq.Seq+1, unsubSeq.Seq)
	peer.send(from, message.NewResponse(unsub, 200, "", ""))
	select {
	case <-errc:
		require.FailNow(t, "Unsubscribe returned before the terminating NOTIFY")
	case <-time.After(50 * time.Millisecond):
	}
	peer.send(from, notify("4", "terminated;reason=timeout", "dialog"))
	resp = peer.response("NOTIFY", 2*time.Second)
	assert.Equal(t, 200, resp.StatusCode)
	require.NoError(t, <-errc)
	assert.Equal(t, SubscriptionTerminated, sub.State())
	last := nextNote(t, notes, 2*time.Second)
	assert.Equal(t, SubscriptionTerminated, last.State)
	assert.Equal(t, "timeout", last.Reason)
	clean(t, alice)

	// A NOTIFY after the end: 481.
	peer.send(from, notify("5", "active", "dialog"))
	resp = peer.response("NOTIFY", 2*time.Second)
	assert.Equal(t, 481, resp.StatusCode)
}

func TestSubscribeNoNotifyAfter2xx(t *testing.T) {
	// RFC 6665 §4.1.2.4: no NOTIFY within 64*T1 after the 2xx ends the
	// subscription. T1 = 10 ms: 640 ms.
	alice := startUAWith(t, UserAgentOptions{URI: "sip:alice@127.0.0.1", Timers: Timers{T1: 10 * time.Millisecond}})
	peer := newSIPPeer(t)
	sub, err := NewSubscriber(alice, "sip:bob@"+peer.addr(), "message-summary", SubscriberOptions{})
	require.NoError(t, err)
	var states recorder[SubscriptionState]
	sub.OnStateChange(states.add)
	errc := make(chan error, 1)
	go func() { errc <- sub.Subscribe(ctx5(t), SubscribeOptions{}) }()
	req, from := peer.request("SUBSCRIBE", 2*time.Second)
	ok := message.NewResponse(req, 200, "", "bobtag")
	ok.Header.Add("Contact", "<sip:bob@"+peer.addr()+">")
	peer.send(from, ok)
	start := time.Now()
	require.NoError(t, <-errc)
	assert.Equal(t, SubscriptionNotifyWait, sub.State())
	require.Eventually(t, func() bool { return sub.State() == SubscriptionTerminated }, 3*time.Second, 5*time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), 600*time.Millisecond)
	clean(t, alice)
	require.Eventually(t, func() bool { return len(states.get()) == 2 }, time.Second, 5*time.Millisecond)
	assert.Equal(t, []SubscriptionState{SubscriptionNotifyWait, SubscriptionTerminated}, states.get())
}

func TestSubscribeRefreshRefused(t *testing.T) {
	// A refresh answered 481 ends the subscription (RFC 6665 §4.1.2.2); a
	// rejected NOTIFY ends it too.
	alice := startUA(t, "alice", UserAgentDelegate{})
	peer := newSIPPeer(t)
	sub, err := NewSubscriber(alice, "sip:bob@"+peer.addr(), "presence", SubscriberOptions{})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- sub.Subscribe(ctx5(t), SubscribeOptions{}) }()
	req, from := peer.request("SUBSCRIBE", 2*time.Second)
	ok := message.NewResponse(req, 200, "", "bobtag")
	ok.Header.Add("Contact", "<sip:bob@"+peer.addr()+">")
	peer.send(from, ok)
	require.NoError(t, <-errc)

	// Subscribe on an established subscription refreshes it.
	go func() { errc <- sub.Subscribe(ctx5(t), SubscribeOptions{}) }()
	ref, from := peer.request("SUBSCRIBE", 2*time.Second)
	assert.Equal(t, "bobtag", ref.Header.ToTag())
	peer.send(from, message.NewResponse(ref, 481, "", ""))
	var re *ResponseError
	require.ErrorAs(t, <-errc, &re)
	assert.Equal(t, 481, re.StatusCode)
	assert.Equal(t, SubscriptionTerminated, sub.State())
	clean(t, alice)

	// A NOTIFY the application rejects.
	sub, _ = NewSubscriber(alice, "sip:bob@"+peer.addr(), "presence", SubscriberOptions{})
	sub.OnNotify(func(n *Notification) {
		require.NoError(t, n.Reject(context.Background(), 403, ""))
		assert.ErrorIs(t, n.Accept(context.Background()), ErrInvalidState)
		assert.ErrorIs(t, n.Reject(context.Background(), 200, ""), ErrBadOptions)
	})
	go func() { errc <- sub.Subscribe(ctx5(t), SubscribeOptions{}) }()
	req, from = peer.request("SUBSCRIBE", 2*time.Second)
	ok = message.NewResponse(req, 200, "", "bobtag2")
	ok.Header.Add("Contact", "<sip:bob@"+peer.addr()+">")
	peer.send(from, ok)
	require.NoError(t, <-errc)
	reqFrom, _ := req.Header.From()
	contacts, _ := req.Header.Contacts()
	notify := peer.newRequest("NOTIFY", contacts[0].URI,
		"From: <sip:bob@"+peer.addr()+">;tag=bobtag2", "To: "+reqFrom.String(),
		"Call-ID: "+req.Header.CallID(), "CSeq: 1 NOTIFY", "Contact: <sip:bob@"+peer.addr()+">",
		"Event: presence", "Subscription-State: active;expires=60")
	peer.send(from, notify)
	assert.Equal(t, 403, peer.response("NOTIFY", 2*time.Second).StatusCode)
	require.Eventually(t, func() bool { return sub.State() == SubscriptionTerminated }, 2*time.Second, 5*time.Millisecond)
	clean(t, alice)
}

func TestSubscriberOptions(t *testing.T) {
	ua, _ := NewUserAgent(UserAgentOptions{URI: "sip:alice@example.com"})
	_, err := NewSubscriber(ua, "nope", "presence", SubscriberOptions{})
	assert.ErrorIs(t, err, ErrBadOptions)
	_, err = NewSubscriber(ua, "sip:bob@example.com", "", SubscriberOptions{})
	assert.ErrorIs(t, err, ErrBadOptions)
	_, err = NewSubscriber(ua, "sip:bob@example.com", "a b", SubscriberOptions{})
	assert.ErrorIs(t, err, ErrBadOptions)
	_, err = NewSubscriber(ua, "sip:bob@example.com", "presence", SubscriberOptions{ExtraHeaders: []string{"bad"}})
	assert.ErrorIs(t, err, ErrBadOptions)
	_, err = NewSubscriber(ua, "sip:bob@example.com", "presence", SubscriberOptions{Body: []byte("x")})
	assert.ErrorIs(t, err, ErrBadOptions)
	s, err := NewSubscriber(ua, "sip:bob@example.com", "presence", SubscriberOptions{})
	require.NoError(t, err)
	assert.Equal(t, uint32(3600), s.opts.Expires)
	assert.ErrorIs(t, s.Subscribe(ctx5(t), SubscribeOptions{}), ErrNotStarted)
	assert.Equal(t, SubscriptionInitial, s.State())
	assert.Equal(t, "NotifyWait", SubscriptionNotifyWait.String())
	assert.Equal(t, "Unknown", SubscriptionState(42).String())
	assert.Equal(t, 5*time.Second, refreshDelay(10*time.Second, 0.9))
	assert.Equal(t, 54*time.Second, refreshDelay(60*time.Second, 0.9))
	assert.Equal(t, time.Second, refreshDelay(2*time.Second, 0.9))
}

// TestStopEndsSubscriptions: Stop unsubscribes, and the notifier sees the
// subscription end.
func TestStopEndsSubscriptions(t *testing.T) {
	subs := make(chan *IncomingSubscription, 1)
	bob := startUA(t, "bob", UserAgentDelegate{OnSubscribe: func(s *IncomingSubscription) {
		require.NoError(t, s.Accept(ctx5(t), AcceptSubscriptionOptions{ContentType: "text/plain", Body: []byte("open")}))
		subs <- s
	}})
	alice, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1", Transport: TransportOptions{Listen: []string{"udp://127.0.0.1:0"}}})
	require.NoError(t, err)
	require.NoError(t, alice.Start(ctx5(t)))
	sub, err := NewSubscriber(alice, addr(bob), "presence", SubscriberOptions{})
	require.NoError(t, err)
	require.NoError(t, sub.Subscribe(ctx5(t), SubscribeOptions{}))
	is := <-subs
	require.Eventually(t, func() bool { return sub.State() == SubscriptionActive }, 2*time.Second, 5*time.Millisecond)
	require.NoError(t, alice.Stop(ctx5(t)))
	assert.Equal(t, SubscriptionTerminated, sub.State())
	require.Eventually(t, func() bool { return is.State() == SubscriptionTerminated }, 2*time.Second, 5*time.Millisecond)
}
