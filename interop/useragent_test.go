package interop

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/transport"
)

// server returns the TransportOptions.Server that reaches k over proto.
func server(k *Kamailio, proto transport.Proto) string {
	switch proto {
	case transport.UDP:
		return fmt.Sprintf("sip:127.0.0.1:%d", k.SIPPort)
	case transport.TCP:
		return fmt.Sprintf("sip:127.0.0.1:%d;transport=tcp", k.SIPPort)
	case transport.TLS:
		return fmt.Sprintf("sip:127.0.0.1:%d;transport=tls", k.TLSPort)
	case transport.WS:
		return k.WSURL()
	}
	return k.WSSURL()
}

func startUser(t *testing.T, k *Kamailio, user, password string, proto transport.Proto, d sip.UserAgentDelegate) *sip.UserAgent {
	t.Helper()
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:" + user + "@" + Domain,
		AuthorizationPassword: password,
		Transport: sip.TransportOptions{
			Server:    server(k, proto),
			TLSConfig: &tls.Config{RootCAs: k.CertPool, ServerName: "127.0.0.1"},
		},
		Delegate: d,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx), "start over %s", proto)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ua.Stop(ctx)
	})
	return ua
}

// TestUserAgentRegisterAndMessage: our UserAgent registers with Kamailio
// over each transport with digest authentication, receives a MESSAGE
// relayed by Kamailio from another of our UserAgents (which answers the
// 407 for MESSAGE), and unregisters.
func TestUserAgentRegisterAndMessage(t *testing.T) {
	k := StartKamailio(t)
	for _, proto := range []transport.Proto{transport.UDP, transport.TCP, transport.TLS, transport.WS, transport.WSS} {
		t.Run(string(proto), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := make(chan string, 1)
			bob := startUser(t, k, "bob", Users["bob"], proto, sip.UserAgentDelegate{OnMessage: func(m *sip.IncomingRequest) {
				got <- string(m.Request.Body)
			}})
			reg, err := sip.NewRegisterer(bob, sip.RegistererOptions{Expires: 300})
			require.NoError(t, err)
			require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}), "REGISTER over %s\n%s", proto, k.Log())
			assert.Equal(t, sip.Registered, reg.State())
			require.NotEmpty(t, reg.Bindings())

			alice := startUser(t, k, "alice", Users["alice"], transport.UDP, sip.UserAgentDelegate{})
			m, err := sip.NewMessager(alice, "sip:bob@"+Domain, []byte("hello over "+string(proto)), "text/plain", sip.RequestOptions{})
			require.NoError(t, err)
			require.NoError(t, m.Message(ctx), "MESSAGE to bob over %s\n%s", proto, k.Log())
			select {
			case body := <-got:
				assert.Equal(t, "hello over "+string(proto), body)
			case <-ctx.Done():
				t.Fatal("bob did not get the MESSAGE")
			}

			require.NoError(t, reg.Unregister(ctx, sip.UnregisterOptions{}))
			assert.Equal(t, sip.Unregistered, reg.State())
			// Unregistered: Kamailio has nobody to relay to now.
			err = m.Message(ctx)
			var re *sip.ResponseError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, 480, re.StatusCode, "Kamailio: a known user with no binding")
		})
	}
}

// TestUserAgentWrongPassword: refused credentials end in ErrAuthFailed
// after one retry.
func TestUserAgentWrongPassword(t *testing.T) {
	k := StartKamailio(t)
	ua := startUser(t, k, "carol", "not-her-password", transport.TCP, sip.UserAgentDelegate{})
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = reg.Register(ctx, sip.RegisterOptions{})
	require.ErrorIs(t, err, sip.ErrAuthFailed)
	assert.Equal(t, sip.Unregistered, reg.State())
}

// TestUserAgentReregistersAfterRestart: Kamailio goes away and comes back
// (losing its registrations); our UserAgent notices the lost connection,
// reconnects with its back-off and registers again by itself, within 5 s
// of Kamailio's return — proven by a MESSAGE that reaches it.
func TestUserAgentReregistersAfterRestart(t *testing.T) {
	k := StartKamailio(t)
	for _, proto := range []transport.Proto{transport.WS, transport.TCP} {
		t.Run(string(proto), func(t *testing.T) {
			got := make(chan string, 4)
			disconnected := make(chan error, 4)
			connected := make(chan struct{}, 4)
			ua, err := sip.NewUserAgent(sip.UserAgentOptions{
				URI:                   "sip:bob@" + Domain,
				AuthorizationPassword: Users["bob"],
				Transport: sip.TransportOptions{
					Server:       server(k, proto),
					ReconnectMin: 100 * time.Millisecond, ReconnectMax: 500 * time.Millisecond,
				},
				Delegate: sip.UserAgentDelegate{
					OnMessage:    func(m *sip.IncomingRequest) { got <- string(m.Request.Body) },
					OnConnect:    func() { connected <- struct{}{} },
					OnDisconnect: func(err error) { disconnected <- err },
				},
			})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			require.NoError(t, ua.Start(ctx))
			defer ua.Stop(context.Background())
			<-connected
			reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
			require.NoError(t, err)
			require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))

			k.Stop(t)
			select {
			case <-disconnected:
			case <-ctx.Done():
				t.Fatal("no OnDisconnect")
			}
			k.Start(t)
			back := time.Now()
			select {
			case <-connected:
			case <-ctx.Done():
				t.Fatal("no OnConnect after the restart")
			}
			alice := startUser(t, k, "alice", Users["alice"], transport.UDP, sip.UserAgentDelegate{})
			require.Eventually(t, func() bool {
				m, _ := sip.NewMessager(alice, "sip:bob@"+Domain, []byte("are you back?"), "text/plain", sip.RequestOptions{})
				return m.Message(ctx) == nil
			}, 5*time.Second, 100*time.Millisecond, "bob is not registered again\n%s", k.Log())
			assert.Less(t, time.Since(back), 5*time.Second)
			assert.Equal(t, "are you back?", <-got)
			assert.Equal(t, sip.Registered, reg.State())
			t.Logf("%s: registered again and reachable %v after Kamailio was back", proto, time.Since(back).Round(time.Millisecond))
		})
	}
}
