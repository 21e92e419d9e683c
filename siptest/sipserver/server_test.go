package sipserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/digest"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
	"github.com/sipua/sip/trace"
	"github.com/sipua/sip/transport"
)

// TestRegister covers the registrar without authentication: Expires and
// contact expires, several bindings, a query, removal of one binding and
// of all with "*", 423 below Min-Expires, and the checks that give 400 and
// 500.
func TestRegister(t *testing.T) {
	srv := startServer(t, Options{})
	alice := newClient(t, srv, "alice", transport.UDP, transport.Config{}, "")

	ok := alice.register(60)
	cts, err := ok.Header.Contacts()
	require.NoError(t, err)
	require.Len(t, cts, 1)
	assert.Equal(t, alice.contact.String(), cts[0].URI.String())
	exp, _ := cts[0].Params.Get("expires")
	assert.Equal(t, "60", exp)
	bs := srv.Bindings("alice")
	require.Len(t, bs, 1)
	assert.Equal(t, transport.UDP, bs[0].Flow.Proto)
	assert.WithinDuration(t, time.Now().Add(time.Minute), bs[0].Expires, 2*time.Second)
	assert.Len(t, srv.Bindings("sip:alice@sipua.test"), 1, "by AOR")

	// A second contact with its own expires parameter; the 200 lists both.
	req := alice.registerRequest(60, "<sip:alice@192.0.2.9:5060>;expires=30")
	req.Header.Set("Call-ID", "other-call-id")
	alice.send(req)
	ok = alice.response(200)
	cts, _ = ok.Header.Contacts()
	require.Len(t, cts, 2)
	assert.Equal(t, "sip:alice@192.0.2.9:5060", cts[0].URI.String(), "most recent first")
	exp, _ = cts[0].Params.Get("expires")
	assert.Equal(t, "30", exp)

	// A query (no Contact) lists the bindings and changes nothing.
	alice.send(alice.registerRequest(-1, []string{}...))
	ok = alice.response(200)
	cts, _ = ok.Header.Contacts()
	assert.Len(t, cts, 2)

	// Below Min-Expires: 423 with the minimum.
	alice.send(alice.registerRequest(5))
	r := alice.response(423)
	assert.Equal(t, "10", r.Header.Get("Min-Expires"))

	// expires=0 removes one binding.
	req = alice.registerRequest(60, "<sip:alice@192.0.2.9:5060>;expires=0")
	req.Header.Set("Call-ID", "other-call-id")
	req.Header.Set("CSeq", "2 REGISTER")
	alice.send(req)
	ok = alice.response(200)
	cts, _ = ok.Header.Contacts()
	assert.Len(t, cts, 1)

	// An old CSeq on the same Call-ID is refused.
	req = alice.registerRequest(60, "<sip:alice@192.0.2.9:5060>")
	req.Header.Set("Call-ID", "other-call-id")
	alice.send(req)
	alice.response(200) // the binding was removed: nothing to compare with
	req = alice.registerRequest(60, "<sip:alice@192.0.2.9:5060>")
	req.Header.Set("Call-ID", "other-call-id")
	alice.send(req)
	alice.response(500)

	// "*" needs Expires: 0.
	alice.send(alice.registerRequest(60, "*"))
	alice.response(400)
	req = alice.registerRequest(0, "*")
	req.Header.Set("CSeq", "9 REGISTER")
	alice.send(req)
	ok = alice.response(200)
	assert.False(t, ok.Header.Has("Contact"))
	assert.Empty(t, srv.Bindings("alice"))

	// Another domain is not ours.
	req = alice.registerRequest(60)
	req.Header.Set("To", "<sip:alice@example.com>")
	alice.send(req)
	alice.response(404)
}

