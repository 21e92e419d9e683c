package transport

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipua/sip/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pair returns a server Transport listening on proto at 127.0.0.1 and a
// client Transport, closed at the end of the test.
func pair(t *testing.T, proto Proto, srvCfg, cliCfg Config) (srv, cli *Transport, sin, cin *inbox, addr netip.AddrPort) {
	t.Helper()
	sin, cin = newInbox(), newInbox()
	srvCfg.ServerTLSConfig = serverTLS(t)
	srv = New(sin.config(srvCfg))
	if cliCfg.TLSConfig == nil {
		cliCfg.TLSConfig = clientTLS(t)
	}
	cli = New(cin.config(cliCfg))
	t.Cleanup(func() { cli.Close(); srv.Close() })
	var err error
	addr, err = srv.Listen(ctxT(t), proto, "127.0.0.1:0")
	require.NoError(t, err)
	if proto == UDP {
		_, err = cli.Listen(ctxT(t), UDP, "127.0.0.1:0")
		require.NoError(t, err)
	}
	return
}

// TestRequestResponse sends a request and its response over each
// transport on real loopback sockets, and checks Via handling, flows and
// connection reuse.
func TestRequestResponse(t *testing.T) {
	for _, proto := range []Proto{UDP, TCP, TLS, WS, WSS} {
		t.Run(string(proto), func(t *testing.T) {
			srv, cli, sin, cin, addr := pair(t, proto, Config{}, Config{})
			target := Target{Proto: proto, Addr: addr}
			if proto.Secure() {
				target.Host = "localhost"
			}
			req := testRequest("OPTIONS")
			f1, err := cli.SendRequest(ctxT(t), req, target)
			require.NoError(t, err)
			assert.Equal(t, proto, f1.Proto)
			assert.Equal(t, addr, f1.Remote)

			in := sin.msg(t)
			require.NoError(t, in.Err)
			got := in.Msg.(*message.Request)
			require.NoError(t, got.Validate())
			assert.Equal(t, "OPTIONS", got.Method)
			v, err := got.Header.TopVia()
			require.NoError(t, err)
			assert.Equal(t, string(proto), v.Transport)
			assert.Equal(t, f1.Local.Port(), in.Flow.Remote.Port(), "flow source is the client's socket")
			rport, ok := v.RPort()
			assert.True(t, ok)
			assert.Equal(t, int(in.Flow.Remote.Port()), rport, "rport filled (RFC 3581)")
			if proto.WebSocket() {
				assert.True(t, strings.HasSuffix(v.Host, ".invalid"), "RFC 7118 Via host %q", v.Host)
				assert.Equal(t, "127.0.0.1", v.Received())
			} else {
				assert.Equal(t, "127.0.0.1", v.Host)
				assert.Equal(t, "", v.Received(), "no received when sent-by matches")
			}

			resp := message.NewResponse(got, 200, "", "")
			_, err = srv.SendResponse(ctxT(t), resp, in.Flow)
			require.NoError(t, err)
			rin := cin.msg(t)
			require.NoError(t, rin.Err)
			r := rin.Msg.(*message.Response)
			assert.Equal(t, 200, r.StatusCode)
			assert.Equal(t, f1, rin.Flow, "response came back on the request's flow")

			// A second request reuses the connection.
			f2, err := cli.SendRequest(ctxT(t), testRequest("OPTIONS"), target)
			require.NoError(t, err)
			assert.Equal(t, f1, f2)
			in2 := sin.msg(t)
			assert.Equal(t, in.Flow, in2.Flow)

			if proto.Stream() {
				e := cin.conn(t, ConnOpen)
				assert.Equal(t, f1, e.Flow)
				assert.False(t, e.Inbound)
				se := sin.conn(t, ConnOpen)
				assert.True(t, se.Inbound)
				// Closing the client's connection is seen on both sides.
				require.NoError(t, cli.CloseFlow(f1))
				e = cin.conn(t, ConnClosed)
				assert.ErrorIs(t, e.Err, ErrClosed)
				se = sin.conn(t, ConnClosed)
				assert.ErrorIs(t, se.Err, io.EOF)
				// Sending on the gone flow fails; sending to the address
				// opens a new connection.
				_, err = cli.SendRequest(ctxT(t), testRequest("OPTIONS"), f1.Target())
				assert.ErrorIs(t, err, ErrNoConnection)
				f3, err := cli.SendRequest(ctxT(t), testRequest("OPTIONS"), target)
				require.NoError(t, err)
				assert.NotEqual(t, f1.ID, f3.ID)
				sin.msg(t)
			}
		})
	}
}

