package transport

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWSServer checks the WebSocket server side with a plain gorilla
// client: the sip subprotocol is required, CRLF keepalives inside
// messages are answered, oversized messages close the connection, and
// MaxConns applies to a handler mounted in the caller's own server.
func TestWSServer(t *testing.T) {
	sin := newInbox()
	tr := New(sin.config(Config{MaxConns: 1, Limits: limitsSmall}))
	defer tr.Close()
	srv := httptest.NewServer(tr.WebSocketHandler())
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	require.ErrorIs(t, err, websocket.ErrBadHandshake)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "no sip subprotocol offered")
	resp.Body.Close()

	d := websocket.Dialer{Subprotocols: []string{"sip"}}
	c, _, err := d.Dial(url, nil)
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "sip", c.Subprotocol())
	sin.conn(t, ConnOpen)

	_, resp, err = d.Dial(url, nil)
	require.ErrorIs(t, err, websocket.ErrBadHandshake)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "over MaxConns")
	resp.Body.Close()

	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("\r\n\r\n")))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, pong, err := c.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "\r\n", string(pong))

	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(testRequest("OPTIONS").String())))
	in := sin.msg(t)
	require.NoError(t, in.Err)
	assert.Equal(t, WS, in.Flow.Proto)

	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 5000))))
	e := sin.conn(t, ConnClosed)
	assert.ErrorIs(t, e.Err, ErrMessageTooLarge)
	_, _, err = c.ReadMessage()
	assert.Error(t, err)

	// The slot is free again.
	c2, _, err := d.Dial(url, nil)
	require.NoError(t, err)
	c2.Close()
}
