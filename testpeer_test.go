package sip

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

// TestPeer is the scripted SIP peer of the tests (package sip and
// sip_test): a UDP socket, real or on the in-memory network, that a test
// drives by hand, one message at a time, so that the test reads as its
// ladder:
//
//	inv := bob.Expect("INVITE")
//	inv.Reply(180)
//	inv.Reply(200, WithTestContact(bob), WithTestHeader("Require", "timer"))
//	bob.Expect("ACK")
//
// A read fails the test when nothing comes within Wait (simulated time
// under synctest).
type TestPeer struct {
	// Name is the user part of the peer's Contact and starts its To tag.
	Name string
	// Wait bounds each read; default 40 s.
	Wait time.Duration

	t    testing.TB
	conn net.PacketConn
}

// NewTestPeer makes a peer on conn, which the test closes at its end.
func NewTestPeer(t testing.TB, conn net.PacketConn, name string) *TestPeer {
	t.Cleanup(func() { _ = conn.Close() })
	return &TestPeer{Name: name, Wait: 40 * time.Second, t: t, conn: conn}
}

// Addr is the peer's address.
func (p *TestPeer) Addr() net.Addr { return p.conn.LocalAddr() }

// Next returns the next message and where it came from, failing the test
// when none comes within wait.
func (p *TestPeer) Next(wait time.Duration) (message.Message, net.Addr) {
	p.t.Helper()
	buf := make([]byte, 65536)
	require.NoError(p.t, p.conn.SetReadDeadline(time.Now().Add(wait)))
	k, from, err := p.conn.ReadFrom(buf)
	require.NoError(p.t, err, "%s: nothing received", p.Name)
	m, err := message.Parse(buf[:k])
	require.NoError(p.t, err, "%s: unparsable message", p.Name)
	return m, from
}

// Read returns the next request (skipping responses) and where it came
// from.
func (p *TestPeer) Read() (*message.Request, net.Addr) {
	p.t.Helper()
	for {
		m, from := p.Next(p.Wait)
		if req, ok := m.(*message.Request); ok {
			return req, from
		}
	}
}

// Response returns the next response (skipping requests).
func (p *TestPeer) Response() *message.Response {
	p.t.Helper()
	for {
		m, _ := p.Next(p.Wait)
		if r, ok := m.(*message.Response); ok {
			return r
		}
	}
}

// FinalResponse returns the next final response, skipping provisional
// ones and requests, and checks its code and CSeq method.
func (p *TestPeer) FinalResponse(code int, method string) *message.Response {
	p.t.Helper()
	for {
		r := p.Response()
		if r.StatusCode < 200 {
			continue
		}
		assert.Equal(p.t, code, r.StatusCode, "%s: final response", p.Name)
		cs, err := r.Header.CSeq()
		require.NoError(p.t, err)
		assert.Equal(p.t, method, cs.Method, "%s: response to", p.Name)
		return r
	}
}

// Send writes m to to.
func (p *TestPeer) Send(to net.Addr, m fmt.Stringer) {
	p.t.Helper()
	_, err := p.conn.WriteTo([]byte(m.String()), to)
	require.NoError(p.t, err)
}

// Expect reads the next request (skipping responses) and checks that its
// method is method.
func (p *TestPeer) Expect(method string) *TestRequest {
	p.t.Helper()
	req, from := p.Read()
	require.Equal(p.t, method, req.Method, "%s: expected %s, got %s", p.Name, method, req.Method)
	return &TestRequest{Request: req, From: from, p: p}
}

// TestRequest is a request a TestPeer received, to check and answer.
type TestRequest struct {
	*message.Request
	// From is where it came from.
	From net.Addr

	p *TestPeer
}

// Check checks that the request's name header is want.
func (r *TestRequest) Check(name, want string) *TestRequest {
	r.p.t.Helper()
	assert.Equal(r.p.t, want, r.Header.Get(name), "%s: %s of %s", r.p.Name, name, r.Method)
	return r
}

// Reply sends a response with code to the request, with the To tag
// Name+"tag" (an in-dialog request keeps its own), edited by edits, and
// returns it.
func (r *TestRequest) Reply(code int, edits ...func(*message.Response)) *message.Response {
	r.p.t.Helper()
	tag := r.p.Name + "tag"
	if r.Header.ToTag() != "" {
		tag = ""
	}
	resp := message.NewResponse(r.Request, code, "", tag)
	for _, e := range edits {
		e(resp)
	}
	r.p.Send(r.From, resp)
	return resp
}

// WithTestContact adds p's Contact to a response.
func WithTestContact(p *TestPeer) func(*message.Response) {
	return WithTestHeader("Contact", "<sip:"+p.Name+"@"+p.Addr().String()+">")
}

// WithTestHeader adds a header field to a response.
func WithTestHeader(name, value string) func(*message.Response) {
	return func(r *message.Response) { r.Header.Add(name, value) }
}
