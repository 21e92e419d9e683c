package sip

import (
	"context"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sipua/sip/message"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startUA starts a UserAgent listening on UDP loopback.
func startUA(t *testing.T, user string, d UserAgentDelegate) *UserAgent {
	t.Helper()
	return StartTestUA(t, UserAgentOptions{URI: "sip:" + user + "@127.0.0.1", Delegate: d})
}

// addr returns sip:user@ip:port of ua's UDP listener.
func addr(ua *UserAgent) string {
	la := ua.listenAddrs[0].addr
	return "sip:" + ua.aor.User + "@" + la.String()
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewUserAgentErrors(t *testing.T) {
	for _, uri := range []string{"", "alice", "tel:+123", "sip:"} {
		_, err := NewUserAgent(UserAgentOptions{URI: uri})
		assert.ErrorIs(t, err, ErrBadOptions, uri)
	}
	ua, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@example.com", Transport: TransportOptions{Listen: []string{"bogus"}}})
	require.NoError(t, err)
	assert.ErrorIs(t, ua.Start(ctx5(t)), ErrBadOptions)
	ua, _ = NewUserAgent(UserAgentOptions{URI: "sip:alice@example.com", Transport: TransportOptions{Listen: []string{"carrier-pigeon://x"}}})
	assert.ErrorIs(t, ua.Start(ctx5(t)), ErrBadOptions)
	ua, _ = NewUserAgent(UserAgentOptions{URI: "sip:alice@example.com"})
	assert.Equal(t, Stopped, ua.State())
	assert.NoError(t, ua.Stop(ctx5(t)), "Stop before Start")
	_, err = ua.Options(ctx5(t), "sip:bob@127.0.0.1", RequestOptions{})
	assert.ErrorIs(t, err, ErrNotStarted)
}

func TestStartStop(t *testing.T) {
	ua, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1", Transport: TransportOptions{Listen: []string{"udp://127.0.0.1:0"}}})
	require.NoError(t, err)
	var mu sync.Mutex
	var states []UserAgentState
	ua.OnStateChange(func(s UserAgentState) { mu.Lock(); states = append(states, s); mu.Unlock() })
	require.NoError(t, ua.Start(ctx5(t)))
	assert.Equal(t, Started, ua.State())
	assert.True(t, ua.IsConnected())
	assert.ErrorIs(t, ua.Start(ctx5(t)), ErrInvalidState)
	require.NoError(t, ua.Stop(ctx5(t)))
	require.NoError(t, ua.Stop(ctx5(t)), "idempotent")
	assert.Equal(t, Stopped, ua.State())
	assert.False(t, ua.IsConnected())
	mu.Lock()
	assert.Equal(t, []UserAgentState{Started, Stopped}, states)
	mu.Unlock()
	_, err = ua.Options(ctx5(t), "sip:bob@127.0.0.1", RequestOptions{})
	assert.ErrorIs(t, err, ErrStopped)
}

func TestMessageBetweenUserAgents(t *testing.T) {
	got := make(chan *IncomingRequest, 4)
	bob := startUA(t, "bob", UserAgentDelegate{OnMessage: func(r *IncomingRequest) {
		got <- r
		switch string(r.Request.Body) {
		case "busy":
			require.NoError(t, r.Reject(context.Background(), 486, ""))
		case "silent":
			// Returning without an answer accepts.
		default:
			require.NoError(t, r.Accept(context.Background()))
			assert.ErrorIs(t, r.Accept(context.Background()), ErrInvalidState, "one final answer only")
		}
	}})
	alice := startUA(t, "alice", UserAgentDelegate{})

	m, err := NewMessager(alice, addr(bob), []byte("hello bob"), "", RequestOptions{ExtraHeaders: []string{"X-Test: 1"}})
	require.NoError(t, err)
	require.NoError(t, m.Message(ctx5(t)))
	r := <-got
	assert.Equal(t, "hello bob", string(r.Request.Body))
	assert.Equal(t, "text/plain", r.Request.Header.ContentType())
	assert.Equal(t, "1", r.Request.Header.Get("X-Test"))
	assert.Equal(t, "sipua", r.Request.Header.Get("User-Agent"))

	m, _ = NewMessager(alice, addr(bob), []byte("busy"), "text/plain", RequestOptions{})
	err = m.Message(ctx5(t))
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 486, re.StatusCode)
	<-got

	m, _ = NewMessager(alice, addr(bob), []byte("silent"), "", RequestOptions{})
	require.NoError(t, m.Message(ctx5(t)))
	<-got

	// Without OnMessage, MESSAGE is refused with 405 and Allow.
	m, _ = NewMessager(bob, addr(alice), []byte("x"), "", RequestOptions{})
	err = m.Message(ctx5(t))
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 405, re.StatusCode)
	assert.Equal(t, "ACK, CANCEL, OPTIONS", re.Response.Header.Get("Allow"))

	_, err = NewMessager(alice, "not a uri", nil, "", RequestOptions{})
	assert.ErrorIs(t, err, ErrBadOptions)
	_, err = NewMessager(alice, "mailto:x@y", nil, "", RequestOptions{})
	assert.ErrorIs(t, err, ErrBadOptions)
	_, err = NewMessager(alice, addr(bob), nil, "", RequestOptions{ExtraHeaders: []string{"nocolon"}})
	assert.ErrorIs(t, err, ErrBadOptions)
}

