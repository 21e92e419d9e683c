package sip_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/siptest"
	"github.com/sipua/sip/siptest/sipserver"
)

var (
	stackAddr    = netip.MustParseAddrPort("192.0.2.20:5060")
	stackRegAddr = netip.MustParseAddrPort("192.0.2.10:5060")
)

// newSimStack starts a Stack listening on stackAddr of n, with opts'
// other fields as given.
func newSimStack(t *testing.T, n *siptest.Network, edit func(*sip.StackOptions)) *sip.Stack {
	t.Helper()
	opts := sip.StackOptions{Transport: sip.TransportOptions{
		Listen:       []string{"udp://" + stackAddr.String()},
		ListenPacket: n.PacketListener("stack"),
	}}
	if edit != nil {
		edit(&opts)
	}
	s, err := sip.NewStack(opts)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { assert.NoError(t, s.Stop(context.Background())) })
	return s
}

// account makes and starts an account on s.
func account(t *testing.T, s *sip.Stack, opts sip.UserAgentOptions) *sip.UserAgent {
	t.Helper()
	if opts.MediaFactory == nil {
		opts.MediaFactory = sip.NoMedia
	}
	ua, err := s.NewUserAgent(opts)
	require.NoError(t, err)
	require.NoError(t, ua.Start(context.Background()))
	return ua
}

// messages returns a delegate that reports the MESSAGEs received, with
// the account's name.
func messages(name string, got chan<- string) sip.UserAgentDelegate {
	return sip.UserAgentDelegate{OnMessage: func(r *sip.IncomingRequest) {
		got <- name + ":" + string(r.Request.Body)
	}}
}

// peerUA starts a plain UserAgent on n that sends everything to server.
func peerUA(t *testing.T, n *siptest.Network, name string, server netip.AddrPort, d sip.UserAgentDelegate) *sip.UserAgent {
	t.Helper()
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:          "sip:" + name + "@sipua.test",
		Transport:    sip.TransportOptions{Server: "sip:" + server.String(), ListenPacket: n.PacketListener(name)},
		Delegate:     d,
		MediaFactory: sip.NoMedia,
	})
	require.NoError(t, err)
	require.NoError(t, ua.Start(context.Background()))
	t.Cleanup(func() { assert.NoError(t, ua.Stop(context.Background())) })
	return ua
}

func sendMsg(ua *sip.UserAgent, target, body string) error {
	m, err := sip.NewMessager(ua, target, []byte(body), "text/plain", sip.RequestOptions{})
	if err != nil {
		return err
	}
	return m.Message(context.Background())
}

// TestStackDispatch: requests outside a dialog reach the account named
// by the Request-URI user (and host when two share a user), else by the
// Contact user; an unknown one gets 404.
func TestStackDispatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(21)
		defer n.Close()
		s := newSimStack(t, n, nil)
		got := make(chan string, 10)
		account(t, s, sip.UserAgentOptions{URI: "sip:alice@a.test", Delegate: messages("alice@a", got)})
		account(t, s, sip.UserAgentOptions{URI: "sip:alice@b.test", Delegate: messages("alice@b", got)})
		account(t, s, sip.UserAgentOptions{URI: "sip:bob@a.test", ContactName: "bobcontact", Delegate: messages("bob", got)})
		peer := peerUA(t, n, "peer", stackAddr, sip.UserAgentDelegate{})

		for _, c := range []struct{ target, want string }{
			{"sip:bob@" + stackAddr.String(), "bob:1"},
			{"sip:alice@b.test", "alice@b:2"},
			{"sip:alice@a.test", "alice@a:3"},
			{"sip:bobcontact@" + stackAddr.String(), "bob:4"},
		} {
			_, body, _ := cutLast(c.want)
			require.NoError(t, sendMsg(peer, c.target, body), c.target)
			assert.Equal(t, c.want, <-got, c.target)
		}
		err := sendMsg(peer, "sip:nobody@"+stackAddr.String(), "5")
		var re *sip.ResponseError
		require.True(t, errors.As(err, &re), "%v", err)
		assert.Equal(t, 404, re.StatusCode)
		assert.Empty(t, got)
	})
}

