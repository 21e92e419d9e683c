package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/sipua/sip/message"
)

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
)

// conn is one stream connection: TCP or TLS (nc only) or WebSocket (ws,
// with nc its underlying connection). Its reader goroutine owns the read
// side and reports its events; writers serialise on wmu.
type conn struct {
	t       *Transport
	id      uint64
	f       Flow
	inbound bool
	nc      net.Conn
	ws      *websocket.Conn

	wmu sync.Mutex

	// The write queue (TrySendRequest, TrySendResponse), drained by
	// writeLoop, which qsig wakes; qclosed is set under qmu once
	// writeLoop stops taking.
	qmu     sync.Mutex
	q       []queued
	qclosed bool
	qsig    chan struct{}

	ctx    context.Context // ends when the connection closes
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error         // why it closed; set before done is closed
	pong   chan struct{} // a pong arrived (capacity 1)
	wrote  chan struct{} // a message was written (capacity 1)

	one [1]Incoming // what deliver hands over, owned by the reader
}

func (t *Transport) newConn(nc net.Conn, ws *websocket.Conn, proto Proto, inbound bool) *conn {
	c := &conn{
		t: t, nc: nc, ws: ws, inbound: inbound,
		f:     Flow{Proto: proto, Local: addrPortOf(nc.LocalAddr()), Remote: addrPortOf(nc.RemoteAddr())},
		done:  make(chan struct{}),
		pong:  make(chan struct{}, 1),
		wrote: make(chan struct{}, 1),
		qsig:  make(chan struct{}, 1),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

func (c *conn) flow() Flow { return c.f }

func (c *conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// close closes the connection; the first reason given is the one
// reported.
func (c *conn) close(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		c.cancel()
		if c.ws != nil {
			// Say goodbye with a close frame (RFC 6455 §5.5.1); never
			// wait long for a peer that is not reading.
			code := websocket.CloseNormalClosure
			if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, errReconnect) {
				code = websocket.CloseGoingAway
			}
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(100*time.Millisecond))
		}
		c.nc.Close()
	})
}

// closeNow closes a connection that was never registered or started.
func (c *conn) closeNow() { c.close(ErrClosed) }

// start launches the reader, the writer of the write queue and, on
// outbound connections with keepalive on, the keepalive goroutine.
// Called by register under t.mu.
func (c *conn) start() {
	c.t.wg.Go(c.readLoop)
	c.t.wg.Go(c.writeLoop)
	if !c.inbound && c.t.cfg.Keepalive.Interval > 0 {
		c.t.wg.Go(c.keepalive)
	}
}

func (c *conn) readLoop() {
	t := c.t
	t.connEvent(ConnEvent{Flow: c.f, State: ConnOpen, Inbound: c.inbound})
	var err error
	if c.ws != nil {
		err = c.readWS()
	} else {
		err = c.readStream()
	}
	c.close(err)
	t.unregister(c)
	t.connEvent(ConnEvent{Flow: c.f, State: ConnClosed, Inbound: c.inbound, Err: c.err})
}

func (c *conn) gotPong() {
	select {
	case c.pong <- struct{}{}:
	default:
	}
}

// readDeadline returns the read deadline: partialSince+ReadTimeout while
// a message is incomplete, now+IdleTimeout between messages.
func (c *conn) readDeadline(partialSince time.Time) time.Time {
	cfg := &c.t.cfg
	if !partialSince.IsZero() {
		if cfg.ReadTimeout > 0 {
			return partialSince.Add(cfg.ReadTimeout)
		}
		return time.Time{}
	}
	if cfg.IdleTimeout > 0 {
		return time.Now().Add(cfg.IdleTimeout)
	}
	return time.Time{}
}

