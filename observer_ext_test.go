package sip_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/siptest/sipserver"
	"github.com/sipua/sip/transport"
)

// TestObserverConnectionAndRegistration: the Observer sees the server
// connection come up, the registration, the connection lost when the
// proxy closes it, the registration lost with it, the reconnection
// (Reconnect set) and the registration renewed on it.
func TestObserverConnectionAndRegistration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := sipserver.New(sipserver.Options{Domain: "sipua.test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	_, err = srv.Listen(ctx, transport.TCP, "127.0.0.1:0")
	require.NoError(t, err)

	var mu sync.Mutex
	var events []string
	add := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, s)
	}
	snapshot := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(events)
	}
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI: srv.AOR("alice"),
		Transport: sip.TransportOptions{Server: "sip:" + srv.Addr(transport.TCP).String() + ";transport=tcp",
			ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond},
		MediaFactory: sip.NoMedia,
		Observer: &sip.Observer{
			Connection: func(e sip.ConnectionEvent) {
				switch {
				case e.Up && e.Reconnect:
					add("reconnected")
				case e.Up:
					add("connected")
				default:
					add("disconnected")
				}
			},
			Registration: func(e sip.RegistrationEvent) {
				assert.Equal(t, srv.AOR("alice"), e.AOR)
				add(e.State.String())
			},
		},
	})
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() { _ = ua.Stop(context.Background()) })
	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
	require.Eventually(t, func() bool { return slices.Equal(snapshot(), []string{"connected", "Registered"}) },
		5*time.Second, 10*time.Millisecond, "%v", snapshot())

	bs := srv.Bindings("alice")
	require.Len(t, bs, 1)
	require.NoError(t, srv.Transport().CloseFlow(bs[0].Flow))
	// The Registerer is Unregistered while the connection is down, and
	// registers again on the new one.
	want := []string{"connected", "Registered", "disconnected", "Unregistered", "reconnected", "Registered"}
	require.Eventually(t, func() bool { return slices.Equal(snapshot(), want) }, 5*time.Second, 10*time.Millisecond)
}
