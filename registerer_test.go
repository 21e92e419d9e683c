package sip

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/digest"
	"github.com/sipua/sip/message"
)

// fakeRegistrar answers REGISTERs over UDP with a scripted policy.
type fakeRegistrar struct {
	conn   *net.UDPConn
	mu     sync.Mutex
	reqs   []*message.Request
	policy func(n int, req *message.Request) *message.Response
	done   chan struct{}
}

func newFakeRegistrar(t *testing.T, policy func(n int, req *message.Request) *message.Response) *fakeRegistrar {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	r := &fakeRegistrar{conn: c, policy: policy, done: make(chan struct{})}
	go r.serve()
	t.Cleanup(func() { c.Close(); <-r.done })
	return r
}

func (r *fakeRegistrar) serve() {
	defer close(r.done)
	buf := make([]byte, 65535)
	for {
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		req, err := message.ParseRequest(buf[:n])
		if err != nil {
			continue
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, req)
		k := len(r.reqs)
		r.mu.Unlock()
		if resp := r.policy(k, req); resp != nil {
			_, _ = r.conn.WriteToUDP([]byte(resp.String()), from)
		}
	}
}

func (r *fakeRegistrar) requests() []*message.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*message.Request(nil), r.reqs...)
}

func (r *fakeRegistrar) addr() string { return r.conn.LocalAddr().String() }

// ok answers 200 echoing the Contact with expires.
func ok(req *message.Request, expires string) *message.Response {
	resp := message.NewResponse(req, 200, "", "reg")
	if c := req.Header.Get("Contact"); c != "" && c != "*" && expires != "" {
		resp.Header.Add("Contact", c+";expires="+expires)
	}
	return resp
}

func newRegUA(t *testing.T, reg *fakeRegistrar, opts RegistererOptions) (*UserAgent, *Registerer) {
	t.Helper()
	ua := StartTestUA(t, UserAgentOptions{
		URI:         "sip:alice@127.0.0.1",
		InstanceID:  "urn:uuid:00000000-0000-1000-8000-000000000001",
		ContactName: "alicecontact",
		Transport:   TransportOptions{Server: "sip:" + reg.addr()},
	})
	r, err := NewRegisterer(ua, opts)
	require.NoError(t, err)
	return ua, r
}