// readStream frames a TCP or TLS byte stream with message.Limits.Frame:
// messages go to OnMessage, pings are answered, pongs noted. It returns
// why the connection ended.
func (c *conn) readStream() error {
	t := c.t
	lim := t.cfg.Limits
	buf := make([]byte, 4096)
	start, end := 0, 0
	var partialSince time.Time
	if c.inbound {
		// The first message (or keepalive) of an inbound connection is
		// due within ReadTimeout of the accept, as if its first byte had
		// come then: a peer that connects and sends nothing holds no
		// connection slot for the long IdleTimeout.
		partialSince = time.Now()
	}
	for {
		for end > start {
			n, k, err := lim.Frame(buf[start:end])
			if errors.Is(err, message.ErrIncomplete) {
				break
			}
			if err != nil {
				c.answerBeforeClose(buf[start:end], err)
				if errors.Is(err, message.ErrTooLarge) {
					return fmt.Errorf("transport: %w: %w", ErrMessageTooLarge, err)
				}
				return fmt.Errorf("transport: framing error: %w", err)
			}
			unit := buf[start : start+n]
			start += n
			switch k {
			case message.Ping:
				// RFC 5626 §4.4.1: answer a double CRLF with a single one.
				if err := c.write(context.Background(), crlf); err != nil {
					return err
				}
			case message.Pong:
				c.gotPong()
			default:
				m, perr := lim.ParseStream(unit)
				c.deliver(unit, m, perr)
			}
		}
		if start == end {
			if end > 0 { // a unit completed (not the first pass of an inbound connection)
				partialSince = time.Time{}
			}
			start, end = 0, 0
		} else {
			if partialSince.IsZero() {
				partialSince = time.Now()
			}
			if start > 0 {
				copy(buf, buf[start:end])
				end -= start
				start = 0
			}
		}
		if end == len(buf) {
			if len(buf) >= t.maxMsg+4 {
				return fmt.Errorf("transport: %w: no message end within %d bytes", ErrMessageTooLarge, len(buf))
			}
			nb := make([]byte, min(2*len(buf), t.maxMsg+4))
			copy(nb, buf[:end])
			buf = nb
		}
		_ = c.nc.SetReadDeadline(c.readDeadline(partialSince))
		n, err := c.nc.Read(buf[end:])
		end += n
		if err != nil && n == 0 {
			return c.readError(err, end > start, !partialSince.IsZero())
		}
	}
}

// deliver hands a received unit (raw, parsed as m or failing with err)
// to the Tracer and to OnMessage or OnMessages.
func (c *conn) deliver(raw []byte, m message.Message, err error) {
	c.one[0] = c.t.incoming(raw, m, err, c.f)
	c.t.emit(c.one[:])
	c.one[0] = Incoming{}
}

// readError maps a read error to the reason the connection ended:
// partial says bytes of a message are pending, due that a message was
// due within ReadTimeout (one begun, or an inbound connection's first).
func (c *conn) readError(err error, partial, due bool) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		if partial || due {
			return fmt.Errorf("%w: message not complete within %v", ErrReadTimeout, c.t.cfg.ReadTimeout)
		}
		return fmt.Errorf("%w: idle for %v", ErrReadTimeout, c.t.cfg.IdleTimeout)
	case errors.Is(err, io.EOF):
		if partial {
			return io.ErrUnexpectedEOF
		}
		return io.EOF
	}
	return err
}