// TestRegisterDigest: with Users, REGISTER is challenged (401), right
// credentials register, wrong ones are challenged again, and one user's
// credentials do not register another.
func TestRegisterDigest(t *testing.T) {
	srv := startServer(t, Options{Users: map[string]string{"alice": "secret", "bob": "hunter2"}})
	alice := newClient(t, srv, "alice", transport.TCP, transport.Config{}, "")

	req := alice.registerRequest(60)
	alice.send(req)
	ch := alice.response(401)
	require.True(t, ch.Header.Has("WWW-Authenticate"))
	assert.Contains(t, ch.Header.Get("WWW-Authenticate"), `realm="sipua.test"`)
	assert.Empty(t, srv.Bindings("alice"))

	alice.creds = digest.NewClient(digest.Credentials{Username: "alice", Password: "wrong"})
	alice.retryAuth(req, ch)
	alice.response(401)

	alice.creds = digest.NewClient(digest.Credentials{Username: "alice", Password: "secret"})
	alice.register(60)
	bs := srv.Bindings("alice")
	require.Len(t, bs, 1)
	assert.Equal(t, transport.TCP, bs[0].Flow.Proto)

	// bob's credentials for alice's AOR.
	mallory := newClient(t, srv, "alice", transport.UDP, transport.Config{}, "")
	mallory.creds = digest.NewClient(digest.Credentials{Username: "bob", Password: "hunter2"})
	req = mallory.registerRequest(60)
	mallory.send(req)
	ch = mallory.response(401)
	mallory.retryAuth(req, ch)
	mallory.response(403)
	assert.Len(t, srv.Bindings("alice"), 1)
}

// TestBindingExpiry: a binding lapses after its expires, on the virtual
// clock of a synctest bubble, and the user is then temporarily
// unavailable.
func TestBindingExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		srv, err := New(Options{MinExpires: time.Second, ListenPacket: n.PacketListener("proxy")})
		require.NoError(t, err)
		defer srv.Close()
		_, err = srv.Listen(t.Context(), "udp", "192.0.2.10:5060")
		require.NoError(t, err)
		alice := newClient(t, srv, "alice", transport.UDP, transport.Config{ListenPacket: n.PacketListener("alice")}, "192.0.2.1:5060")
		bob := newClient(t, srv, "bob", transport.UDP, transport.Config{ListenPacket: n.PacketListener("bob")}, "192.0.2.2:5060")

		bob.register(2)
		require.Len(t, srv.Bindings("bob"), 1)
		time.Sleep(1500 * time.Millisecond)
		require.Len(t, srv.Bindings("bob"), 1)
		time.Sleep(time.Second)
		assert.Empty(t, srv.Bindings("bob"), "lapsed after 2 s")

		alice.send(alice.newRequest("MESSAGE", "sip:bob@sipua.test"))
		alice.response(480)
		alice.send(alice.newRequest("MESSAGE", "sip:carol@sipua.test"))
		alice.response(404)
		bob.tr.Close()
		alice.tr.Close()
		srv.Close()
		synctest.Wait()
	})
}

// TestNotFound: 404 for an unknown user, 480 for a known one without a
// binding (Users given), and the server answers OPTIONS itself.
func TestNotFound(t *testing.T) {
	srv := startServer(t, Options{Users: map[string]string{"alice": "a", "bob": "b"}})
	alice := newClient(t, srv, "alice", transport.UDP, transport.Config{}, "")

	alice.send(alice.newRequest("INVITE", "sip:carol@sipua.test"))
	alice.response(404)
	alice.send(alice.newRequest("INVITE", "sip:bob@sipua.test"))
	alice.response(480)
	alice.quiet(100 * time.Millisecond)

	alice.send(alice.newRequest("OPTIONS", "sip:sipua.test"))
	r := alice.response(200)
	assert.Contains(t, r.Header.Get("Allow"), "INVITE")
	alice.send(alice.newRequest("OPTIONS", srv.URI(transport.UDP).String()))
	alice.response(200)
	alice.send(alice.newRequest("MESSAGE", "sip:sipua.test"))
	alice.response(405)
}