func cutLast(s string) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// TestStackOptionConflicts: an account's option that is the Stack's is a
// typed error.
func TestStackOptionConflicts(t *testing.T) {
	s, err := sip.NewStack(sip.StackOptions{})
	require.NoError(t, err)
	for _, o := range []sip.UserAgentOptions{
		{URI: "sip:a@x.test", Transport: sip.TransportOptions{Server: "sip:x.test"}},
		{URI: "sip:a@x.test", Timers: sip.Timers{T1: time.Second}},
		{URI: "sip:a@x.test", Limits: sip.Limits{MaxServerTransactions: 5}},
		{URI: "sip:a@x.test", AcceptOnlyFromServer: true},
	} {
		_, err := s.NewUserAgent(o)
		var se *sip.StackOptionError
		assert.True(t, errors.As(err, &se), "%v", err)
		assert.ErrorIs(t, err, sip.ErrBadOptions)
	}
	ua, err := s.NewUserAgent(sip.UserAgentOptions{URI: "sip:a@x.test"})
	require.NoError(t, err)
	assert.ErrorIs(t, ua.Start(context.Background()), sip.ErrInvalidState, "stack not started")
	require.NoError(t, s.Stop(context.Background()))
	<-s.Done()
}

// stackRegistrar starts an in-memory registrar and proxy for sipua.test at
// stackRegAddr.
func stackRegistrar(t *testing.T, n *siptest.Network, users map[string]string) *sipserver.Server {
	t.Helper()
	srv, err := sipserver.New(sipserver.Options{Domain: "sipua.test", Users: users, ListenPacket: n.PacketListener("registrar"), TraceLimit: -1})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	_, err = srv.Listen(context.Background(), "udp", stackRegAddr.String())
	require.NoError(t, err)
	return srv
}

// TestStackRegisterAndReach: accounts register through the Stack's one
// socket with their own credentials, and a request the registrar routes
// by the registered Contact reaches the right account.
func TestStackRegisterAndReach(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(22)
		defer n.Close()
		users := map[string]string{}
		for i := range 5 {
			users[fmt.Sprintf("u%d", i)] = fmt.Sprintf("pw%d", i)
		}
		users["peer"] = "peerpw"
		srv := stackRegistrar(t, n, users)
		s := newSimStack(t, n, func(o *sip.StackOptions) { o.Transport.Server = "sip:" + stackRegAddr.String() })
		got := make(chan string, 10)
		for i := range 5 {
			u := fmt.Sprintf("u%d", i)
			ua := account(t, s, sip.UserAgentOptions{URI: "sip:" + u + "@sipua.test", AuthorizationPassword: users[u], Delegate: messages(u, got)})
			reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
			require.NoError(t, err)
			require.NoError(t, reg.Register(context.Background(), sip.RegisterOptions{}))
		}
		for i := range 5 {
			b := srv.Bindings(fmt.Sprintf("u%d", i))
			require.Len(t, b, 1)
			assert.Equal(t, stackAddr.String(), fmt.Sprintf("%s:%d", b[0].Contact.URI.Host, b[0].Contact.URI.Port))
		}
		peer, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI: "sip:peer@sipua.test", AuthorizationPassword: "peerpw",
			Transport: sip.TransportOptions{Server: "sip:" + stackRegAddr.String(), ListenPacket: n.PacketListener("peer")},
		})
		require.NoError(t, err)
		require.NoError(t, peer.Start(context.Background()))
		defer peer.Stop(context.Background())
		for _, i := range []int{3, 1, 4} {
			require.NoError(t, sendMsg(peer, fmt.Sprintf("sip:u%d@sipua.test", i), "hi"))
			assert.Equal(t, fmt.Sprintf("u%d:hi", i), <-got)
		}
	})
}