// write sends one message (or keepalive) on the connection. A failed
// write closes the connection: the stream may hold half a message.
func (c *conn) write(ctx context.Context, b []byte) error {
	if c.isClosed() {
		return fmt.Errorf("transport: connection %v closed: %w", c.f, ErrNoConnection)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	dl, _ := ctx.Deadline()
	if wt := c.t.cfg.WriteTimeout; wt > 0 {
		if d := time.Now().Add(wt); dl.IsZero() || d.Before(dl) {
			dl = d
		}
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { _ = c.nc.SetWriteDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	var err error
	if c.ws != nil {
		_ = c.ws.SetWriteDeadline(dl)
		typ := websocket.TextMessage
		if !utf8.Valid(b) {
			typ = websocket.BinaryMessage
		}
		err = c.ws.WriteMessage(typ, b)
	} else {
		_ = c.nc.SetWriteDeadline(dl)
		_, err = c.nc.Write(b)
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		err = fmt.Errorf("transport: write to %v: %w", c.f, err)
		c.close(err)
		return err
	}
	select {
	case c.wrote <- struct{}{}:
	default:
	}
	return nil
}

// lingerTimeout bounds how long a stream connection that is closing on a
// message it cannot frame waits for the answer to it and drains what the
// peer still sends.
const lingerTimeout = time.Second

// answerBeforeClose handles a request on a stream that cannot be framed
// (a body or message over the limits, a bad Content-Length): the
// connection must close, since the stream cannot be resynchronised, but
// when the request's header section is whole, the layer above gets it
// with the framing error (status 400, 413 or 513) and a moment to answer
// before the close. The read side is then drained briefly, so that the
// peer reads the answer rather than a reset.
func (c *conn) answerBeforeClose(b []byte, ferr error) {
	var pe *message.ParseError
	if !errors.As(ferr, &pe) || !answerable(ferr) {
		return
	}
	req, n := unframable(c.t.cfg.Limits, c.t.maxMsg, b)
	if req == nil {
		return
	}
	e := *pe
	e.Message = req
	select {
	case <-c.wrote:
	default:
	}
	c.deliver(b[:n], nil, &e)
	if c.t.linger <= 0 {
		return
	}
	timer := time.NewTimer(c.t.linger)
	defer timer.Stop()
	select {
	case <-c.wrote:
	case <-timer.C:
		return
	case <-c.t.ctx.Done():
		return
	}
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.t.linger))
	_, _ = io.CopyN(io.Discard, c.nc, int64(c.t.maxMsg)*16)
}

// answerable reports whether a framing error is one found after the
// whole header section was read (so the request can be answered): a bad
// Content-Length, a body or message over the limits.
func answerable(ferr error) bool {
	return errors.Is(ferr, message.ErrContentLength) || errors.Is(ferr, message.ErrTooLarge)
}

// unframable returns the request whose whole header section starts b, a
// stream that cannot be framed, and the length of that section; nil when
// there is none within maxLen bytes (a stream read in pieces may never hold
// more), or it is an ACK, which is never answered.
func unframable(lim message.Limits, maxLen int, b []byte) (*message.Request, int) {
	he := message.HeaderEnd(b)
	if he < 0 || he > maxLen {
		return nil, 0
	}
	m, perr := lim.Parse(b[:he])
	var hp *message.ParseError
	if errors.As(perr, &hp) {
		m = hp.Message
	}
	req, ok := m.(*message.Request)
	if !ok || req.Method == "ACK" {
		return nil, 0
	}
	return req, he
}

// keepalive pings the peer every Interval and closes the connection
// with ErrDeadPeer when a pong does not come within Timeout.
func (c *conn) keepalive() {
	ka := c.t.cfg.Keepalive
	timer := time.NewTimer(ka.Interval)
	defer timer.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-timer.C:
		}
		if ka.Ping != nil {
			ctx, cancel := context.WithTimeout(c.ctx, ka.Timeout)
			err := ka.Ping(ctx, c.f)
			cancel()
			if err != nil {
				c.close(fmt.Errorf("%w: ping: %w", ErrDeadPeer, err))
				return
			}
		} else {
			select {
			case <-c.pong: // a stale pong does not answer this ping
			default:
			}
			if err := c.sendPing(); err != nil {
				c.close(err)
				return
			}
			timer.Reset(ka.Timeout)
			select {
			case <-c.done:
				return
			case <-c.pong:
				timer.Stop()
			case <-timer.C:
				c.t.log.Warn("sip transport: keepalive unanswered, closing", "flow", c.f, "timeout", ka.Timeout)
				c.close(fmt.Errorf("%w: no pong within %v on %v", ErrDeadPeer, ka.Timeout, c.f))
				return
			}
		}
		timer.Reset(ka.Interval)
	}
}