func TestOptions(t *testing.T) {
	bob := startUA(t, "bob", UserAgentDelegate{OnMessage: func(*IncomingRequest) {}})
	alice := startUA(t, "alice", UserAgentDelegate{})
	resp, err := alice.Options(ctx5(t), addr(bob), RequestOptions{})
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "ACK, CANCEL, OPTIONS, MESSAGE", resp.Header.Get("Allow"))
	assert.Equal(t, "outbound, path, 100rel, timer", resp.Header.Get("Supported"))
	assert.Equal(t, "sipua", resp.Header.Get("Server"))
}

func TestRequestTimeout(t *testing.T) {
	// A socket that swallows everything: Timer F fires. T1 is shortened
	// so the test takes 64*T1 = 640 ms.
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer sink.Close()
	ua, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1", Timers: Timers{T1: 10 * time.Millisecond},
		Transport: TransportOptions{Listen: []string{"udp://127.0.0.1:0"}}})
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx5(t)))
	defer ua.Stop(context.Background())
	_, err = ua.Options(ctx5(t), "sip:bob@"+sink.LocalAddr().String(), RequestOptions{})
	assert.ErrorIs(t, err, ErrTimeout)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = ua.Options(ctx, "sip:bob@"+sink.LocalAddr().String(), RequestOptions{})
	assert.ErrorIs(t, err, ErrCanceled)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestOnRequestDelegate(t *testing.T) {
	bob := startUA(t, "bob", UserAgentDelegate{OnRequest: func(r *IncomingRequest) {
		resp := r.NewResponse(202, "Got it")
		resp.Header.Add("X-Method", r.Request.Method)
		require.NoError(t, r.Respond(context.Background(), resp))
		assert.False(t, r.Flow.IsZero())
	}})
	alice := startUA(t, "alice", UserAgentDelegate{})
	req := alice.newRequest("PUBLISH", message.MustParseURI(addr(bob)), nil)
	resp, err := alice.request(ctx5(t), req, nil)
	require.NoError(t, err)
	assert.Equal(t, 202, resp.StatusCode)
	assert.Equal(t, "PUBLISH", resp.Header.Get("X-Method"))
}

// raw is a plain UDP socket on 127.0.0.2 that plays a peer sending
// hand-made requests.
type raw struct {
	t    *testing.T
	conn *net.UDPConn
}

func newRaw(t *testing.T, port int) *raw {
	return newRawOn(t, net.IPv4(127, 0, 0, 2), port)
}

