package transport

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sipua/sip/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run inside testing/synctest bubbles on in-memory
// connections (net.Pipe), so every timeout, keepalive and back-off delay
// is checked to the exact (fake) instant without sleeping.

// pipeConn is one end of a net.Pipe with IP addresses.
type pipeConn struct {
	net.Conn
	local, remote net.Addr
}

func (p *pipeConn) LocalAddr() net.Addr  { return p.local }
func (p *pipeConn) RemoteAddr() net.Addr { return p.remote }

// simNet hands out pipes: the client end to the Transport's dialer, the
// server end to a peer function run on its own goroutine.
type simNet struct {
	mu     sync.Mutex
	port   int
	refuse map[string]int // addr -> dials still to refuse (-1: always)
	peer   func(addr string, c net.Conn)
	wg     sync.WaitGroup
	dials  int
}

func (n *simNet) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	n.mu.Lock()
	n.dials++
	if r := n.refuse[addr]; r != 0 {
		if r > 0 {
			n.refuse[addr] = r - 1
		}
		n.mu.Unlock()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	n.port++
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000 + n.port}
	n.mu.Unlock()
	ap := netip.MustParseAddrPort(addr)
	remote := net.TCPAddrFromAddrPort(ap)
	a, b := net.Pipe()
	n.wg.Go(func() { n.peer(addr, &pipeConn{Conn: b, local: remote, remote: local}) })
	return &pipeConn{Conn: a, local: local, remote: remote}, nil
}

// crlfPeer answers the first `answer` RFC 5626 pings, then stays silent
// but keeps reading; it returns when the connection closes.
func crlfPeer(answer int) func(string, net.Conn) {
	return func(_ string, c net.Conn) {
		defer c.Close()
		var lim message.Limits
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 4096)
		for {
			n, err := c.Read(tmp)
			if err != nil {
				return
			}
			buf = append(buf, tmp[:n]...)
			for {
				m, k, err := lim.Frame(buf)
				if err != nil {
					break
				}
				buf = buf[m:]
				if k == message.Ping && answer > 0 {
					answer--
					if _, err := c.Write([]byte("\r\n")); err != nil {
						return
					}
				}
			}
		}
	}
}

var simTarget = Target{Proto: TCP, Addr: netip.MustParseAddrPort("127.0.0.1:5060")}

// TestDeadPeerTCP: pings every 30 s are answered twice, then the peer goes
// silent; the connection is closed with ErrDeadPeer exactly Timeout after
// the unanswered ping, and reported.
func TestDeadPeerTCP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &simNet{peer: crlfPeer(2)}
		events := make(chan ConnEvent, 8)
		tr := New(Config{
			DialContext: sim.dial,
			OnConn:      func(e ConnEvent) { events <- e },
			Keepalive:   Keepalive{Interval: 30 * time.Second, Timeout: 10 * time.Second},
		})
		start := time.Now()
		f, err := tr.Send(t.Context(), testRequest("OPTIONS"), simTarget)
		require.NoError(t, err)
		e := <-events
		assert.Equal(t, ConnOpen, e.State)
		e = <-events
		assert.Equal(t, ConnClosed, e.State)
		assert.Equal(t, f, e.Flow)
		assert.ErrorIs(t, e.Err, ErrDeadPeer)
		assert.Equal(t, 100*time.Second, time.Since(start), "pings at 30, 60 (answered), 90 (not): dead at 100")
		_, err = tr.Send(t.Context(), testRequest("OPTIONS"), f.Target())
		assert.ErrorIs(t, err, ErrNoConnection)
		require.NoError(t, tr.Close())
		sim.wg.Wait()
	})
}

// TestKeepaliveAnswered: a peer that answers every ping keeps the
// connection for as long as it likes.
func TestKeepaliveAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &simNet{peer: crlfPeer(1 << 30)}
		events := make(chan ConnEvent, 8)
		tr := New(Config{DialContext: sim.dial, OnConn: func(e ConnEvent) { events <- e }})
		_, err := tr.Send(t.Context(), testRequest("OPTIONS"), simTarget)
		require.NoError(t, err)
		<-events // open
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case e := <-events:
			t.Fatalf("unexpected event %v %v", e.State, e.Err)
		default:
		}
		require.NoError(t, tr.Close())
		e := <-events
		assert.ErrorIs(t, e.Err, ErrClosed)
		sim.wg.Wait()
	})
}