// TestCall relays a whole call through the proxy between clients on every
// pair of transports: the callee is reached on its registered flow (a
// WebSocket client's contact is .invalid), the proxy record-routes (twice
// across transports), the ACK and the callee's BYE follow the route set.
func TestCall(t *testing.T) {
	for _, tc := range []struct{ alice, bob transport.Proto }{
		{transport.UDP, transport.UDP},
		{transport.WS, transport.WS},
		{transport.WS, transport.UDP},
		{transport.UDP, transport.TCP},
		{transport.TCP, transport.WS},
	} {
		t.Run(fmt.Sprintf("%s-%s", tc.alice, tc.bob), func(t *testing.T) {
			srv := startServer(t, Options{})
			alice := newClient(t, srv, "alice", tc.alice, transport.Config{}, "")
			bob := newClient(t, srv, "bob", tc.bob, transport.Config{}, "")
			alice.register(60)
			bob.register(60)
			call(t, alice, bob)
			alice.quiet(50 * time.Millisecond)
			bob.quiet(50 * time.Millisecond)
			flow := srv.Flow()
			assert.Equal(t, []string{
				"alice→proxy REGISTER", "proxy→alice 200",
				"bob→proxy REGISTER", "proxy→bob 200",
				"alice→proxy INVITE", "proxy→alice 100", "proxy→bob INVITE",
				"bob→proxy 180", "proxy→alice 180",
				"bob→proxy 200", "proxy→alice 200",
				"alice→proxy ACK", "proxy→bob ACK",
				"bob→proxy BYE", "proxy→alice BYE",
				"alice→proxy 200", "proxy→bob 200",
			}, flow)
		})
	}
}

// TestCancel: the proxy answers the caller's CANCEL, cancels the
// forwarded INVITE on the same branch, relays the 487 and ACKs it hop by
// hop.
func TestCancel(t *testing.T) {
	srv := startServer(t, Options{})
	alice := newClient(t, srv, "alice", transport.WS, transport.Config{}, "")
	bob := newClient(t, srv, "bob", transport.UDP, transport.Config{}, "")
	alice.register(60)
	bob.register(60)

	inv := alice.newRequest("INVITE", "sip:bob@sipua.test")
	alice.send(inv)
	alice.response(100)
	binv, bflow := bob.request("INVITE")
	bob.reply(binv, bflow, 180, "b")
	alice.response(180)

	cancel := &message.Request{Method: "CANCEL", URI: inv.URI}
	for _, h := range []string{"Via", "From", "To", "Call-ID", "Max-Forwards"} {
		cancel.Header.Add(h, inv.Header.Get(h))
	}
	cancel.Header.Add("CSeq", "1 CANCEL")
	cancel.Header.Add("Reason", `SIP;cause=600;text="Busy Everywhere"`)
	alice.send(cancel)
	alice.response(200)

	bcancel, cflow := bob.request("CANCEL")
	bv, _ := binv.Header.TopVia()
	cv, _ := bcancel.Header.TopVia()
	assert.Equal(t, bv.Branch(), cv.Branch(), "the branch of the forwarded INVITE")
	assert.Equal(t, binv.URI.String(), bcancel.URI.String())
	assert.Equal(t, 1, bcancel.Header.ViaCount())
	assert.Contains(t, bcancel.Header.Get("Reason"), "cause=600")
	bob.reply(bcancel, cflow, 200, "b")
	bob.reply(binv, bflow, 487, "b")

	alice.response(487)
	ack, _ := bob.request("ACK")
	av, _ := ack.Header.TopVia()
	assert.Equal(t, bv.Branch(), av.Branch(), "hop-by-hop ACK of the 487")

	// The caller's ACK is absorbed.
	aack := dialogRequest("ACK", inv.URI, nil, inv.Header.Get("From"), inv.Header.Get("To")+";tag=b", inv.Header.CallID(), 1)
	aack.Header.Add("Via", inv.Header.Get("Via"))
	alice.send(aack)
	bob.quiet(100 * time.Millisecond)
	alice.quiet(10 * time.Millisecond)

	// A CANCEL for nothing: 481.
	stray := alice.newRequest("CANCEL", "sip:bob@sipua.test")
	alice.send(stray)
	alice.response(481)
}