// TestUDPResponseToRport checks that a UDP response goes to received and
// rport of the top Via, not to the sent-by address.
func TestUDPResponseToRport(t *testing.T) {
	srv, _, sin, _, addr := pair(t, UDP, Config{}, Config{})
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	require.NoError(t, err)
	defer pc.Close()
	raw := "OPTIONS sip:bob@sipua.test SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.7:5099;branch=z9hG4bKabc;rport\r\n" +
		"From: <sip:alice@sipua.test>;tag=1\r\nTo: <sip:bob@sipua.test>\r\n" +
		"Call-ID: x1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	_, err = pc.WriteToUDPAddrPort([]byte(raw), addr)
	require.NoError(t, err)
	in := sin.msg(t)
	req := in.Msg.(*message.Request)
	v, _ := req.Header.TopVia()
	assert.Equal(t, "127.0.0.1", v.Received())
	p, _ := v.RPort()
	assert.Equal(t, pc.LocalAddr().(*net.UDPAddr).Port, p)

	_, err = srv.SendResponse(ctxT(t), message.NewResponse(req, 200, "", ""), Flow{})
	require.NoError(t, err)
	buf := make([]byte, 2048)
	require.NoError(t, pc.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, _, err := pc.ReadFromUDPAddrPort(buf)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(buf[:n]), "SIP/2.0 200 OK\r\n"))
}

// TestUDPSizeRule checks RFC 3261 §18.1.1: a large request goes over TCP
// when the peer listens on TCP, and falls back to UDP when it does not.
func TestUDPSizeRule(t *testing.T) {
	sin := newInbox()
	srv := New(sin.config(Config{}))
	defer srv.Close()
	udpAddr, err := srv.Listen(ctxT(t), UDP, "127.0.0.1:0")
	require.NoError(t, err)
	cli := New(Config{})
	defer cli.Close()

	big := testRequest("MESSAGE")
	big.Body = []byte(strings.Repeat("x", 1400))
	big.Header.Set("Content-Type", "text/plain")

	// No TCP listener on that port: refused, so UDP is used.
	f, err := cli.SendRequest(ctxT(t), big, Target{Proto: UDP, Addr: udpAddr})
	require.NoError(t, err)
	assert.Equal(t, UDP, f.Proto)
	assert.Equal(t, UDP, sin.msg(t).Flow.Proto)

	// TCP on the same port: the request switches to TCP.
	_, err = srv.Listen(ctxT(t), TCP, udpAddr.String())
	require.NoError(t, err)
	f, err = cli.SendRequest(ctxT(t), big, Target{Proto: UDP, Addr: udpAddr})
	require.NoError(t, err)
	assert.Equal(t, TCP, f.Proto)
	in := sin.msg(t)
	assert.Equal(t, TCP, in.Flow.Proto)
	v, _ := in.Msg.Headers().TopVia()
	assert.Equal(t, "TCP", v.Transport)

	// A small request stays on UDP; the rule can be switched off.
	f, err = cli.SendRequest(ctxT(t), testRequest("OPTIONS"), Target{Proto: UDP, Addr: udpAddr})
	require.NoError(t, err)
	assert.Equal(t, UDP, f.Proto)
	sin.msg(t)
	off := New(Config{UDP: UDPConfig{MaxRequestSize: -1}})
	defer off.Close()
	f, err = off.SendRequest(ctxT(t), big, Target{Proto: UDP, Addr: udpAddr})
	require.NoError(t, err)
	assert.Equal(t, UDP, f.Proto)
	sin.msg(t)
}