func (c *conn) sendPing() error {
	if c.ws != nil {
		dl := time.Now().Add(c.t.cfg.Keepalive.Timeout)
		if err := c.ws.WriteControl(websocket.PingMessage, nil, dl); err != nil {
			return fmt.Errorf("transport: ping %v: %w", c.f, err)
		}
		return nil
	}
	return c.write(context.Background(), crlfcrlf)
}

// readWS reads one SIP message per WebSocket message (RFC 7118 §5.1).
func (c *conn) readWS() error {
	t := c.t
	ws := c.ws
	ws.SetReadLimit(int64(t.maxMsg))
	idle := func() { _ = ws.SetReadDeadline(c.readDeadline(time.Time{})) }
	ws.SetPongHandler(func(string) error {
		c.gotPong()
		idle()
		return nil
	})
	ws.SetPingHandler(func(data string) error {
		idle()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		if err == websocket.ErrCloseSent {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})
	buf := make([]byte, 0, 4096)
	first := c.inbound
	for {
		if first && t.cfg.ReadTimeout > 0 {
			// As on TCP: the first message (or ping) of an inbound
			// connection is due within ReadTimeout of the handshake.
			_ = ws.SetReadDeadline(time.Now().Add(t.cfg.ReadTimeout))
			first = false
		} else {
			idle()
		}
		_, r, err := ws.NextReader()
		if err != nil {
			return c.wsError(err, false)
		}
		if t.cfg.ReadTimeout > 0 {
			_ = ws.SetReadDeadline(time.Now().Add(t.cfg.ReadTimeout))
		}
		buf, err = readAll(buf[:0], r)
		if err != nil {
			return c.wsError(err, true)
		}
		switch string(buf) {
		case "\r\n\r\n": // a CRLF keepalive inside a WebSocket message (SIP.js)
			if err := c.write(context.Background(), crlf); err != nil {
				return err
			}
			continue
		case "\r\n":
			c.gotPong()
			continue
		}
		m, perr := t.cfg.Limits.Parse(buf)
		c.deliver(buf, m, perr)
	}
}

func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func (c *conn) wsError(err error, partial bool) error {
	if errors.Is(err, websocket.ErrReadLimit) {
		return fmt.Errorf("transport: %w: WebSocket message over %d bytes", ErrMessageTooLarge, c.t.maxMsg)
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case websocket.CloseNormalClosure, websocket.CloseGoingAway:
			return io.EOF
		case websocket.CloseAbnormalClosure:
			return fmt.Errorf("transport: WebSocket connection lost without a close frame: %w", io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("transport: WebSocket closed by peer: %w", err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return c.readError(err, partial, partial)
}

// dialWS opens a WebSocket connection offering the sip subprotocol.
func (t *Transport) dialWS(ctx context.Context, target Target) (*conn, error) {
	host := target.Host
	if host == "" {
		host = target.Addr.Addr().String()
	}
	u := wsURL(target.Proto, host, target.Addr.Port(), target.Path)
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return t.cfg.DialContext(ctx, "tcp", target.Addr.String())
		},
		Subprotocols:    []string{"sip"},
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
	}
	if target.Proto == WSS {
		d.TLSClientConfig = t.clientTLS(target)
	}
	ws, resp, err := d.DialContext(ctx, u, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("transport: WebSocket handshake with %s: HTTP %s: %w", u, resp.Status, err)
		}
		return nil, fmt.Errorf("transport: dial %s: %w", u, err)
	}
	if p := ws.Subprotocol(); p != "sip" {
		ws.Close()
		return nil, &SubprotocolError{URL: u, Got: p}
	}
	return t.newConn(ws.UnderlyingConn(), ws, target.Proto, false), nil
}

func wsURL(proto Proto, host string, port uint16, path string) string {
	scheme := "ws"
	if proto == WSS {
		scheme = "wss"
	}
	if path == "" {
		path = "/"
	} else if path[0] != '/' {
		path = "/" + path
	}
	return scheme + "://" + net.JoinHostPort(host, fmt.Sprint(port)) + path
}

type countedKey struct{}

// WebSocketHandler returns an http.Handler that accepts SIP over
// WebSocket connections (RFC 7118), for mounting in the caller's own
// http.Server (Listen with WS or WSS runs one itself). A handshake that
// does not offer the "sip" subprotocol is refused with 400, one over
// Config.MaxConns with 503. The connections belong to the Transport: they
// deliver to OnMessage and close on Transport.Close.
func (t *Transport) WebSocketHandler() http.Handler {
	check := t.cfg.WebSocket.CheckOrigin
	if check == nil {
		check = func(*http.Request) bool { return true }
	}
	up := &websocket.Upgrader{
		Subprotocols:     []string{"sip"},
		CheckOrigin:      check,
		HandshakeTimeout: t.cfg.ReadTimeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(websocket.Subprotocols(r), "sip") {
			http.Error(w, "SIP over WebSocket requires the sip subprotocol (RFC 7118)", http.StatusBadRequest)
			return
		}
		release := func() {}
		if r.Context().Value(countedKey{}) == nil {
			if !t.acquireInbound() {
				http.Error(w, "too many connections", http.StatusServiceUnavailable)
				return
			}
			release = sync.OnceFunc(t.releaseInbound)
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			release()
			return // Upgrade has answered with an error status
		}
		proto := WS
		if r.TLS != nil {
			proto = WSS
		}
		nc := ws.UnderlyingConn()
		if r.Context().Value(countedKey{}) == nil {
			nc = &releaseConn{Conn: nc, release: release}
		}
		c := t.newConn(nc, ws, proto, true)
		t.mu.Lock()
		ok := t.register(c)
		t.mu.Unlock()
		if !ok {
			c.closeNow()
		}
	})
}