// TestCancelBeforeProvisional: a CANCEL that comes before the callee's
// first provisional response is held until it comes.
func TestCancelBeforeProvisional(t *testing.T) {
	srv := startServer(t, Options{})
	alice := newClient(t, srv, "alice", transport.TCP, transport.Config{}, "")
	bob := newClient(t, srv, "bob", transport.WS, transport.Config{}, "")
	alice.register(60)
	bob.register(60)
	inv := alice.newRequest("INVITE", "sip:bob@sipua.test")
	alice.send(inv)
	alice.response(100)
	binv, bflow := bob.request("INVITE")

	cancel := &message.Request{Method: "CANCEL", URI: inv.URI}
	for _, h := range []string{"Via", "From", "To", "Call-ID", "Max-Forwards"} {
		cancel.Header.Add(h, inv.Header.Get(h))
	}
	cancel.Header.Add("CSeq", "1 CANCEL")
	alice.send(cancel)
	alice.response(200)
	bob.quiet(100 * time.Millisecond)

	bob.reply(binv, bflow, 100, "")
	bcancel, cflow := bob.request("CANCEL")
	bob.reply(bcancel, cflow, 200, "b")
	bob.reply(binv, bflow, 487, "b")
	alice.response(487)
	bob.request("ACK")
}

// TestMessage relays a MESSAGE, challenging it first when ProxyAuth is on;
// the proxy's credentials do not travel further.
func TestMessage(t *testing.T) {
	srv := startServer(t, Options{Users: map[string]string{"alice": "a", "bob": "b"}, ProxyAuth: true})
	alice := newClient(t, srv, "alice", transport.WS, transport.Config{}, "")
	bob := newClient(t, srv, "bob", transport.WS, transport.Config{}, "")
	alice.creds = digest.NewClient(digest.Credentials{Username: "alice", Password: "a"})
	bob.creds = digest.NewClient(digest.Credentials{Username: "bob", Password: "b"})
	alice.register(60)
	bob.register(60)

	msg := alice.newRequest("MESSAGE", "sip:bob@sipua.test")
	msg.Header.Add("Content-Type", "text/plain")
	msg.Body = []byte("hello bob")
	alice.send(msg)
	ch := alice.response(407)
	require.True(t, ch.Header.Has("Proxy-Authenticate"))
	alice.retryAuth(msg, ch)

	got, f := bob.request("MESSAGE")
	assert.Equal(t, "hello bob", string(got.Body))
	assert.False(t, got.Header.Has("Proxy-Authorization"), "credentials consumed by the proxy")
	assert.False(t, got.Header.Has("Record-Route"), "no dialog, no Record-Route")
	bob.reply(got, f, 200, "")
	alice.response(200)

	// In-dialog requests and requests from strangers are not challenged:
	// here a MESSAGE from a user of another domain.
	stranger := newClient(t, srv, "eve", transport.UDP, transport.Config{}, "")
	stranger.domain = "example.com"
	stranger.send(stranger.newRequest("MESSAGE", "sip:bob@sipua.test"))
	got, f = bob.request("MESSAGE")
	bob.reply(got, f, 202, "")
	stranger.response(202)
}

// TestMaxForwards: a request with Max-Forwards 0 is not forwarded (483);
// with 1 it is, with 0.
func TestMaxForwards(t *testing.T) {
	srv := startServer(t, Options{})
	alice := newClient(t, srv, "alice", transport.UDP, transport.Config{}, "")
	bob := newClient(t, srv, "bob", transport.UDP, transport.Config{}, "")
	bob.register(60)

	m := alice.newRequest("MESSAGE", "sip:bob@sipua.test")
	m.Header.Set("Max-Forwards", "0")
	alice.send(m)
	alice.response(483)
	bob.quiet(50 * time.Millisecond)

	m = alice.newRequest("MESSAGE", "sip:bob@sipua.test")
	m.Header.Set("Max-Forwards", "1")
	alice.send(m)
	got, f := bob.request("MESSAGE")
	assert.Equal(t, "0", got.Header.Get("Max-Forwards"))
	bob.reply(got, f, 200, "")
	alice.response(200)
}

