package sipserver

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sipua/sip/digest"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client is a bare user agent built on a transport.Transport: the tests
// write every request and response by hand, so they see exactly what the
// server sends.
type client struct {
	t       testing.TB
	name    string
	domain  string
	tr      *transport.Transport
	msgs    chan transport.Incoming
	server  transport.Target
	contact message.URI
	creds   *digest.Client
	wait    time.Duration // how long next waits; default 10 s
}

// newClient starts a client of srv over proto. UDP and TCP clients listen
// on listen (default 127.0.0.1:0) and have that address as contact; a WS
// client has an ".invalid" contact, as a browser does.
func newClient(t testing.TB, srv *Server, name string, proto transport.Proto, cfg transport.Config, listen string) *client {
	t.Helper()
	c := &client{t: t, name: name, domain: srv.Domain(), msgs: make(chan transport.Incoming, 256)}
	cfg.OnMessage = func(in transport.Incoming) { c.msgs <- in }
	c.tr = transport.New(cfg)
	t.Cleanup(func() { c.tr.Close() })
	c.server = transport.Target{Proto: proto, Addr: srv.Addr(proto)}
	require.True(t, c.server.Addr.IsValid(), "server listens on %s", proto)
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	switch proto {
	case transport.WS, transport.WSS:
		c.contact = message.URI{Scheme: "sip", User: name, Host: c.tr.InvalidHost(), Params: message.Params("transport=" + proto.Param())}
	default:
		ap, err := c.tr.Listen(context.Background(), proto, listen)
		require.NoError(t, err)
		c.contact = message.URI{Scheme: "sip", User: name, Host: ap.Addr().String(), Port: int(ap.Port())}
		if proto != transport.UDP {
			c.contact.Params = message.Params("transport=" + proto.Param())
		}
	}
	return c
}

func (c *client) aor() message.URI {
	return message.URI{Scheme: "sip", User: c.name, Host: c.domain}
}

// newRequest builds an out-of-dialog request from the client's AOR.
func (c *client) newRequest(method, uri string) *message.Request {
	u := message.MustParseURI(uri)
	req := message.NewRequest(method, u, message.Address{URI: c.aor()}, message.Address{URI: u})
	switch method {
	case "INVITE", "SUBSCRIBE", "REFER":
		req.Header.Add("Contact", message.Address{URI: c.contact}.String())
	}
	return req
}

// registerRequest builds a REGISTER for the client's contact (or the
// contacts given) with an Expires header unless expires is negative.
func (c *client) registerRequest(expires int, contacts ...string) *message.Request {
	req := message.NewRequest("REGISTER", message.URI{Scheme: "sip", Host: c.domain},
		message.Address{URI: c.aor()}, message.Address{URI: c.aor()})
	if contacts == nil {
		contacts = []string{message.Address{URI: c.contact}.String()}
	}
	for _, ct := range contacts {
		req.Header.Add("Contact", ct)
	}
	if expires >= 0 {
		req.Header.Add("Expires", strconv.Itoa(expires))
	}
	return req
}

// send sends req to the server (or to the targets given).
func (c *client) send(req *message.Request, to ...transport.Target) transport.Flow {
	c.t.Helper()
	if len(to) == 0 {
		to = []transport.Target{c.server}
	}
	f, err := c.tr.SendRequest(context.Background(), req, to...)
	require.NoError(c.t, err, "%s: send %s", c.name, req.Method)
	return f
}

// routeTarget resolves the first Route of a route set.
func (c *client) routeTarget(routes []message.Address) transport.Target {
	c.t.Helper()
	require.NotEmpty(c.t, routes)
	ts, err := c.tr.Resolve(context.Background(), routes[0].URI)
	require.NoError(c.t, err)
	return ts[0]
}

// next returns the next message the client received.
func (c *client) next() transport.Incoming {
	c.t.Helper()
	select {
	case in := <-c.msgs:
		require.NoError(c.t, in.Err, "%s received a malformed message", c.name)
		return in
	case <-time.After(cmp.Or(c.wait, 10*time.Second)):
		c.t.Fatalf("%s: nothing received", c.name)
		return transport.Incoming{}
	}
}

// response returns the next response, which must have code; a 100 is
// skipped unless asked for.
func (c *client) response(code int) *message.Response {
	c.t.Helper()
	for {
		in := c.next()
		r, ok := in.Msg.(*message.Response)
		require.True(c.t, ok, "%s: want a %d response, got %s", c.name, code, firstLine(in.Msg))
		if r.StatusCode == 100 && code != 100 {
			continue
		}
		require.Equal(c.t, code, r.StatusCode, "%s: %s", c.name, firstLine(r))
		return r
	}
}

// request returns the next request, which must be a method request.
func (c *client) request(method string) (*message.Request, transport.Flow) {
	c.t.Helper()
	in := c.next()
	r, ok := in.Msg.(*message.Request)
	require.True(c.t, ok, "%s: want %s, got %s", c.name, method, firstLine(in.Msg))
	require.Equal(c.t, method, r.Method, "%s", c.name)
	return r, in.Flow
}

// quiet fails if anything arrives within d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case in := <-c.msgs:
		c.t.Fatalf("%s: unexpected %s", c.name, firstLine(in.Msg))
	case <-time.After(d):
	}
}

