package sip_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
)

// peer is the scripted SIP peer of the simulation tests: a UDP socket on
// the in-memory network that the test drives by hand, one message at a
// time, so that a test reads as its ladder:
//
//	inv := bob.expect("INVITE")
//	inv.reply(180)
//	inv.reply(200, withContact(bob), withHeader("Require", "timer"))
//	bob.expect("ACK")
//
// Every read waits at most peerWait (simulated time under synctest) and
// fails the test when nothing comes.
type peer struct {
	t    testing.TB
	pc   net.PacketConn
	name string
	addr fmt.Stringer
	tag  string // To tag of the peer's responses
}

const peerWait = 40 * time.Second

func newPeer(t testing.TB, n *siptest.Network, name string, addr fmt.Stringer) *peer {
	t.Helper()
	pc, err := n.PacketListener(name)(context.Background(), "udp", addr.String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	return &peer{t: t, pc: pc, name: name, addr: addr, tag: name + "tag"}
}

// next returns the next message and where it came from.
func (p *peer) next() (message.Message, net.Addr) {
	p.t.Helper()
	buf := make([]byte, 65536)
	_ = p.pc.SetReadDeadline(time.Now().Add(peerWait))
	k, from, err := p.pc.ReadFrom(buf)
	require.NoError(p.t, err, "%s: nothing received", p.name)
	m, err := message.Parse(buf[:k])
	require.NoError(p.t, err, "%s: unparsable message", p.name)
	return m, from
}

// read returns the next request (skipping responses) and where it came
// from.
func (p *peer) read() (*message.Request, net.Addr) {
	p.t.Helper()
	for {
		m, from := p.next()
		if req, ok := m.(*message.Request); ok {
			return req, from
		}
	}
}

// response returns the next response (skipping requests).
func (p *peer) response() *message.Response {
	p.t.Helper()
	for {
		m, _ := p.next()
		if r, ok := m.(*message.Response); ok {
			return r
		}
	}
}

// finalResponse returns the next final response, skipping provisional
// ones and requests, and checks its code and CSeq method.
func (p *peer) finalResponse(code int, method string) *message.Response {
	p.t.Helper()
	for {
		r := p.response()
		if r.StatusCode < 200 {
			continue
		}
		assert.Equal(p.t, code, r.StatusCode, "%s: final response", p.name)
		cs, err := r.Header.CSeq()
		require.NoError(p.t, err)
		assert.Equal(p.t, method, cs.Method, "%s: response to", p.name)
		return r
	}
}

// send writes m to to.
func (p *peer) send(to net.Addr, m interface{ String() string }) {
	p.t.Helper()
	_, err := p.pc.WriteTo([]byte(m.String()), to)
	require.NoError(p.t, err)
}

// expect reads the next request (skipping responses) and checks that its
// method is method.
func (p *peer) expect(method string) *peerRequest {
	p.t.Helper()
	req, from := p.read()
	require.Equal(p.t, method, req.Method, "%s: expected %s, got %s", p.name, method, req.Method)
	return &peerRequest{Request: req, from: from, p: p}
}

// peerRequest is a request the peer received, to check and answer.
type peerRequest struct {
	*message.Request
	from net.Addr
	p    *peer
}

// header checks that the request's name header is want.
func (r *peerRequest) header(name, want string) *peerRequest {
	r.p.t.Helper()
	assert.Equal(r.p.t, want, r.Header.Get(name), "%s: %s of %s", r.p.name, name, r.Method)
	return r
}

// reply sends a response with code to the request, with the peer's To
// tag (an in-dialog request keeps its own), edited by edits, and returns
// it.
func (r *peerRequest) reply(code int, edits ...func(*message.Response)) *message.Response {
	r.p.t.Helper()
	tag := r.p.tag
	if r.Header.ToTag() != "" {
		tag = ""
	}
	resp := message.NewResponse(r.Request, code, "", tag)
	for _, e := range edits {
		e(resp)
	}
	r.p.send(r.from, resp)
	return resp
}

// withContact adds the peer's Contact.
func withContact(p *peer) func(*message.Response) {
	return withHeader("Contact", "<sip:"+p.name+"@"+p.addr.String()+">")
}

// withHeader adds a header field.
func withHeader(name, value string) func(*message.Response) {
	return func(r *message.Response) { r.Header.Add(name, value) }
}
