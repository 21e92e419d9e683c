package sip_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/message"
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
		account(t, s, sip.UserAgentOptions{URI: "sip:carol@a.test", InstanceID: "<urn:uuid:00000000-0000-1000-8000-00000000cafe>", Delegate: messages("carol", got)})
		dave, err := s.NewUserAgent(sip.UserAgentOptions{URI: "sip:dave@a.test", ContactName: "bobcontact"})
		require.NoError(t, err)
		assert.ErrorIs(t, dave.Start(context.Background()), sip.ErrBadOptions, "the Contact user is bob's")
		peer := peerUA(t, n, "peer", stackAddr, sip.UserAgentDelegate{})

		for _, c := range []struct{ target, want string }{
			{"sip:bob@" + stackAddr.String(), "bob:1"},
			{"sip:alice@b.test", "alice@b:2"},
			{"sip:alice@a.test", "alice@a:3"},
			{"sip:bobcontact@" + stackAddr.String(), "bob:4"},
			{"sip:tmp-gruu@a.test;gr=urn:uuid:00000000-0000-1000-8000-00000000cafe", "carol:5"},
		} {
			_, body, _ := cutLast(c.want)
			require.NoError(t, sendMsg(peer, c.target, body), c.target)
			assert.Equal(t, c.want, <-got, c.target)
		}
		err = sendMsg(peer, "sip:nobody@"+stackAddr.String(), "6")
		var re *sip.ResponseError
		require.True(t, errors.As(err, &re), "%v", err)
		assert.Equal(t, 404, re.StatusCode)
		assert.Empty(t, got)
		resp, err := peer.Options(context.Background(), "sip:"+stackAddr.String(), sip.RequestOptions{})
		require.NoError(t, err, "an OPTIONS probe of the stack itself")
		assert.Equal(t, 200, resp.StatusCode)
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

	// StackLimits.MaxAccounts: a stopped account makes room.
	small, err := sip.NewStack(sip.StackOptions{Limits: sip.StackLimits{MaxAccounts: 2}})
	require.NoError(t, err)
	first, err := small.NewUserAgent(sip.UserAgentOptions{URI: "sip:a@x.test"})
	require.NoError(t, err)
	_, err = small.NewUserAgent(sip.UserAgentOptions{URI: "sip:b@x.test"})
	require.NoError(t, err)
	_, err = small.NewUserAgent(sip.UserAgentOptions{URI: "sip:c@x.test"})
	assert.ErrorIs(t, err, sip.ErrTooManyAccounts)
	require.NoError(t, first.Stop(context.Background()))
	_, err = small.NewUserAgent(sip.UserAgentOptions{URI: "sip:c@x.test"})
	assert.NoError(t, err)
	require.NoError(t, small.Stop(context.Background()))
	_, err = small.NewUserAgent(sip.UserAgentOptions{URI: "sip:d@x.test"})
	assert.ErrorIs(t, err, sip.ErrInvalidState, "stack stopped")
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

// TestStackThousandAccounts: 1000 accounts on one Stack register with
// digest against an in-memory registrar through one UDP socket; the
// goroutines do not grow with the accounts.
func TestStackThousandAccounts(t *testing.T) {
	const accounts = 1000
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(23)
		defer n.Close()
		users := map[string]string{}
		for i := range accounts {
			users[fmt.Sprintf("u%d", i)] = fmt.Sprintf("pw%d", i)
		}
		srv := stackRegistrar(t, n, users)
		s := newSimStack(t, n, func(o *sip.StackOptions) { o.Transport.Server = "sip:" + stackRegAddr.String() })
		synctest.Wait()
		before := runtime.NumGoroutine()
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		regs := make([]*sip.Registerer, accounts)
		errc := make(chan error, accounts)
		for i := range accounts {
			u := fmt.Sprintf("u%d", i)
			ua := account(t, s, sip.UserAgentOptions{URI: "sip:" + u + "@sipua.test", AuthorizationPassword: users[u]})
			reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
			require.NoError(t, err)
			regs[i] = reg
			go func() { errc <- reg.Register(context.Background(), sip.RegisterOptions{}) }()
		}
		for range accounts {
			require.NoError(t, <-errc)
		}
		time.Sleep(time.Minute) // the transactions' lingering ends (Timer J, K)
		synctest.Wait()
		after := runtime.NumGoroutine()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		t.Logf("goroutines: %d before the accounts, %d with %d accounts registered; heap in use +%d KiB (%d B per account and its binding in the in-process registrar; race detector on: %v)",
			before, after, accounts, (int64(m1.HeapInuse)-int64(m0.HeapInuse))/1024, (int64(m1.HeapInuse)-int64(m0.HeapInuse))/accounts, raceEnabled)
		assert.Less(t, after-before, 20, "goroutines grow with the accounts")
		for _, i := range []int{0, 499, 999} {
			assert.Len(t, srv.Bindings(fmt.Sprintf("u%d", i)), 1)
		}
		for _, r := range regs {
			assert.Equal(t, sip.Registered, r.State())
		}
		require.NoError(t, s.Stop(context.Background()))
		assert.Empty(t, srv.Bindings("u0"), "Stop unregistered")
		assert.Empty(t, srv.Bindings("u999"), "Stop unregistered")
	})
}