// rawDial opens a plain TCP connection to addr.
func rawDial(t *testing.T, addr netip.AddrPort) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestStreamFraming checks keepalive answers and that malformed framing
// closes the connection with a clear error.
func TestStreamFraming(t *testing.T) {
	sin := newInbox()
	srv := New(sin.config(Config{}))
	defer srv.Close()
	addr, err := srv.Listen(ctxT(t), TCP, "127.0.0.1:0")
	require.NoError(t, err)

	t.Run("ping answered", func(t *testing.T) {
		c := rawDial(t, addr)
		_, err := c.Write([]byte("\r\n\r\n"))
		require.NoError(t, err)
		buf := make([]byte, 8)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, err := c.Read(buf)
		require.NoError(t, err)
		assert.Equal(t, "\r\n", string(buf[:n]))
	})
	t.Run("two messages in one segment, one split", func(t *testing.T) {
		c := rawDial(t, addr)
		m := testRequest("OPTIONS").String()
		_, err := c.Write([]byte(m + m + m[:10]))
		require.NoError(t, err)
		sin.msg(t)
		sin.msg(t)
		_, err = c.Write([]byte(m[10:]))
		require.NoError(t, err)
		in := sin.msg(t)
		require.NoError(t, in.Err)
	})
	t.Run("malformed inside, framed: delivered with error, connection kept", func(t *testing.T) {
		c := rawDial(t, addr)
		_, err := c.Write([]byte("FOO\r\nContent-Length: 0\r\n\r\n"))
		require.NoError(t, err)
		in := sin.msg(t)
		assert.ErrorIs(t, in.Err, message.ErrMalformed)
		_, err = c.Write([]byte(testRequest("OPTIONS").String()))
		require.NoError(t, err)
		require.NoError(t, sin.msg(t).Err)
	})
	for _, tc := range []struct {
		name, data string
		want       error
	}{
		{"bad Content-Length", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n", message.ErrContentLength},
		{"body over the limit", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 9999999\r\n\r\n", ErrMessageTooLarge},
		{"no end of headers", "OPTIONS sip:a@b SIP/2.0\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("y", 1000)+"\r\n", 70), ErrMessageTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawDial(t, addr)
			_, _ = c.Write([]byte(tc.data))
			e := sin.connOf(t, ConnClosed, c.LocalAddr())
			assert.ErrorIs(t, e.Err, tc.want)
			require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, err := bufio.NewReader(c).ReadByte()
			assert.Error(t, err, "server closed the connection")
		})
	}
}

// TestMaxConns checks the connection cap of a server side.
func TestMaxConns(t *testing.T) {
	sin := newInbox()
	srv := New(sin.config(Config{MaxConns: 2}))
	defer srv.Close()
	addr, err := srv.Listen(ctxT(t), TCP, "127.0.0.1:0")
	require.NoError(t, err)
	c1 := rawDial(t, addr)
	sin.conn(t, ConnOpen)
	rawDial(t, addr)
	sin.conn(t, ConnOpen)
	c3 := rawDial(t, addr)
	require.NoError(t, c3.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c3.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "third connection closed at once")
	// When one closes, a new one is accepted.
	c1.Close()
	sin.connOf(t, ConnClosed, c1.LocalAddr())
	c4 := rawDial(t, addr)
	_, err = c4.Write([]byte(testRequest("OPTIONS").String()))
	require.NoError(t, err)
	require.NoError(t, sin.msg(t).Err)
}

// TestTLSVerification checks that certificates are verified by default.
func TestTLSVerification(t *testing.T) {
	for _, proto := range []Proto{TLS, WSS} {
		t.Run(string(proto), func(t *testing.T) {
			srv := New(Config{ServerTLSConfig: serverTLS(t)})
			defer srv.Close()
			addr, err := srv.Listen(ctxT(t), proto, "127.0.0.1:0")
			require.NoError(t, err)
			target := Target{Proto: proto, Addr: addr}

			def := New(Config{})
			defer def.Close()
			_, err = def.Send(ctxT(t), testRequest("OPTIONS"), target)
			var ue x509.UnknownAuthorityError
			assert.ErrorAs(t, err, &ue, "self-signed certificate refused by default")

			wrongName := New(Config{TLSConfig: clientTLS(t)})
			defer wrongName.Close()
			_, err = wrongName.Send(ctxT(t), testRequest("OPTIONS"), Target{Proto: proto, Addr: addr, Host: "example.com"})
			var he x509.HostnameError
			assert.ErrorAs(t, err, &he, "name checked")

			insecure := New(Config{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
			defer insecure.Close()
			_, err = insecure.Send(ctxT(t), testRequest("OPTIONS"), target)
			assert.NoError(t, err)
		})
	}
}

func TestListenErrors(t *testing.T) {
	tr := New(Config{})
	_, err := tr.Listen(ctxT(t), TLS, "127.0.0.1:0")
	assert.ErrorIs(t, err, ErrUnsupported, "TLS without a certificate")
	_, err = tr.Listen(ctxT(t), "SCTP", "127.0.0.1:0")
	assert.ErrorIs(t, err, ErrUnsupported)
	_, err = tr.Send(ctxT(t), testRequest("OPTIONS"), Target{Proto: "SCTP", Addr: netip.MustParseAddrPort("127.0.0.1:1")})
	assert.ErrorIs(t, err, ErrUnsupported)
	_, err = tr.SendRequest(ctxT(t), testRequest("OPTIONS"))
	assert.ErrorIs(t, err, ErrResolve)
	require.NoError(t, tr.Close())
	assert.ErrorIs(t, tr.Close(), ErrClosed)
	_, err = tr.Listen(ctxT(t), UDP, "127.0.0.1:0")
	assert.ErrorIs(t, err, ErrClosed)
	_, err = tr.Send(ctxT(t), testRequest("OPTIONS"), Target{Proto: TCP, Addr: netip.MustParseAddrPort("127.0.0.1:1")})
	assert.ErrorIs(t, err, ErrClosed)
	assert.True(t, errors.Is(tr.CloseFlow(Flow{ID: 99}), ErrNoConnection))
}