func newRawOn(t *testing.T, ip net.IP, port int) *raw {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, conn: c}
}

// rawPair returns two raw peers on the given fixed ports of one loopback
// address of their own (in 127.64.0.0/10, chosen at random), so that two
// test binaries running at once do not take each other's fixed ports.
func rawPair(t *testing.T, portA, portB int) (*raw, *raw) {
	var err error
	for range 20 {
		ip := net.IPv4(127, byte(64+rand.IntN(64)), byte(rand.IntN(256)), byte(1+rand.IntN(254)))
		var a, b *net.UDPConn
		if a, err = net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: portA}); err != nil {
			continue
		}
		if b, err = net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: portB}); err != nil {
			a.Close()
			continue
		}
		t.Cleanup(func() { a.Close(); b.Close() })
		return &raw{t: t, conn: a}, &raw{t: t, conn: b}
	}
	require.NoError(t, err)
	return nil, nil
}

func (r *raw) send(to string, data []byte) {
	a, err := net.ResolveUDPAddr("udp", to)
	require.NoError(r.t, err)
	_, err = r.conn.WriteToUDP(data, a)
	require.NoError(r.t, err)
}

// recv returns the next response, or nil after wait.
func (r *raw) recv(wait time.Duration) *message.Response {
	buf := make([]byte, 65535)
	_ = r.conn.SetReadDeadline(time.Now().Add(wait))
	n, _, err := r.conn.ReadFromUDP(buf)
	if err != nil {
		return nil
	}
	resp, err := message.ParseResponse(buf[:n])
	require.NoError(r.t, err)
	return resp
}