// reply answers req as a UAS: To tag, Record-Route copied, and for a 2xx
// to INVITE the client's Contact.
func (c *client) reply(req *message.Request, f transport.Flow, code int, tag string) *message.Response {
	c.t.Helper()
	r := message.NewResponse(req, code, "", tag)
	if code > 100 && code < 300 && req.Method == "INVITE" {
		for rr := range req.Header.Values("Record-Route") {
			r.Header.Add("Record-Route", rr)
		}
		r.Header.Add("Contact", message.Address{URI: c.contact}.String())
	}
	_, err := c.tr.SendResponse(context.Background(), r, f)
	require.NoError(c.t, err)
	return r
}

// register registers the client's contact for expires seconds, answering
// a 401 with the client's credentials, and returns the 200.
func (c *client) register(expires int) *message.Response {
	c.t.Helper()
	req := c.registerRequest(expires)
	c.send(req)
	in := c.next()
	r, ok := in.Msg.(*message.Response)
	require.True(c.t, ok)
	if r.StatusCode == 401 && c.creds != nil {
		req.Header.Del("Via")
		req.Header.Set("CSeq", "2 REGISTER")
		require.NoError(c.t, c.creds.Authorize(req, r))
		c.send(req)
		r = c.response(200)
	}
	require.Equal(c.t, 200, r.StatusCode, firstLine(r))
	return r
}

// retryAuth sends req again with credentials for the challenge in resp.
func (c *client) retryAuth(req *message.Request, resp *message.Response) {
	c.t.Helper()
	req.Header.Del("Via")
	cs, err := req.Header.CSeq()
	require.NoError(c.t, err)
	cs.Seq++
	req.Header.Set("CSeq", cs.String())
	require.NoError(c.t, c.creds.Authorize(req, resp))
	c.send(req)
}

func firstLine(m message.Message) string {
	switch m := m.(type) {
	case *message.Request:
		return m.Method + " " + m.URI.String()
	case *message.Response:
		return m.StatusLine()
	}
	return "nothing"
}

// dialogRequest builds an in-dialog request (RFC 3261 §12.2.1.1).
func dialogRequest(method string, target message.URI, routes []message.Address, from, to string, callID string, seq uint32) *message.Request {
	req := &message.Request{Method: method, URI: target}
	h := &req.Header
	for _, r := range routes {
		h.Add("Route", r.String())
	}
	h.Add("From", from)
	h.Add("To", to)
	h.Add("Call-ID", callID)
	h.Add("CSeq", message.CSeq{Seq: seq, Method: method}.String())
	h.Add("Max-Forwards", "70")
	return req
}

// call runs INVITE/180/200/ACK, BYE from the callee, through srv from
// alice to bob and checks what each side sees.
func call(t *testing.T, alice, bob *client) {
	t.Helper()
	inv := alice.newRequest("INVITE", "sip:bob@"+alice.domain)
	inv.Body = []byte("v=0\r\n")
	inv.Header.Add("Content-Type", "application/sdp")
	alice.send(inv)
	alice.response(100)

	binv, bflow := bob.request("INVITE")
	require.Equal(t, bob.contact.String(), binv.URI.String(), "retargeted to the binding")
	require.Equal(t, 2, binv.Header.ViaCount(), "the proxy's Via on top")
	mf, _, _ := binv.Header.MaxForwards()
	require.Equal(t, 69, mf)
	rr, err := binv.Header.RecordRoutes()
	require.NoError(t, err)
	require.NotEmpty(t, rr, "record-routed")
	for _, r := range rr {
		require.True(t, r.URI.Params.Has("lr"), "loose route %s", r)
	}
	if alice.server.Proto != bob.server.Proto {
		require.Len(t, rr, 2, "double record-routing across transports")
	} else {
		require.Len(t, rr, 1)
	}
	require.Equal(t, "v=0\r\n", string(binv.Body))

	bob.reply(binv, bflow, 180, "bobtag")
	ring := alice.response(180)
	require.Equal(t, 1, ring.Header.ViaCount(), "the proxy's Via removed")
	bob.reply(binv, bflow, 200, "bobtag")
	ok := alice.response(200)
	arr, err := ok.Header.RecordRoutes()
	require.NoError(t, err)
	require.Equal(t, rr, arr, "the caller sees the route set too")

	// The caller's route set is the Record-Route list reversed.
	routes := slices.Clone(arr)
	slices.Reverse(routes)
	cts, err := ok.Header.Contacts()
	require.NoError(t, err)
	require.Len(t, cts, 1)
	ack := dialogRequest("ACK", cts[0].URI, routes, inv.Header.Get("From"), ok.Header.Get("To"), inv.Header.CallID(), 1)
	alice.send(ack, alice.routeTarget(routes))
	back, _ := bob.request("ACK")
	require.Equal(t, bob.contact.String(), back.URI.String())
	require.False(t, back.Header.Has("Route"), "the proxy removed its own Route")

	// BYE from the callee: its route set is the Record-Route list as is,
	// its remote target alice's (maybe .invalid) contact.
	bye := dialogRequest("BYE", alice.contact, rr, binv.Header.Get("To")+";tag=bobtag", binv.Header.Get("From"), binv.Header.CallID(), 1)
	bob.send(bye, bob.routeTarget(rr))
	abye, aflow := alice.request("BYE")
	require.Equal(t, alice.contact.String(), abye.URI.String())
	require.False(t, abye.Header.Has("Route"))
	alice.reply(abye, aflow, 200, "")
	bob.response(200)
}

// startServer starts a server listening on UDP, TCP and WS of 127.0.0.1.
func startServer(t testing.TB, opts Options) *Server {
	t.Helper()
	srv, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	require.NoError(t, srv.Start(context.Background()))
	return srv
}