// TestStackCallBetweenAccounts: one account calls another of the same
// Stack; both ends see the call, and the BYE ends both.
func TestStackCallBetweenAccounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(24)
		defer n.Close()
		s := newSimStack(t, n, nil)
		invs := make(chan *sip.Invitation, 1)
		alice := account(t, s, sip.UserAgentOptions{URI: "sip:alice@sipua.test"})
		account(t, s, sip.UserAgentOptions{URI: "sip:bob@sipua.test", Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
			invs <- inv
		}}})
		call, err := sip.NewInviter(alice, "sip:bob@"+stackAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
		inv := <-invs
		synctest.Wait()
		assert.Equal(t, sip.SessionEstablished, call.State())
		assert.Equal(t, sip.SessionEstablished, inv.State())
		assert.Equal(t, "sip:alice@sipua.test", inv.Request.Header.Get("From")[1:len("sip:alice@sipua.test")+1])
		require.NoError(t, inv.Bye(context.Background()))
		synctest.Wait()
		assert.Equal(t, sip.SessionTerminated, call.State())
		assert.Equal(t, sip.EndRemoteBye, call.EndReason().Cause)
	})
}

// TestStackStopOneAccount: stopping one account ends its calls and
// registration only; the others keep theirs; Stack.Stop then ends all,
// every Done closed, no goroutine left.
func TestStackStopOneAccount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ignore := goleak.IgnoreCurrent()
		n := siptest.NewNetwork(25)
		users := map[string]string{"alice": "a", "bob": "b", "carol": "c", "peer": "p"}
		srv := stackRegistrar(t, n, users)
		s, err := sip.NewStack(sip.StackOptions{Transport: sip.TransportOptions{
			Server: "sip:" + stackRegAddr.String(), Listen: []string{"udp://" + stackAddr.String()}, ListenPacket: n.PacketListener("stack"),
		}})
		require.NoError(t, err)
		require.NoError(t, s.Start(context.Background()))
		invs := make(chan *sip.Invitation, 2)
		answer := sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
			invs <- inv
		}}
		got := make(chan string, 4)
		uas := map[string]*sip.UserAgent{}
		regs := map[string]*sip.Registerer{}
		for _, u := range []string{"alice", "bob", "carol"} {
			d := answer
			d.OnMessage = messages(u, got).OnMessage
			ua := account(t, s, sip.UserAgentOptions{URI: "sip:" + u + "@sipua.test", AuthorizationPassword: users[u], Delegate: d})
			reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
			require.NoError(t, err)
			require.NoError(t, reg.Register(context.Background(), sip.RegisterOptions{}))
			uas[u], regs[u] = ua, reg
		}
		peer, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI: "sip:peer@sipua.test", AuthorizationPassword: "p", MediaFactory: sip.NoMedia,
			Transport: sip.TransportOptions{Server: "sip:" + stackRegAddr.String(), ListenPacket: n.PacketListener("peer")},
		})
		require.NoError(t, err)
		require.NoError(t, peer.Start(context.Background()))
		calls := map[string]*sip.Inviter{}
		for _, u := range []string{"alice", "bob"} {
			c, err := sip.NewInviter(peer, "sip:"+u+"@sipua.test", sip.InviterOptions{})
			require.NoError(t, err)
			require.NoError(t, c.Invite(context.Background(), sip.InviteOptions{}))
			calls[u] = c
		}
		aliceInv, bobInv := <-invs, <-invs
		if aliceInv.Request.URI.User != uas["alice"].ContactURI().User {
			aliceInv, bobInv = bobInv, aliceInv
		}

		require.NoError(t, uas["alice"].Stop(context.Background()))
		select {
		case <-aliceInv.Done():
		default:
			t.Fatal("alice's call outlived her Stop")
		}
		synctest.Wait()
		assert.Equal(t, sip.SessionTerminated, calls["alice"].State())
		assert.Equal(t, sip.RegistererTerminated, regs["alice"].State())
		assert.Empty(t, srv.Bindings("alice"))
		// The others are undisturbed.
		assert.Equal(t, sip.SessionEstablished, bobInv.State())
		assert.Equal(t, sip.SessionEstablished, calls["bob"].State())
		assert.Len(t, srv.Bindings("bob"), 1)
		assert.Len(t, srv.Bindings("carol"), 1)
		require.NoError(t, sendMsg(peer, "sip:carol@sipua.test", "still here"))
		assert.Equal(t, "carol:still here", <-got)
		err = sendMsg(peer, "sip:alice@sipua.test", "gone")
		assert.Error(t, err, "alice is unregistered")

		require.NoError(t, s.Stop(context.Background()))
		<-s.Done()
		select {
		case <-bobInv.Done():
		default:
			t.Fatal("bob's call outlived Stack.Stop")
		}
		assert.Equal(t, sip.SessionTerminated, bobInv.State())
		for _, u := range []string{"bob", "carol"} {
			assert.Equal(t, sip.Stopped, uas[u].State())
			assert.Equal(t, sip.RegistererTerminated, regs[u].State())
			assert.Empty(t, srv.Bindings(u))
		}
		synctest.Wait()
		assert.Equal(t, sip.SessionTerminated, calls["bob"].State())
		require.NoError(t, peer.Stop(context.Background()))
		srv.Close()
		n.Close()
		goleak.VerifyNone(t, ignore)
	})
}