func TestCoreRules(t *testing.T) {
	bob := startUA(t, "bob", UserAgentDelegate{})
	peer := newRaw(t, 0)
	port := peer.conn.LocalAddr().(*net.UDPAddr).Port
	to := bob.listenAddrs[0].addr.String()
	n := 0
	mk := func(method, ruri, extra string) []byte {
		n++
		return []byte(method + " " + ruri + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 127.0.0.2:" + itoa(port) + ";branch=z9hG4bKcore" + itoa(n) + ";rport\r\n" +
			"From: <sip:peer@127.0.0.2>;tag=p1\r\nTo: <sip:bob@127.0.0.1>\r\n" +
			"Call-ID: core-" + itoa(n) + "\r\nCSeq: 1 " + method + "\r\nMax-Forwards: 70\r\n" + extra +
			"Content-Length: 0\r\n\r\n")
	}
	check := func(s any, code int) *message.Response {
		t.Helper()
		var data []byte
		switch v := s.(type) {
		case string:
			data = []byte(v)
		case []byte:
			data = v
		}
		peer.send(to, data)
		resp := peer.recv(2 * time.Second)
		require.NotNil(t, resp, "no response")
		assert.Equal(t, code, resp.StatusCode, string(data))
		return resp
	}
	check(mk("OPTIONS", "urn:service:sos", ""), 416)
	resp := check(mk("OPTIONS", "sip:bob@127.0.0.1", "Require: foo, outbound\r\n"), 420)
	assert.Equal(t, "foo", resp.Header.Get("Unsupported"))
	check(mk("OPTIONS", "sip:bob@127.0.0.1", "Max-Forwards: 0\r\n"), 400) // two Max-Forwards
	check(strings.Replace(string(mk("OPTIONS", "sip:bob@127.0.0.1", "")), "Max-Forwards: 70", "Max-Forwards: 0", 1), 200)
	check(mk("BYE", "sip:bob@127.0.0.1", ""), 481)
	bye := strings.Replace(string(mk("INFO", "sip:bob@127.0.0.1", "")), "To: <sip:bob@127.0.0.1>", "To: <sip:bob@127.0.0.1>;tag=nodialog", 1)
	check([]byte(bye), 481)
	resp = check(mk("SUBSCRIBE", "sip:bob@127.0.0.1", "Event: presence\r\n"), 405)
	assert.Equal(t, "ACK, CANCEL, OPTIONS", resp.Header.Get("Allow"))
	resp = check(mk("FOO", "sip:bob@127.0.0.1", ""), 501)
	assert.NotEmpty(t, resp.Header.Get("Allow"))
	check(mk("CANCEL", "sip:bob@127.0.0.1", ""), 481)
	check(mk("INVITE", "sip:bob@127.0.0.1", ""), 480)
	check(mk("INVITE", "sip:bob@127.0.0.1", "Accept: text/html\r\n"), 406)

	// A merged request: the same From tag, Call-ID and CSeq by another
	// branch → 482 (RFC 3261 §8.2.2.2).
	first := mk("OPTIONS", "sip:bob@127.0.0.1", "")
	check(first, 200)
	second := strings.Replace(string(first), "branch=z9hG4bKcore"+itoa(n), "branch=z9hG4bKother", 1)
	check([]byte(second), 482)

	// Garbage and invalid messages: 400 where there is a request to
	// answer, silence otherwise.
	check(strings.Replace(string(mk("OPTIONS", "sip:bob@127.0.0.1", "")), "CSeq: 1 OPTIONS", "CSeq: 1 INVITE", 1), 400)
	peer.send(to, []byte("\x00\x01garbage"))
	assert.Nil(t, peer.recv(200*time.Millisecond))
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestNotifyAndReferDelegates(t *testing.T) {
	got := make(chan string, 2)
	bob := startUA(t, "bob", UserAgentDelegate{
		OnNotify: func(r *IncomingRequest) { got <- "notify " + r.Request.Header.Get("Event") },
		OnRefer: func(r *IncomingRequest) {
			got <- "refer " + r.Request.Header.Get("Refer-To")
			require.NoError(t, r.Reject(context.Background(), 202, ""))
		},
	})
	alice := startUA(t, "alice", UserAgentDelegate{})
	n := alice.newRequest("NOTIFY", message.MustParseURI(addr(bob)), []string{"Event: message-summary", "Subscription-State: active"})
	resp, err := alice.request(ctx5(t), n, nil)
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "notify message-summary", <-got)
	r := alice.newRequest("REFER", message.MustParseURI(addr(bob)), []string{"Refer-To: <sip:carol@example.com>"})
	resp, err = alice.request(ctx5(t), r, nil)
	require.NoError(t, err)
	assert.Equal(t, 202, resp.StatusCode)
	assert.Equal(t, "refer <sip:carol@example.com>", <-got)

	// Without the delegates: 481 for NOTIFY, 405 for REFER.
	n = bob.newRequest("NOTIFY", message.MustParseURI(addr(alice)), []string{"Event: message-summary"})
	_, err = bob.request(ctx5(t), n, nil)
	var re *ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 481, re.StatusCode)
	r = bob.newRequest("REFER", message.MustParseURI(addr(alice)), []string{"Refer-To: <sip:x@y>"})
	_, err = bob.request(ctx5(t), r, nil)
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 405, re.StatusCode)
}

// TestSlowCallbackDoesNotStallTheStack: while a delegate callback takes
// its time, the UserAgent goes on answering other requests.
func TestSlowCallbackDoesNotStallTheStack(t *testing.T) {
	release := make(chan struct{})
	bob := startUA(t, "bob", UserAgentDelegate{OnMessage: func(r *IncomingRequest) {
		<-release // a slow application
		_ = r.Accept(context.Background())
	}})
	alice := startUA(t, "alice", UserAgentDelegate{})
	m, _ := NewMessager(alice, addr(bob), []byte("x"), "", RequestOptions{})
	done := make(chan error, 1)
	go func() { done <- m.Message(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	resp, err := alice.Options(ctx5(t), addr(bob), RequestOptions{})
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Less(t, time.Since(start), time.Second, "OPTIONS answered while the callback blocks")
	close(release)
	require.NoError(t, <-done)
}