// TestKeepalivePingHook: a caller-supplied ping (e.g. OPTIONS) replaces
// CRLF; its failure marks the peer dead.
func TestKeepalivePingHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &simNet{peer: crlfPeer(0)}
		events := make(chan ConnEvent, 8)
		var pings int
		tr := New(Config{
			DialContext: sim.dial,
			OnConn:      func(e ConnEvent) { events <- e },
			Keepalive: Keepalive{Interval: 10 * time.Second, Timeout: 2 * time.Second, Ping: func(ctx context.Context, f Flow) error {
				pings++
				if pings < 3 {
					return nil
				}
				<-ctx.Done() // no answer to the OPTIONS
				return ctx.Err()
			}},
		})
		start := time.Now()
		_, err := tr.Send(t.Context(), testRequest("OPTIONS"), simTarget)
		require.NoError(t, err)
		<-events
		e := <-events
		assert.ErrorIs(t, e.Err, ErrDeadPeer)
		assert.ErrorIs(t, e.Err, context.DeadlineExceeded)
		assert.Equal(t, 32*time.Second, time.Since(start))
		require.NoError(t, tr.Close())
		sim.wg.Wait()
	})
}

// TestSlowloris: an inbound message that trickles in is cut off
// ReadTimeout after its first byte; a connection that sends nothing is
// closed after ReadTimeout, one that falls silent after a message after
// IdleTimeout.
func TestSlowloris(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		events := make(chan ConnEvent, 8)
		tr := New(Config{OnConn: func(e ConnEvent) { events <- e }, ReadTimeout: 10 * time.Second, IdleTimeout: time.Minute})
		a, b := net.Pipe()
		ca := &pipeConn{Conn: a, local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060}, remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40001}}
		tr.addInbound(tr.newConn(ca, nil, TCP, true))
		<-events
		start := time.Now()
		go func(b net.Conn) {
			defer b.Close()
			msg := testRequest("OPTIONS").String()
			for i := 0; i < len(msg); i++ {
				if _, err := b.Write([]byte{msg[i]}); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}(b)
		e := <-events
		assert.ErrorIs(t, e.Err, ErrReadTimeout)
		assert.Equal(t, 10*time.Second, time.Since(start).Round(time.Second))

		// Nothing at all: the first message is due within ReadTimeout.
		a, b = net.Pipe()
		defer b.Close()
		ca = &pipeConn{Conn: a, local: ca.local, remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40002}}
		tr.addInbound(tr.newConn(ca, nil, TCP, true))
		<-events
		start = time.Now()
		e = <-events
		assert.ErrorIs(t, e.Err, ErrReadTimeout)
		assert.Equal(t, 10*time.Second, time.Since(start))

		// After a message, silence is cut off after IdleTimeout.
		a, b = net.Pipe()
		defer b.Close()
		ca = &pipeConn{Conn: a, local: ca.local, remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40003}}
		tr.addInbound(tr.newConn(ca, nil, TCP, true))
		<-events
		go func() { _, _ = b.Write([]byte(testRequest("OPTIONS").String())) }()
		start = time.Now()
		e = <-events
		assert.ErrorIs(t, e.Err, ErrReadTimeout)
		assert.Equal(t, time.Minute, time.Since(start))
		require.NoError(t, tr.Close())
	})
}

// wsPeer does a minimal server-side WebSocket handshake, selecting
// subprotocol proto ("" for none), then answers the first `answer` pings
// and afterwards only reads.
func wsPeer(proto string, answer int) func(string, net.Conn) {
	return func(_ string, c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		req, err := http.ReadRequest(r)
		if err != nil {
			return
		}
		h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(h[:]) + "\r\n"
		if proto != "" {
			resp += "Sec-WebSocket-Protocol: " + proto + "\r\n"
		}
		if _, err := c.Write([]byte(resp + "\r\n")); err != nil {
			return
		}
		for {
			var hdr [2]byte
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				return
			}
			n := uint64(hdr[1] & 0x7f)
			switch n {
			case 126:
				var l [2]byte
				if _, err := io.ReadFull(r, l[:]); err != nil {
					return
				}
				n = uint64(binary.BigEndian.Uint16(l[:]))
			case 127:
				var l [8]byte
				if _, err := io.ReadFull(r, l[:]); err != nil {
					return
				}
				n = binary.BigEndian.Uint64(l[:])
			}
			if hdr[1]&0x80 != 0 {
				n += 4 // mask key
			}
			if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
				return
			}
			if hdr[0]&0x0f == 0x9 && answer > 0 { // ping
				answer--
				if _, err := c.Write([]byte{0x8a, 0}); err != nil {
					return
				}
			}
		}
	}
}

// TestDeadPeerWS: WebSocket ping frames answered twice, then not: the
// connection is dead Timeout after the unanswered ping.
func TestDeadPeerWS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &simNet{peer: wsPeer("sip", 2)}
		events := make(chan ConnEvent, 8)
		tr := New(Config{
			DialContext: sim.dial,
			OnConn:      func(e ConnEvent) { events <- e },
			Keepalive:   Keepalive{Interval: 20 * time.Second, Timeout: 5 * time.Second},
		})
		start := time.Now()
		f, err := tr.Send(t.Context(), testRequest("OPTIONS"), Target{Proto: WS, Addr: simTarget.Addr})
		require.NoError(t, err)
		assert.Equal(t, WS, f.Proto)
		<-events
		e := <-events
		assert.ErrorIs(t, e.Err, ErrDeadPeer)
		assert.Equal(t, 65*time.Second, time.Since(start))
		require.NoError(t, tr.Close())
		sim.wg.Wait()
	})
}