// TestWSFlowClosed: a WebSocket client's binding goes with its
// connection.
func TestWSFlowClosed(t *testing.T) {
	srv := startServer(t, Options{})
	alice := newClient(t, srv, "alice", transport.UDP, transport.Config{}, "")
	bob := newClient(t, srv, "bob", transport.WS, transport.Config{}, "")
	bob.register(60)
	require.Len(t, srv.Bindings("bob"), 1)
	require.NoError(t, bob.tr.Close())
	require.Eventually(t, func() bool { return len(srv.Bindings("bob")) == 0 }, 5*time.Second, 10*time.Millisecond)
	alice.send(alice.newRequest("INVITE", "sip:bob@sipua.test"))
	alice.response(480)
}

// TestInMemory runs registration, a call and a MESSAGE on the in-memory
// network of siptest, in a synctest bubble: the server's UDP goes through
// Options.ListenPacket. A lost INVITE is retransmitted by the proxy on
// Timer A, and an unanswered one ends in 408 after Timer B.
func TestInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		require.NoError(t, n.SetDefaultLink(siptest.Link{Delay: 10 * time.Millisecond}))
		var events []Event
		srv, err := New(Options{ListenPacket: n.PacketListener("proxy"), OnEvent: func(e Event) { events = append(events, e) }})
		require.NoError(t, err)
		defer srv.Close()
		_, err = srv.Listen(t.Context(), "udp", "192.0.2.10:5060")
		require.NoError(t, err)
		assert.Equal(t, "sip:192.0.2.10:5060;transport=udp", srv.URI("udp").String())
		alice := newClient(t, srv, "alice", transport.UDP, transport.Config{ListenPacket: n.PacketListener("alice")}, "192.0.2.1:5060")
		bob := newClient(t, srv, "bob", transport.UDP, transport.Config{ListenPacket: n.PacketListener("bob")}, "192.0.2.2:5060")
		alice.register(300)
		bob.register(300)
		start := time.Now()
		call(t, alice, bob)
		assert.Equal(t, 12*10*time.Millisecond, time.Since(start), "every hop costs the link's delay")

		m := alice.newRequest("MESSAGE", "sip:bob@sipua.test")
		alice.send(m)
		got, f := bob.request("MESSAGE")
		bob.reply(got, f, 200, "")
		alice.response(200)
		synctest.Wait()

		assert.Equal(t, []string{
			"alice→proxy REGISTER", "proxy→alice 200",
			"bob→proxy REGISTER", "proxy→bob 200",
			"alice→proxy INVITE", "proxy→alice 100", "proxy→bob INVITE",
			"bob→proxy 180", "proxy→alice 180",
			"bob→proxy 200", "proxy→alice 200",
			"alice→proxy ACK", "proxy→bob ACK",
			"bob→proxy BYE", "proxy→alice BYE",
			"alice→proxy 200", "proxy→bob 200",
			"alice→proxy MESSAGE", "proxy→bob MESSAGE",
			"bob→proxy 200", "proxy→alice 200",
		}, srv.Flow())
		assert.Len(t, events, len(srv.Flow()), "OnEvent saw every message")
		assert.Equal(t, []string{
			"alice→proxy REGISTER", "proxy→alice 200",
			"bob→proxy REGISTER", "proxy→bob 200",
			"alice→proxy INVITE", "proxy→alice 100", "proxy→bob INVITE",
		}, n.Flow()[:7], "the network saw the same")
		ladder := srv.Ladder()
		t.Log("\n" + ladder)
		assert.Contains(t, ladder, "   0.000s  alice ◀─200 OK─────── proxy\n")
		assert.Contains(t, ladder, "   0.040s                        proxy ──INVITE──────▶ bob\n")

		// The link to bob is down for 700 ms: the proxy's INVITE and its
		// first retransmission (Timer A, T1 = 500 ms) are lost, the second
		// (1 s later) arrives.
		srv.ClearTrace()
		proxyAddr, bobAddr := siptest.Addr("192.0.2.10:5060"), siptest.Addr("192.0.2.2:5060")
		t0 := time.Now()
		n.SetDown(proxyAddr, bobAddr, true)
		inv := alice.newRequest("INVITE", "sip:bob@sipua.test")
		alice.send(inv)
		alice.response(100)
		time.Sleep(700 * time.Millisecond)
		n.SetDown(proxyAddr, bobAddr, false)
		bob.request("INVITE")
		assert.Equal(t, 1520*time.Millisecond, time.Since(t0))
		// bob never answers: the proxy retransmits at 2, 4, 8 and 16 s
		// intervals, and Timer B (32 s) ends it with 408 to alice.
		bob.wait = time.Minute
		for range 4 {
			bob.request("INVITE")
		}
		r := alice.response(408)
		assert.Equal(t, 32020*time.Millisecond, time.Since(t0))
		// Timer G: the 408 comes again until alice ACKs it.
		alice.wait = time.Minute
		alice.response(408)
		assert.Equal(t, 32520*time.Millisecond, time.Since(t0))
		ack := dialogRequest("ACK", inv.URI, nil, inv.Header.Get("From"), r.Header.Get("To"), inv.Header.CallID(), 1)
		ack.Header.Add("Via", inv.Header.Get("Via"))
		alice.send(ack)
		alice.quiet(time.Minute)
		bob.quiet(time.Minute)
		assert.Equal(t, []string{
			"alice→proxy INVITE", "proxy→alice 100", "proxy→bob INVITE",
			"proxy→bob INVITE", "proxy→bob INVITE", "proxy→bob INVITE", "proxy→bob INVITE",
			"proxy→bob INVITE", "proxy→bob INVITE", "proxy→alice 408", "proxy→alice 408",
			"alice→proxy ACK",
		}, srv.Flow())

		bob.tr.Close()
		alice.tr.Close()
		srv.Close()
		synctest.Wait()
	})
}

