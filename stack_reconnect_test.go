package sip_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/siptest/sipserver"
	"github.com/sipua/sip/transport"
)

// TestStackSharedConnection: the accounts of a Stack with a TCP or WS
// server use one connection; when the server drops it, the Stack
// reconnects once and every account registers again on the new
// connection, and can be reached there.
func TestStackSharedConnection(t *testing.T) {
	for _, proto := range []transport.Proto{transport.TCP, transport.WS} {
		t.Run(string(proto), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			users := map[string]string{"peer": "p"}
			for i := range 4 {
				users[fmt.Sprintf("u%d", i)] = fmt.Sprintf("pw%d", i)
			}
			srv, err := sipserver.New(sipserver.Options{Domain: "sipua.test", Users: users})
			require.NoError(t, err)
			defer srv.Close()
			_, err = srv.Listen(ctx, proto, "127.0.0.1:0")
			require.NoError(t, err)
			server := srv.WSURL()
			if proto == transport.TCP {
				server = "sip:" + srv.Addr(transport.TCP).String() + ";transport=tcp"
			}
			connects := make(chan string, 16)
			s, err := sip.NewStack(sip.StackOptions{Transport: sip.TransportOptions{
				Server: server, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
			}})
			require.NoError(t, err)
			require.NoError(t, s.Start(ctx))
			defer s.Stop(context.Background())
			got := make(chan string, 8)
			for i := range 4 {
				u := fmt.Sprintf("u%d", i)
				ua, err := s.NewUserAgent(sip.UserAgentOptions{
					URI: srv.AOR(u), AuthorizationPassword: users[u],
					Delegate: sip.UserAgentDelegate{
						OnConnect: func() { connects <- u },
						OnMessage: func(r *sip.IncomingRequest) { got <- u + ":" + string(r.Request.Body) },
					},
				})
				require.NoError(t, err)
				require.NoError(t, ua.Start(ctx))
				reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
				require.NoError(t, err)
				require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
			}
			first := srv.Bindings("u0")[0].Flow
			for i := range 4 {
				b := srv.Bindings(fmt.Sprintf("u%d", i))
				require.Len(t, b, 1)
				assert.Equal(t, first, b[0].Flow, "one connection for every account")
			}
			for range 4 {
				<-connects // OnConnect at Start: the connection was up
			}

			require.NoError(t, srv.Transport().CloseFlow(first))
			for range 4 {
				select {
				case <-connects:
				case <-ctx.Done():
					t.Fatal("not every account saw the new connection")
				}
			}
			// Over TCP the Contact's port changes with the connection (the
			// old binding stays until it expires), over WS it does not.
			var second transport.Flow
			onNew := func(u string) bool {
				for _, b := range srv.Bindings(u) {
					if b.Flow != first {
						second = b.Flow
						return true
					}
				}
				return false
			}
			require.Eventually(t, func() bool {
				for i := range 4 {
					if !onNew(fmt.Sprintf("u%d", i)) {
						return false
					}
				}
				return true
			}, 5*time.Second, 20*time.Millisecond, "every account registers again on the new connection:\n%s", srv.Ladder())
			for i := range 4 {
				assert.Equal(t, second, srv.Bindings(fmt.Sprintf("u%d", i))[0].Flow, "the most recent binding")
			}

			peer, err := sip.NewUserAgent(sip.UserAgentOptions{URI: srv.AOR("peer"), AuthorizationPassword: "p", Transport: sip.TransportOptions{Server: server}})
			require.NoError(t, err)
			require.NoError(t, peer.Start(ctx))
			defer peer.Stop(context.Background())
			require.NoError(t, sendMsg(peer, srv.AOR("u2"), "after"))
			assert.Equal(t, "u2:after", <-got)
		})
	}
}