func TestRegisterRefreshUnregister(t *testing.T) {
	reg := newFakeRegistrar(t, func(n int, req *message.Request) *message.Response {
		exp := req.Header.Get("Expires")
		if exp == "0" {
			return ok(req, "0")
		}
		resp := ok(req, "2") // a short lifetime: refreshed after 1 s
		if c := resp.Header.Get("Contact"); c != "" {
			resp.Header.Set("Contact", c+`;pub-gruu="sip:alice@127.0.0.1;gr=urn:uuid:1";temp-gruu="sip:tgruu.1@127.0.0.1;gr"`)
		}
		return resp
	})
	_, r := newRegUA(t, reg, RegistererOptions{Expires: 60})
	var mu sync.Mutex
	var states []RegistererState
	r.OnStateChange(func(s RegistererState) { mu.Lock(); states = append(states, s); mu.Unlock() })

	require.NoError(t, r.Register(ctx5(t), RegisterOptions{ExtraHeaders: []string{"X-Once: 1"}}))
	assert.Equal(t, Registered, r.State())
	b := r.Bindings()
	require.Len(t, b, 1)
	assert.Equal(t, 2*time.Second, b[0].Expires)
	assert.Equal(t, "alicecontact", b[0].Contact.URI.User)
	assert.True(t, b[0].Mine)
	pub, temp := r.GRUU()
	assert.Equal(t, "sip:alice@127.0.0.1;gr=urn:uuid:1", pub)
	assert.Equal(t, "sip:tgruu.1@127.0.0.1;gr", temp)

	first := reg.requests()[0]
	assert.Equal(t, "sip:127.0.0.1", first.URI.String())
	assert.Equal(t, "60", first.Header.Get("Expires"))
	assert.Equal(t, "1", first.Header.Get("X-Once"))
	c, _ := first.Header.Contacts()
	inst, _ := c[0].Params.Get("+sip.instance")
	assert.Equal(t, `"<urn:uuid:00000000-0000-1000-8000-000000000001>"`, inst)
	regID, _ := c[0].Params.Get("reg-id")
	assert.Equal(t, "1", regID)

	// The refresh comes by itself, with the same Call-ID and a higher CSeq.
	require.Eventually(t, func() bool { return len(reg.requests()) >= 3 }, 4*time.Second, 20*time.Millisecond)
	rs := reg.requests()
	assert.Equal(t, rs[0].Header.CallID(), rs[1].Header.CallID())
	c0, _ := rs[0].Header.CSeq()
	c1, _ := rs[1].Header.CSeq()
	assert.Greater(t, c1.Seq, c0.Seq)
	assert.Empty(t, rs[1].Header.Get("X-Once"), "per-call headers are not repeated")

	require.NoError(t, r.Unregister(ctx5(t), UnregisterOptions{}))
	assert.Equal(t, Unregistered, r.State())
	last := reg.requests()[len(reg.requests())-1]
	assert.Equal(t, "0", last.Header.Get("Expires"))
	n := len(reg.requests())
	time.Sleep(1500 * time.Millisecond)
	assert.Len(t, reg.requests(), n, "no refresh after Unregister")

	require.NoError(t, r.Unregister(ctx5(t), UnregisterOptions{All: true}))
	assert.Equal(t, "*", reg.requests()[n].Header.Get("Contact"))

	require.NoError(t, r.Dispose(ctx5(t)))
	assert.Equal(t, RegistererTerminated, r.State())
	assert.ErrorIs(t, r.Register(ctx5(t), RegisterOptions{}), ErrInvalidState)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(states) == 3
	}, time.Second, 5*time.Millisecond, "listeners run on the callback goroutine")
	mu.Lock()
	assert.Equal(t, []RegistererState{Registered, Unregistered, RegistererTerminated}, states)
	mu.Unlock()
}

func TestRegister423(t *testing.T) {
	reg := newFakeRegistrar(t, func(n int, req *message.Request) *message.Response {
		if req.Header.Get("Expires") == "30" {
			resp := message.NewResponse(req, 423, "", "reg")
			resp.Header.Add("Min-Expires", "120")
			return resp
		}
		return ok(req, req.Header.Get("Expires"))
	})
	_, r := newRegUA(t, reg, RegistererOptions{Expires: 30})
	require.NoError(t, r.Register(ctx5(t), RegisterOptions{}))
	rs := reg.requests()
	require.Len(t, rs, 2)
	assert.Equal(t, "120", rs[1].Header.Get("Expires"))
	assert.Equal(t, 120*time.Second, r.Bindings()[0].Expires)
}

func TestRegisterRejectedAndRetry(t *testing.T) {
	reg := newFakeRegistrar(t, func(n int, req *message.Request) *message.Response {
		if n <= 2 {
			resp := message.NewResponse(req, 503, "", "reg")
			resp.Header.Add("Retry-After", "1")
			return resp
		}
		return ok(req, "600")
	})
	_, r := newRegUA(t, reg, RegistererOptions{})
	err := r.Register(ctx5(t), RegisterOptions{})
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 503, re.StatusCode)
	assert.Equal(t, Unregistered, r.State())
	// Retry-After: 1 → tried again after 1 s, refused again, then accepted.
	require.Eventually(t, func() bool { return r.State() == Registered }, 5*time.Second, 20*time.Millisecond)
	assert.Len(t, reg.requests(), 3)
}

func TestRegisterTimeout(t *testing.T) {
	reg := newFakeRegistrar(t, func(int, *message.Request) *message.Response { return nil })
	ua, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1", Timers: Timers{T1: 5 * time.Millisecond},
		Transport: TransportOptions{Server: "sip:" + reg.addr()}})
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx5(t)))
	defer ua.Stop(context.Background())
	r, _ := NewRegisterer(ua, RegistererOptions{})
	assert.ErrorIs(t, r.Register(ctx5(t), RegisterOptions{}), ErrTimeout)
	assert.Equal(t, Unregistered, r.State())
	assert.NoError(t, r.Dispose(ctx5(t)))
}