// TestClose: Close stops everything (goleak checks in TestMain), twice is
// fine, and a closed server sends nothing.
func TestClose(t *testing.T) {
	srv, err := New(Options{Listen: []string{"ws://127.0.0.1:0", "udp://127.0.0.1:0"}})
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	assert.True(t, strings.HasPrefix(srv.WSURL(), "ws://127.0.0.1:"))
	bob := newClient(t, srv, "bob", transport.WS, transport.Config{}, "")
	bob.register(60)
	require.NoError(t, srv.Close())
	require.NoError(t, srv.Close())
	assert.Empty(t, srv.Bindings("bob"))
	_, err = srv.Listen(context.Background(), "udp", "127.0.0.1:0")
	assert.Error(t, err)

	_, err = New(Options{MinExpires: time.Hour, MaxExpires: time.Minute})
	assert.Error(t, err)
	srv, err = New(Options{Listen: []string{"bogus"}})
	require.NoError(t, err)
	assert.Error(t, srv.Start(context.Background()))
	require.NoError(t, srv.Close())
}

// TestRetransmissions: a retransmitted request is absorbed by the proxy
// (not forwarded twice) and answered with the last response.
func TestRetransmissions(t *testing.T) {
	srv := startServer(t, Options{})
	alice := newClient(t, srv, "alice", transport.UDP, transport.Config{}, "")
	bob := newClient(t, srv, "bob", transport.UDP, transport.Config{}, "")
	bob.register(60)

	m := alice.newRequest("MESSAGE", "sip:bob@sipua.test")
	alice.send(m)
	got, f := bob.request("MESSAGE")
	alice.send(m) // the same branch: a retransmission
	bob.quiet(100 * time.Millisecond)
	bob.reply(got, f, 200, "")
	alice.response(200)
	alice.send(m)
	alice.response(200)
	bob.quiet(100 * time.Millisecond)

	inv := alice.newRequest("INVITE", "sip:bob@sipua.test")
	alice.send(inv)
	alice.response(100)
	binv, bflow := bob.request("INVITE")
	bob.reply(binv, bflow, 180, "b")
	alice.response(180)
	alice.send(inv)
	alice.response(180) // the last response again
	bob.quiet(100 * time.Millisecond)
}