// TestStackCallbacks: one account's callback that blocks does not hold
// up another's, and an account may stop itself from its own callback.
func TestStackCallbacks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(26)
		defer n.Close()
		s := newSimStack(t, n, nil)
		release := make(chan struct{})
		got := make(chan string, 4)
		account(t, s, sip.UserAgentOptions{URI: "sip:slow@sipua.test", Delegate: sip.UserAgentDelegate{OnMessage: func(*sip.IncomingRequest) { <-release }}})
		account(t, s, sip.UserAgentOptions{URI: "sip:fast@sipua.test", Delegate: messages("fast", got)})
		stopped := make(chan error, 1)
		var self *sip.UserAgent
		self = account(t, s, sip.UserAgentOptions{URI: "sip:self@sipua.test", Delegate: sip.UserAgentDelegate{OnMessage: func(r *sip.IncomingRequest) {
			_ = r.Accept(context.Background())
			stopped <- self.Stop(context.Background())
		}}})
		var quitter *sip.UserAgent
		quitter = account(t, s, sip.UserAgentOptions{URI: "sip:quitter@sipua.test", Delegate: sip.UserAgentDelegate{OnMessage: func(r *sip.IncomingRequest) {
			stopped <- quitter.Stop(context.Background()) // without answering
		}}})
		peer := peerUA(t, n, "peer", stackAddr, sip.UserAgentDelegate{})

		slowDone := make(chan error, 1)
		go func() { slowDone <- sendMsg(peer, "sip:slow@sipua.test", "wait") }()
		synctest.Wait()
		require.NoError(t, sendMsg(peer, "sip:fast@sipua.test", "go"))
		assert.Equal(t, "fast:go", <-got)
		require.NoError(t, sendMsg(peer, "sip:self@sipua.test", "stop"))
		require.NoError(t, <-stopped)
		assert.Equal(t, sip.Stopped, self.State())
		err := sendMsg(peer, "sip:self@sipua.test", "again")
		var re *sip.ResponseError
		require.True(t, errors.As(err, &re), "%v", err)
		assert.Equal(t, 404, re.StatusCode, "a stopped account is unknown")
		// A request whose account stopped without answering it is
		// answered by the stack, at once.
		start := time.Now()
		err = sendMsg(peer, "sip:quitter@sipua.test", "bye")
		require.NoError(t, <-stopped)
		require.True(t, errors.As(err, &re), "%v", err)
		assert.Equal(t, 480, re.StatusCode)
		assert.Less(t, time.Since(start), time.Second)
		close(release)
		require.NoError(t, <-slowDone)
	})
}

// TestStackStopFromCallback: Stack.Stop called from an account's callback
// returns, and ends every account.
func TestStackStopFromCallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(27)
		defer n.Close()
		s, err := sip.NewStack(sip.StackOptions{Transport: sip.TransportOptions{
			Listen: []string{"udp://" + stackAddr.String()}, ListenPacket: n.PacketListener("stack"),
		}})
		require.NoError(t, err)
		require.NoError(t, s.Start(context.Background()))
		stopped := make(chan error, 1)
		a := account(t, s, sip.UserAgentOptions{URI: "sip:a@sipua.test", Delegate: sip.UserAgentDelegate{OnMessage: func(r *sip.IncomingRequest) {
			_ = r.Accept(context.Background())
			stopped <- s.Stop(context.Background())
		}}})
		b := account(t, s, sip.UserAgentOptions{URI: "sip:b@sipua.test"})
		peer := peerUA(t, n, "peer", stackAddr, sip.UserAgentDelegate{})
		require.NoError(t, sendMsg(peer, "sip:a@sipua.test", "stop all"))
		select {
		case err := <-stopped:
			require.NoError(t, err)
		case <-time.After(time.Minute):
			t.Fatal("Stack.Stop from a callback did not return")
		}
		<-s.Done()
		assert.Equal(t, sip.Stopped, a.State())
		assert.Equal(t, sip.Stopped, b.State())
	})
}