// TestWSSubprotocolRequired: a server that does not select "sip" fails the
// dial with a *SubprotocolError.
func TestWSSubprotocolRequired(t *testing.T) {
	for _, got := range []string{"", "chat"} {
		synctest.Test(t, func(t *testing.T) {
			sim := &simNet{peer: wsPeer(got, 0)}
			tr := New(Config{DialContext: sim.dial})
			_, err := tr.Send(t.Context(), testRequest("OPTIONS"), Target{Proto: WS, Addr: simTarget.Addr, Path: "/sip"})
			assert.ErrorIs(t, err, ErrSubprotocol)
			var se *SubprotocolError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, got, se.Got)
			assert.Equal(t, "ws://127.0.0.1:5060/sip", se.URL)
			require.NoError(t, tr.Close())
			sim.wg.Wait()
		})
	}
}

type stamped struct {
	StateEvent
	at time.Duration
}

// TestUpstreamBackoff: refused attempts are retried after 1, 2 and 4 s
// (Min 1 s, doubling, no jitter); the connection then drops and is made
// again after Min; Close ends with ErrClosed.
func TestUpstreamBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drop := make(chan struct{})
		sim := &simNet{refuse: map[string]int{"127.0.0.1:5060": 3}}
		var used atomic.Bool
		sim.peer = func(_ string, c net.Conn) {
			defer c.Close()
			if used.Swap(true) { // only the first connection waits for drop
				_, _ = io.Copy(io.Discard, c) // until the client closes
				return
			}
			select {
			case <-drop:
			case <-t.Context().Done():
			}
		}
		tr := New(Config{DialContext: sim.dial, Keepalive: Keepalive{Interval: -1}})
		start := time.Now()
		evs := make(chan stamped, 64)
		u, err := tr.Connect(UpstreamConfig{
			Servers: []Server{{Addr: "sip:127.0.0.1:5060;transport=tcp"}},
			Backoff: Backoff{Min: time.Second, Max: time.Minute, Jitter: -1},
			OnState: func(e StateEvent) { evs <- stamped{e, time.Since(start)} },
		})
		require.NoError(t, err)
		next := func() stamped { return <-evs }
		for i, want := range []struct {
			state   State
			at      time.Duration
			attempt int
			retry   time.Duration
		}{
			{Connecting, 0, 1, 0}, {Disconnected, 0, 0, time.Second},
			{Connecting, 1 * time.Second, 2, 0}, {Disconnected, 1 * time.Second, 0, 2 * time.Second},
			{Connecting, 3 * time.Second, 3, 0}, {Disconnected, 3 * time.Second, 0, 4 * time.Second},
			{Connecting, 7 * time.Second, 4, 0}, {Connected, 7 * time.Second, 4, 0},
		} {
			e := next()
			assert.Equal(t, want.state, e.State, "event %d", i)
			assert.Equal(t, want.at, e.at, "event %d", i)
			assert.Equal(t, want.attempt, e.Attempt, "event %d", i)
			assert.Equal(t, want.retry, e.RetryIn, "event %d", i)
			if e.State == Disconnected {
				assert.ErrorIs(t, e.Err, syscall.ECONNREFUSED)
			}
		}
		f, ok := u.Flow()
		assert.True(t, ok)
		assert.Equal(t, Connected, u.State())

		time.Sleep(10 * time.Second)
		close(drop) // the server closes the connection
		e := next()
		assert.Equal(t, Disconnected, e.State)
		assert.Equal(t, 17*time.Second, e.at)
		assert.ErrorIs(t, e.Err, io.EOF)
		assert.Equal(t, f, e.Flow)
		assert.Equal(t, time.Second, e.RetryIn, "first retry after a drop waits Min")
		e = next()
		assert.Equal(t, Connecting, e.State)
		assert.Equal(t, 18*time.Second, e.at)
		assert.Equal(t, 1, e.Attempt, "back-off starts over after a connection")
		e = next()
		assert.Equal(t, Connected, e.State)
		f2, err := u.WaitConnected(t.Context())
		require.NoError(t, err)
		assert.NotEqual(t, f.ID, f2.ID)

		require.NoError(t, u.Close())
		e = next()
		assert.Equal(t, Disconnected, e.State)
		assert.ErrorIs(t, e.Err, ErrClosed)
		assert.ErrorIs(t, u.Close(), ErrClosed)
		require.NoError(t, tr.Close())
		sim.wg.Wait()
	})
}