// TestMalformed: a request that fails validation is answered 400.
func TestMalformed(t *testing.T) {
	srv := startServer(t, Options{})
	alice := newClient(t, srv, "alice", transport.UDP, transport.Config{}, "")
	m := alice.newRequest("MESSAGE", "sip:bob@sipua.test")
	m.Header.Del("Call-ID")
	alice.send(m)
	alice.response(400)
}

// TestOutbound: an RFC 5626 registration is keyed by instance and reg-id:
// a new flow replaces the old binding, and the 200 says Require: outbound.
func TestOutbound(t *testing.T) {
	srv := startServer(t, Options{})
	reg := func(c *client) *message.Response {
		req := c.registerRequest(60, message.Address{URI: c.contact}.String()+`;+sip.instance="<urn:uuid:1>";reg-id=1`)
		req.Header.Add("Supported", "path, outbound")
		c.send(req)
		return c.response(200)
	}
	first := newClient(t, srv, "alice", transport.WS, transport.Config{}, "")
	ok := reg(first)
	assert.Equal(t, "outbound", ok.Header.Get("Require"))
	second := newClient(t, srv, "alice", transport.WS, transport.Config{}, "")
	reg(second)
	bs := srv.Bindings("alice")
	require.Len(t, bs, 1, "the same instance and reg-id")
	assert.Equal(t, second.contact.Host, bs[0].Contact.URI.Host)
}

// TestEvents checks Event's strings and TraceLimit.
func TestEvents(t *testing.T) {
	var seen []Event
	srv := startServer(t, Options{TraceLimit: 4, Name: "registrar", OnEvent: func(e Event) { seen = append(seen, e) }})
	alice := newClient(t, srv, "alice", transport.UDP, transport.Config{}, "")
	alice.register(60)
	ev := srv.Trace()
	require.Len(t, ev, 2)
	assert.Equal(t, In, ev[0].Dir)
	assert.Equal(t, "in", ev[0].Dir.String())
	assert.Equal(t, "out", ev[1].Dir.String())
	assert.Equal(t, "REGISTER sip:sipua.test", ev[0].Label())
	assert.Equal(t, "200 OK (REGISTER)", ev[1].Label())
	assert.True(t, strings.HasPrefix(ev[0].String(), "alice → registrar  REGISTER sip:sipua.test  [UDP 127.0.0.1:"), ev[0].String())
	assert.True(t, strings.HasPrefix(ev[1].String(), "registrar → alice  200 OK (REGISTER)  [UDP "), ev[1].String())
	for range 2 {
		alice.send(alice.newRequest("OPTIONS", "sip:sipua.test"))
		alice.response(200)
	}
	assert.Len(t, srv.Trace(), 4)
	alice.send(alice.newRequest("OPTIONS", "sip:sipua.test"))
	alice.response(200)
	assert.Equal(t, []string{"alice→registrar OPTIONS", "registrar→alice 200", "alice→registrar OPTIONS", "registrar→alice 200"},
		srv.Flow(), "the oldest half dropped at the limit")
	assert.Len(t, seen, 8, "OnEvent sees everything")
	srv.ClearTrace()
	assert.Empty(t, srv.Trace())
	assert.Empty(t, srv.Ladder())
}

// TestTracer: Options.Tracer sees the server's side, raw bytes included.
func TestTracer(t *testing.T) {
	rec := trace.NewRecorder(0)
	srv := startServer(t, Options{Tracer: rec})
	alice := newClient(t, srv, "alice", transport.UDP, transport.Config{}, "")
	alice.register(60)
	evs := rec.Events()
	require.Len(t, evs, 2)
	assert.Equal(t, trace.Received, evs[0].Dir)
	assert.Equal(t, "REGISTER", evs[0].Message.(*message.Request).Method)
	assert.Equal(t, trace.Sent, evs[1].Dir)
	assert.Equal(t, "200 OK", evs[1].Summary())
	assert.Equal(t, srv.Addr(transport.UDP), evs[1].Local)
	assert.Contains(t, string(evs[1].Raw), "SIP/2.0 200 OK\r\n")
}