// TestStackForkToTwoAccounts: a request forked by a proxy to two accounts
// of one Stack (same Call-ID, From tag and CSeq, other branches) reaches
// both; the same fork to one account again is a merged request (482).
func TestStackForkToTwoAccounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(28)
		defer n.Close()
		s := newSimStack(t, n, nil)
		got := make(chan string, 4)
		account(t, s, sip.UserAgentOptions{URI: "sip:alice@sipua.test", Delegate: messages("alice", got)})
		account(t, s, sip.UserAgentOptions{URI: "sip:bob@sipua.test", Delegate: messages("bob", got)})
		raw, err := n.Listen("proxy", netip.MustParseAddrPort("192.0.2.30:5060"))
		require.NoError(t, err)
		send := func(user, branch string) int {
			msg := "MESSAGE sip:" + user + "@sipua.test SIP/2.0\r\n" +
				"Via: SIP/2.0/UDP 192.0.2.30:5060;branch=z9hG4bK" + branch + "\r\n" +
				"Max-Forwards: 69\r\n" +
				"From: <sip:peer@sipua.test>;tag=forked\r\n" +
				"To: <sip:group@sipua.test>\r\n" +
				"Call-ID: fork-1\r\n" +
				"CSeq: 1 MESSAGE\r\n" +
				"Content-Type: text/plain\r\n" +
				"Content-Length: 2\r\n\r\nhi"
			require.NoError(t, raw.Send(stackAddr, []byte(msg)))
			p, err := raw.Recv(context.Background())
			require.NoError(t, err)
			resp, err := message.ParseResponse(p.Data)
			require.NoError(t, err)
			return resp.StatusCode
		}
		assert.Equal(t, 200, send("alice", "a1"))
		assert.Equal(t, 200, send("bob", "b1"))
		assert.Equal(t, 482, send("bob", "b2"), "the same request to bob by another path")
		assert.ElementsMatch(t, []string{"alice:hi", "bob:hi"}, []string{<-got, <-got})
	})
}

// TestStackStoppedAccountSendsNothing: an account stopped while its
// request goes unanswered sends nothing more (its transaction is
// abandoned, not left retransmitting on the shared layer), and the
// request's caller gets ErrStopped.
func TestStackStoppedAccountSendsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(29)
		defer n.Close()
		s := newSimStack(t, n, nil)
		ua := account(t, s, sip.UserAgentOptions{URI: "sip:alice@sipua.test"})
		other := account(t, s, sip.UserAgentOptions{URI: "sip:bob@sipua.test"})
		deadAddr := netip.MustParseAddrPort("192.0.2.99:5060")
		_, err := n.Listen("dead", deadAddr) // receives, never answers
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() { errc <- sendMsg(ua, "sip:x@"+deadAddr.String(), "anyone?") }()
		time.Sleep(2 * time.Second) // a few retransmissions
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		require.NoError(t, ua.Stop(ctx))
		assert.ErrorIs(t, <-errc, sip.ErrStopped)
		before := len(n.Flow())
		time.Sleep(time.Minute)
		assert.Empty(t, n.Flow()[before:], "sent after the account stopped")
		assert.Equal(t, sip.Started, other.State())
	})
}

// TestStackRefreshesShareWakeups: the accounts of a Stack that registered
// within the same second refresh at the same instant (one wake-up of the
// loop), a little before their refresh was due.
func TestStackRefreshesShareWakeups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(30)
		defer n.Close()
		stackRegistrar(t, n, nil)
		s := newSimStack(t, n, func(o *sip.StackOptions) { o.Transport.Server = "sip:" + stackRegAddr.String() })
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 100*time.Millisecond)))
		for i := range 3 {
			ua := account(t, s, sip.UserAgentOptions{URI: fmt.Sprintf("sip:u%d@sipua.test", i)})
			reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{Expires: 60})
			require.NoError(t, err)
			require.NoError(t, reg.Register(context.Background(), sip.RegisterOptions{}))
			time.Sleep(300 * time.Millisecond)
		}
		n.ClearTrace()
		time.Sleep(time.Minute)
		var at []time.Time
		for _, e := range n.Trace() {
			if e.Kind == siptest.EventSent && e.To == stackRegAddr && strings.HasPrefix(string(e.Data), "REGISTER ") {
				at = append(at, e.At)
			}
		}
		require.Len(t, at, 3, "one refresh per account")
		assert.Equal(t, at[0], at[1])
		assert.Equal(t, at[0], at[2])
		assert.Zero(t, at[0].Sub(at[0].Truncate(time.Second)), "on the grid")
	})
}