func TestRegistererOptions(t *testing.T) {
	ua, _ := NewUserAgent(UserAgentOptions{URI: "sip:alice@example.com:5070"})
	r, err := NewRegisterer(ua, RegistererOptions{})
	require.NoError(t, err)
	assert.Equal(t, "sip:example.com:5070", r.uri.String())
	_, err = NewRegisterer(ua, RegistererOptions{Registrar: "::"})
	assert.ErrorIs(t, err, ErrBadOptions)
	_, err = NewRegisterer(ua, RegistererOptions{ExtraHeaders: []string{"bad"}})
	assert.ErrorIs(t, err, ErrBadOptions)
	assert.Equal(t, "Registered", Registered.String())
	assert.Equal(t, "Unknown", RegistererState(9).String())
}

// authRegistrar challenges every REGISTER with digest (SHA-256 and MD5
// offered) and accepts alice/secret.
func authRegistrar(t *testing.T) *fakeRegistrar {
	srv, err := digest.NewServer(digest.ServerOptions{Realm: "127.0.0.1", Lookup: func(u string) (digest.Credentials, bool) {
		return digest.Credentials{Password: "secret"}, u == "alice"
	}})
	require.NoError(t, err)
	return newFakeRegistrar(t, func(n int, req *message.Request) *message.Response {
		if _, err := srv.Verify(req); err != nil {
			resp := message.NewResponse(req, 401, "", "reg")
			srv.Challenge(resp, errors.Is(err, digest.ErrStale))
			return resp
		}
		return ok(req, "600")
	})
}

func TestRegisterWithDigest(t *testing.T) {
	reg := authRegistrar(t)
	ua, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1", AuthorizationPassword: "secret",
		Transport: TransportOptions{Server: "sip:" + reg.addr()}})
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx5(t)))
	defer ua.Stop(context.Background())
	r, _ := NewRegisterer(ua, RegistererOptions{})
	require.NoError(t, r.Register(ctx5(t), RegisterOptions{}))
	rs := reg.requests()
	require.Len(t, rs, 2)
	assert.False(t, rs[0].Header.Has("Authorization"))
	assert.Contains(t, rs[1].Header.Get("Authorization"), "algorithm=SHA-256")
	assert.NotContains(t, rs[1].String(), "secret")
	c0, _ := rs[0].Header.CSeq()
	c1, _ := rs[1].Header.CSeq()
	assert.Equal(t, c0.Seq+1, c1.Seq)
	v0, _ := rs[0].Header.TopVia()
	v1, _ := rs[1].Header.TopVia()
	assert.NotEqual(t, v0.Branch(), v1.Branch())
}

func TestRegisterWrongPassword(t *testing.T) {
	reg := authRegistrar(t)
	ua, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1", AuthorizationPassword: "wrong",
		Transport: TransportOptions{Server: "sip:" + reg.addr()}})
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx5(t)))
	defer ua.Stop(context.Background())
	r, _ := NewRegisterer(ua, RegistererOptions{})
	err = r.Register(ctx5(t), RegisterOptions{})
	require.ErrorIs(t, err, ErrAuthFailed)
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 401, re.StatusCode)
	assert.NotContains(t, err.Error(), "wrong")
	assert.Equal(t, Unregistered, r.State())
	ua.call(ctx5(t), func() { assert.False(t, r.wanted, "no automatic retries after refused credentials") })
	assert.Len(t, reg.requests(), 2, "exactly one retry")
}

func TestRegisterWithCredentialsCallback(t *testing.T) {
	reg := authRegistrar(t)
	var realms []string
	ua, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1",
		Credentials: func(realm string) (digest.Credentials, error) {
			realms = append(realms, realm) // called on the event loop, one at a time
			return digest.Credentials{Username: "alice", Password: "secret"}, nil
		},
		Transport: TransportOptions{Server: "sip:" + reg.addr()}})
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx5(t)))
	defer ua.Stop(context.Background())
	r, _ := NewRegisterer(ua, RegistererOptions{})
	require.NoError(t, r.Register(ctx5(t), RegisterOptions{}))
	ua.call(ctx5(t), func() { assert.Equal(t, []string{"127.0.0.1"}, realms) })
}