// acquireInbound counts one more inbound connection, or reports false
// when MaxConns are already open.
func (t *Transport) acquireInbound() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cfg.MaxConns > 0 && t.inbound >= t.cfg.MaxConns {
		return false
	}
	t.inbound++
	return true
}

func (t *Transport) releaseInbound() {
	t.mu.Lock()
	t.inbound--
	t.mu.Unlock()
}

// releaseConn releases its inbound count once when closed.
type releaseConn struct {
	net.Conn
	release func()
}

// CloseWrite half-closes the connection when the one underneath can.
func (c *releaseConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *releaseConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// limitListener accepts at most MaxConns inbound connections at a time
// and closes the excess at once.
type limitListener struct {
	net.Listener
	t *Transport
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.t.acquireInbound() {
			l.t.log.Warn("sip transport: too many connections, refusing one", "remote", nc.RemoteAddr(), "max", l.t.cfg.MaxConns)
			nc.Close()
			continue
		}
		return &releaseConn{Conn: nc, release: sync.OnceFunc(l.t.releaseInbound)}, nil
	}
}

// acceptLoop serves a TCP or TLS listener.
func (t *Transport) acceptLoop(l net.Listener, proto Proto) {
	for {
		nc, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary trouble such as EMFILE: wait a little, go on.
			t.log.Warn("sip transport: accept failed", "proto", proto, "err", err)
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if proto == TLS {
			t.wg.Go(func() { t.serveTLS(nc) })
			continue
		}
		t.addInbound(t.newConn(nc, nil, TCP, true))
	}
}

// serveTLS runs the server handshake within ReadTimeout, then serves.
func (t *Transport) serveTLS(nc net.Conn) {
	tc := tls.Server(nc, t.cfg.ServerTLSConfig)
	ctx, cancel := context.WithCancel(t.ctx)
	if t.cfg.ReadTimeout > 0 {
		ctx, cancel = context.WithTimeout(t.ctx, t.cfg.ReadTimeout)
	}
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		t.log.Debug("sip transport: TLS handshake failed", "remote", nc.RemoteAddr(), "err", err)
		nc.Close()
		return
	}
	t.addInbound(t.newConn(tc, nil, TLS, true))
}

func (t *Transport) addInbound(c *conn) {
	t.mu.Lock()
	ok := t.register(c)
	t.mu.Unlock()
	if !ok {
		c.closeNow()
	}
}