// TestUpstreamGiveUp: delays are capped at Max and the Upstream gives up
// after MaxAttempts failed rounds.
func TestUpstreamGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &simNet{refuse: map[string]int{"127.0.0.1:5060": -1}}
		tr := New(Config{DialContext: sim.dial})
		start := time.Now()
		var got []time.Duration
		var last StateEvent
		u, err := tr.Connect(UpstreamConfig{
			Servers: []Server{{Addr: "sip:127.0.0.1:5060;transport=tcp"}},
			Backoff: Backoff{Min: time.Second, Max: 3 * time.Second, MaxAttempts: 5, Jitter: -1},
			OnState: func(e StateEvent) {
				if e.State == Disconnected {
					got = append(got, e.RetryIn)
					last = e
				}
			},
		})
		require.NoError(t, err)
		_, err = u.WaitConnected(t.Context())
		assert.ErrorIs(t, err, ErrClosed)
		assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second, 0}, got)
		assert.ErrorIs(t, last.Err, ErrGaveUp)
		assert.ErrorIs(t, last.Err, syscall.ECONNREFUSED)
		assert.Equal(t, 9*time.Second, time.Since(start))
		assert.Equal(t, 5, sim.dials)
		assert.ErrorIs(t, u.Close(), ErrClosed)
		require.NoError(t, tr.Close())
	})
}

// TestUpstreamFailover: the primary server refuses, the secondary takes
// over at once; after the secondary drops, the primary is tried first
// again.
func TestUpstreamFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drop := make(chan struct{})
		sim := &simNet{refuse: map[string]int{"127.0.0.1:5060": -1}}
		var used atomic.Bool
		sim.peer = func(_ string, c net.Conn) {
			defer c.Close()
			if used.Swap(true) { // only the first connection waits for drop
				_, _ = io.Copy(io.Discard, c)
				return
			}
			select {
			case <-drop:
			case <-t.Context().Done():
			}
		}
		tr := New(Config{DialContext: sim.dial, Keepalive: Keepalive{Interval: -1}})
		evs := make(chan StateEvent, 64)
		u, err := tr.Connect(UpstreamConfig{
			Servers: []Server{
				{Addr: "sip:127.0.0.1:5070;transport=tcp", Priority: 20},
				{Addr: "sip:127.0.0.1:5060;transport=tcp", Priority: 10},
			},
			Backoff: Backoff{Min: 2 * time.Second, Jitter: -1},
			OnState: func(e StateEvent) { evs <- e },
		})
		require.NoError(t, err)
		want := []struct {
			s      State
			server string
		}{
			{Connecting, "sip:127.0.0.1:5060;transport=tcp"},
			{Connecting, "sip:127.0.0.1:5070;transport=tcp"},
			{Connected, "sip:127.0.0.1:5070;transport=tcp"},
		}
		for _, w := range want {
			e := <-evs
			assert.Equal(t, w.s, e.State)
			assert.Equal(t, w.server, e.Server)
		}
		close(drop)
		e := <-evs
		assert.Equal(t, Disconnected, e.State)
		for _, w := range want {
			e := <-evs
			assert.Equal(t, w.s, e.State)
			assert.Equal(t, w.server, e.Server)
		}
		// Reconnect drops the connection and connects again at once.
		start := time.Now()
		u.Reconnect()
		e = <-evs
		assert.Equal(t, Disconnected, e.State)
		assert.Equal(t, time.Duration(0), e.RetryIn)
		for range want {
			<-evs
		}
		assert.Equal(t, time.Duration(0), time.Since(start))
		require.NoError(t, u.Close())
		require.NoError(t, tr.Close())
		sim.wg.Wait()
	})
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second, Rand: func() float64 { return 0.5 }}
	// Default jitter 0.5 with Rand 0.5 takes a quarter off.
	assert.Equal(t, 75*time.Millisecond, b.Delay(0))
	assert.Equal(t, 75*time.Millisecond, b.Delay(1))
	assert.Equal(t, 150*time.Millisecond, b.Delay(2))
	assert.Equal(t, 600*time.Millisecond, b.Delay(4))
	assert.Equal(t, 750*time.Millisecond, b.Delay(5))
	assert.Equal(t, 750*time.Millisecond, b.Delay(1000))
	for range 100 {
		d := (Backoff{}).Delay(3)
		assert.True(t, d > 2*time.Second && d <= 4*time.Second, d)
	}
	assert.Equal(t, time.Second, (Backoff{Jitter: -1}).Delay(0))
	assert.True(t, errors.Is(func() error { _, err := New(Config{}).Connect(UpstreamConfig{}); return err }(), ErrResolve))
}
