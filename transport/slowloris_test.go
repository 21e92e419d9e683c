package transport

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// closedAfter reads from c (discarding) until the peer closes it and
// returns how long that took from start; it gives up after limit.
func closedAfter(c net.Conn, start time.Time, limit time.Duration) time.Duration {
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return limit // still open
	}
	return time.Since(start)
}

// trickle writes b one byte per gap until the peer closes c.
func trickle(c net.Conn, b []byte, gap time.Duration) {
	for i := range b {
		if _, err := c.Write(b[i : i+1]); err != nil {
			return
		}
		time.Sleep(gap)
	}
}

func wsUpgrade(t *testing.T, addr netip.AddrPort) (*websocket.Conn, net.Conn) {
	d := websocket.Dialer{Subprotocols: []string{"sip"}}
	ws, _, err := d.Dial("ws://"+addr.String()+"/", nil)
	require.NoError(t, err)
	return ws, ws.UnderlyingConn()
}

// TestSlowlorisListeners attacks real TCP, TLS and WebSocket listeners
// the slowloris way, all at once, and checks when each connection is cut
// off: one that sends nothing, one that does not finish its TLS or HTTP
// handshake, one that trickles a message (or a WebSocket frame) byte by
// byte, after ReadTimeout; one that falls silent after a message, after
// IdleTimeout. MaxConns counts the connections of every listener
// together, and the slots come back once the attackers are cut off.
func TestSlowlorisListeners(t *testing.T) {
	const (
		readTimeout = 400 * time.Millisecond
		idleTimeout = 1500 * time.Millisecond
		slack       = 1500 * time.Millisecond // a loaded machine
	)
	sin := newInbox()
	tr := New(sin.config(Config{ReadTimeout: readTimeout, IdleTimeout: idleTimeout, ServerTLSConfig: serverTLS(t), MaxConns: 12}))
	defer tr.Close()
	addrs := map[Proto]netip.AddrPort{}
	for _, p := range []Proto{TCP, TLS, WS} {
		a, err := tr.Listen(ctxT(t), p, "127.0.0.1:0")
		require.NoError(t, err)
		addrs[p] = a
	}
	msg := []byte(testRequest("OPTIONS").String())
	httpUpgrade := []byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n")

	type attack struct {
		name string
		want time.Duration
		run  func(start time.Time) time.Duration
	}
	attacks := []attack{
		{"tcp-silent", readTimeout, func(start time.Time) time.Duration {
			c := rawDial(t, addrs[TCP])
			return closedAfter(c, start, readTimeout+idleTimeout+slack)
		}},
		{"tcp-trickle", readTimeout, func(start time.Time) time.Duration {
			c := rawDial(t, addrs[TCP])
			go trickle(c, msg, 50*time.Millisecond)
			return closedAfter(c, start, readTimeout+idleTimeout+slack)
		}},
		{"tcp-idle-after-message", idleTimeout, func(start time.Time) time.Duration {
			c := rawDial(t, addrs[TCP])
			_, err := c.Write(msg)
			require.NoError(t, err)
			return closedAfter(c, start, idleTimeout+slack+time.Second)
		}},
		{"tls-no-handshake", readTimeout, func(start time.Time) time.Duration {
			c := rawDial(t, addrs[TLS])
			return closedAfter(c, start, readTimeout+idleTimeout+slack)
		}},
		{"tls-silent-after-handshake", readTimeout, func(start time.Time) time.Duration {
			c, err := tls.Dial("tcp", addrs[TLS].String(), clientTLS(t))
			require.NoError(t, err)
			defer c.Close()
			return closedAfter(c, start, readTimeout+idleTimeout+slack)
		}},
		{"ws-silent", readTimeout, func(start time.Time) time.Duration {
			c := rawDial(t, addrs[WS])
			return closedAfter(c, start, readTimeout+idleTimeout+slack)
		}},
		{"ws-trickle-handshake", readTimeout, func(start time.Time) time.Duration {
			c := rawDial(t, addrs[WS])
			go trickle(c, httpUpgrade, 50*time.Millisecond)
			return closedAfter(c, start, readTimeout+idleTimeout+slack)
		}},
		{"ws-silent-after-upgrade", readTimeout, func(start time.Time) time.Duration {
			ws, nc := wsUpgrade(t, addrs[WS])
			defer ws.Close()
			return closedAfter(nc, start, readTimeout+idleTimeout+slack)
		}},
		{"ws-trickle-frame", 2 * readTimeout, func(start time.Time) time.Duration {
			ws, nc := wsUpgrade(t, addrs[WS])
			defer ws.Close()
			// A masked text frame announcing 100 bytes, then its bytes
			// one at a time: the header (6 bytes) is due within
			// ReadTimeout of the upgrade, the payload within ReadTimeout
			// of the header, so about 2*ReadTimeout in all.
			frame := append([]byte{0x81, 0x80 | 100, 1, 2, 3, 4}, make([]byte, 100)...)
			go trickle(nc, frame, 50*time.Millisecond)
			return closedAfter(nc, start, readTimeout+idleTimeout+slack)
		}},
		{"ws-idle-after-message", idleTimeout, func(start time.Time) time.Duration {
			ws, nc := wsUpgrade(t, addrs[WS])
			defer ws.Close()
			require.NoError(t, ws.WriteMessage(websocket.TextMessage, msg))
			return closedAfter(nc, start, idleTimeout+slack+time.Second)
		}},
	}
	var wg sync.WaitGroup
	got := make([]time.Duration, len(attacks))
	for i, a := range attacks {
		wg.Go(func() { got[i] = a.run(time.Now()) })
	}

	// Meanwhile the cap holds: 10 attackers are in, 2 slots are left.
	time.Sleep(100 * time.Millisecond)
	extra := []net.Conn{rawDial(t, addrs[TCP]), rawDial(t, addrs[WS])}
	over := rawDial(t, addrs[TCP])
	assert.Less(t, closedAfter(over, time.Now(), readTimeout/2), readTimeout/2, "a connection over MaxConns is closed at once")
	for _, c := range extra {
		c.Close()
	}
	wg.Wait()
	for i, a := range attacks {
		t.Logf("%-28s closed after %v (want %v)", a.name, got[i].Round(10*time.Millisecond), a.want)
		lo := a.want - 50*time.Millisecond
		if a.name == "ws-trickle-frame" {
			lo = readTimeout
		}
		assert.GreaterOrEqual(t, got[i], lo, a.name)
		assert.Less(t, got[i], a.want+slack, a.name)
	}

	// The slots are free again: a client gets in and is served.
	c := rawDial(t, addrs[TCP])
	defer c.Close()
	_, err := c.Write(msg)
	require.NoError(t, err)
	for {
		in := sin.msg(t)
		if in.Err == nil && in.Flow.Remote == addrPortOf(c.LocalAddr()) {
			break
		}
	}
	// And the WebSocket listener answers HTTP (the slots are released as
	// the server notices the closes: give it a moment).
	assert.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addrs[WS].String() + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusBadRequest // no sip subprotocol
	}, 5*time.Second, 50*time.Millisecond)
}
