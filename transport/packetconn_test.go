package transport

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
)

// plainPacketConn hides the AddrPort methods of the conn it wraps, so the
// Transport uses only those of net.PacketConn.
type plainPacketConn struct{ net.PacketConn }

// TestUDPOverPacketConn runs UDP through Config.ListenPacket on a
// siptest.Network, in a synctest bubble: a listening socket, a socket
// opened to send (no Listen), the generic net.PacketConn path, a large
// request, and an Upstream to a UDP server; the link's delay shows on the
// virtual clock.
func TestUDPOverPacketConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		require.NoError(t, n.SetDefaultLink(siptest.Link{Delay: 20 * time.Millisecond}))
		ctx := context.Background()

		sin := newInbox()
		srv := New(sin.config(Config{ListenPacket: n.PacketListener("srv")}))
		defer srv.Close()
		srvAddr, err := srv.Listen(ctx, UDP, "192.0.2.2:5060")
		require.NoError(t, err)
		assert.Equal(t, netip.MustParseAddrPort("192.0.2.2:5060"), srvAddr)

		hookAlice := n.PacketListener("alice")
		for _, c := range []struct {
			name   string
			listen func(ctx context.Context, network, address string) (net.PacketConn, error)
			bind   string // Listen address; "": a socket opened to send
			local  string // the client's address as the server sees it
		}{
			{"listening", hookAlice, "192.0.2.1:5060", "192.0.2.1:5060"},
			{"ephemeral", n.PacketListener("bob"), "", "192.0.2.3:49152"},
			{"plain net.PacketConn", func(ctx context.Context, network, address string) (net.PacketConn, error) {
				pc, err := n.PacketListener("carol")(ctx, network, address)
				if err != nil {
					return nil, err
				}
				return plainPacketConn{pc}, nil
			}, "192.0.2.4:0", "192.0.2.4:49152"},
		} {
			func() { // t.Run is not allowed in a bubble
				n.ClearTrace()
				cin := newInbox()
				cli := New(cin.config(Config{ListenPacket: c.listen}))
				defer cli.Close()
				if c.bind != "" {
					_, err := cli.Listen(ctx, UDP, c.bind)
					require.NoError(t, err)
				}
				start := time.Now()
				f, err := cli.SendRequest(ctx, testRequest("OPTIONS"), Target{Proto: UDP, Addr: srvAddr})
				require.NoError(t, err)
				local := netip.MustParseAddrPort(c.local)
				assert.Equal(t, Flow{Proto: UDP, Local: local, Remote: srvAddr}, f, c.name)

				in := sin.msg(t)
				assert.Equal(t, 20*time.Millisecond, time.Since(start), c.name)
				require.NoError(t, in.Err)
				assert.Equal(t, Flow{Proto: UDP, Local: srvAddr, Remote: local}, in.Flow, c.name)
				req := in.Msg.(*message.Request)
				v, err := req.Header.TopVia()
				require.NoError(t, err)
				assert.Equal(t, local.Addr().String(), v.Host, "Via sent-by"+" ("+c.name+")")
				assert.Equal(t, int(local.Port()), v.Port, c.name)
				assert.Equal(t, "", v.Received())

				_, err = srv.SendResponse(ctx, message.NewResponse(req, 200, "", ""), in.Flow)
				require.NoError(t, err)
				rin := cin.msg(t)
				assert.Equal(t, 40*time.Millisecond, time.Since(start), c.name)
				assert.Equal(t, 200, rin.Msg.(*message.Response).StatusCode)
				assert.Equal(t, f, rin.Flow, c.name)
				from := n.Names()[local]
				assert.Equal(t, []string{from + "→srv OPTIONS", "srv→" + from + " 200"}, n.Flow(), c.name)
			}()
		}

		// RFC 3261 §18.1.1's switch to TCP for a large request is off
		// when UDP runs on the hook and TCP would not: no real dial.
		big := testRequest("MESSAGE")
		big.Body = []byte(strings.Repeat("x", 1400))
		cli := New(Config{ListenPacket: n.PacketListener("erin")})
		defer cli.Close()
		f, err := cli.SendRequest(ctx, big, Target{Proto: UDP, Addr: srvAddr})
		require.NoError(t, err)
		assert.Equal(t, UDP, f.Proto)
		assert.Equal(t, UDP, sin.msg(t).Flow.Proto)
		// With a DialContext too, the switch is tried.
		var dials []string
		cli2 := New(Config{ListenPacket: n.PacketListener("frank"), DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			dials = append(dials, network+" "+addr)
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}})
		defer cli2.Close()
		f, err = cli2.SendRequest(ctx, big, Target{Proto: UDP, Addr: srvAddr})
		require.NoError(t, err)
		assert.Equal(t, UDP, f.Proto)
		assert.Equal(t, []string{"tcp 192.0.2.2:5060"}, dials)
		sin.msg(t)

		// An Upstream to a UDP server opens its socket through the hook
		// too.
		cli3 := New(Config{ListenPacket: n.PacketListener("dave")})
		defer cli3.Close()
		u, err := cli3.Connect(UpstreamConfig{Servers: []Server{{Addr: "sip:192.0.2.2:5060"}}})
		require.NoError(t, err)
		f, err = u.WaitConnected(ctx)
		require.NoError(t, err)
		assert.Equal(t, Flow{Proto: UDP, Local: netip.MustParseAddrPort("192.0.2.7:49152"), Remote: srvAddr}, f)
		_, err = u.SendRequest(ctx, testRequest("MESSAGE"))
		require.NoError(t, err)
		assert.Equal(t, Flow{Proto: UDP, Local: srvAddr, Remote: f.Local}, sin.msg(t).Flow)
		require.NoError(t, u.Close())

		// Close ends the readers (blocked in ReadFrom) and frees the
		// addresses.
		require.NoError(t, srv.Close())
		_, err = n.Listen("again", srvAddr)
		require.NoError(t, err)
	})
}
