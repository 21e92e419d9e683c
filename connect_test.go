package sip

import (
	"context"
	"crypto/tls"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/transport"
)

// disconnects records OnDisconnect.
type disconnects struct {
	mu   sync.Mutex
	errs []error
}

func (d *disconnects) add(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.errs = append(d.errs, err)
}

func (d *disconnects) get() []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]error(nil), d.errs...)
}

// TestStartSaysWhy: a first connection that fails makes Start return the
// connection error (errors.As finds it), and OnDisconnect reports it; a
// certificate that does not verify is reported at once, not retried as
// an outage until the caller's deadline (issue 17, finding 7).
func TestStartSaysWhy(t *testing.T) {
	cert, _ := selfSigned(t)
	srv := transport.New(transport.Config{ServerTLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	defer srv.Close()
	wssAddr, err := srv.Listen(ctx5(t), transport.WSS, "127.0.0.1:0")
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := l.Addr().String()
	l.Close()

	start := func(t *testing.T, server string, timeout time.Duration) (time.Duration, *disconnects, error) {
		d := &disconnects{}
		ua, err := NewUserAgent(UserAgentOptions{URI: "sip:bob@127.0.0.1", MediaFactory: NoMedia,
			Transport: TransportOptions{Server: server, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond},
			Delegate:  UserAgentDelegate{OnDisconnect: d.add}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, ua.Stop(ctx5(t))) })
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		t0 := time.Now()
		err = ua.Start(ctx)
		return time.Since(t0), d, err
	}

	t.Run("untrusted certificate", func(t *testing.T) {
		took, d, err := start(t, "wss://"+wssAddr.String(), 10*time.Second)
		t.Logf("Start: %v after %v", err, took)
		require.ErrorIs(t, err, ErrTransportClosed)
		var cv *tls.CertificateVerificationError
		require.ErrorAs(t, err, &cv, "Start says the certificate did not verify")
		assert.Less(t, took, 2*time.Second, "reported at once, not after the caller's timeout")
		require.Eventually(t, func() bool { return len(d.get()) == 1 }, 2*time.Second, 5*time.Millisecond, "OnDisconnect called")
		assert.ErrorAs(t, d.get()[0], &cv)
		time.Sleep(300 * time.Millisecond)
		assert.Len(t, d.get(), 1, "not retried: no new attempts, no new reports")
	})
	t.Run("refused port", func(t *testing.T) {
		took, d, err := start(t, "sip:"+refused+";transport=tcp", 500*time.Millisecond)
		t.Logf("Start: %v after %v", err, took)
		require.ErrorIs(t, err, ErrTransportClosed)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var oe *net.OpError
		require.ErrorAs(t, err, &oe, "Start says the dial failed")
		assert.Equal(t, "dial", oe.Op)
		require.Eventually(t, func() bool { return len(d.get()) >= 1 }, time.Second, 5*time.Millisecond, "OnDisconnect called")
		assert.ErrorAs(t, d.get()[0], &oe)
		assert.Len(t, d.get(), 1, "one outage, one report, however many attempts")
	})
}

// TestRegisterToDeadUDPServer: over UDP, Start cannot tell that nobody
// listens; Register to a server that is down fails by itself with an
// error that says why and names the destination, well before a long
// caller deadline: on Linux from the ICMP port unreachable (ECONNREFUSED,
// RFC 3261 §18.4) once the server still refuses the third transmission
// (3·T1, 1.5 s), rather than at the first (a server restarting gets the
// retransmissions); elsewhere at Timer F.
func TestRegisterToDeadUDPServer(t *testing.T) {
	for _, tc := range []struct {
		name string
		t1   time.Duration
		icmp bool
	}{
		{"icmp", 0, runtime.GOOS == "linux"},
		{"timer F", 20 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			require.NoError(t, err)
			dead := pc.LocalAddr().String()
			if tc.icmp {
				pc.Close() // the kernel answers port unreachable
			} else {
				defer pc.Close() // a server that reads and never answers
			}
			ua, err := NewUserAgent(UserAgentOptions{URI: "sip:bob@127.0.0.1", MediaFactory: NoMedia,
				Transport: TransportOptions{Server: "sip:" + dead},
				Timers:    Timers{T1: tc.t1}})
			require.NoError(t, err)
			require.NoError(t, ua.Start(ctx5(t)))
			t.Cleanup(func() { require.NoError(t, ua.Stop(ctx5(t))) })
			reg, err := NewRegisterer(ua, RegistererOptions{})
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			t0 := time.Now()
			err = reg.Register(ctx, RegisterOptions{})
			took := time.Since(t0)
			t.Logf("Register: %v after %v", err, took)
			require.Error(t, err)
			assert.Contains(t, err.Error(), dead, "the error names the destination")
			if tc.icmp {
				require.ErrorIs(t, err, ErrTransportClosed)
				require.ErrorIs(t, err, syscall.ECONNREFUSED)
				var oe *net.OpError
				require.ErrorAs(t, err, &oe)
				assert.GreaterOrEqual(t, took, time.Second, "the first refusals are retried")
				assert.Less(t, took, 3400*time.Millisecond, "not at Timer F (32 s)")
				return
			}
			require.ErrorIs(t, err, ErrTimeout)
			assert.Less(t, took, 5*time.Second)
		})
	}
}

// TestReconnectWaitsThenRegister: Reconnect returns once the new
// connection is up (not before the old one is even dropped), and Register
// right after it works at once, as SIP.js users write
// reconnect().then(() => register()) (issue 17, finding 6).
func TestReconnectWaitsThenRegister(t *testing.T) {
	registrar, err := NewUserAgent(UserAgentOptions{URI: "sip:registrar@127.0.0.1", MediaFactory: NoMedia,
		Transport: TransportOptions{Listen: []string{"tcp://127.0.0.1:0"}},
		Delegate: UserAgentDelegate{OnRequest: func(r *IncomingRequest) {
			resp := r.NewResponse(200, "")
			resp.Header.Add("Expires", r.Request.Header.Get("Expires"))
			_ = r.Respond(context.Background(), resp)
		}}})
	require.NoError(t, err)
	require.NoError(t, registrar.Start(ctx5(t)))
	t.Cleanup(func() { require.NoError(t, registrar.Stop(ctx5(t))) })

	ua, err := NewUserAgent(UserAgentOptions{URI: "sip:bob@127.0.0.1", MediaFactory: NoMedia,
		Transport: TransportOptions{Server: "sip:" + registrar.listenAddrs[0].addr.String() + ";transport=tcp"}})
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx5(t)))
	t.Cleanup(func() { require.NoError(t, ua.Stop(ctx5(t))) })
	reg, err := NewRegisterer(ua, RegistererOptions{})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx5(t), RegisterOptions{}))
	before, ok := ua.up.Flow()
	require.True(t, ok)

	for i := range 3 {
		t0 := time.Now()
		require.NoError(t, ua.Reconnect(ctx5(t)))
		after, ok := ua.up.Flow()
		require.True(t, ok, "connected when Reconnect returns")
		assert.NotEqual(t, before.ID, after.ID, "Reconnect returned before the new connection")
		before = after

		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := reg.Register(ctx, RegisterOptions{})
		cancel()
		t.Logf("round %d: Reconnect and Register took %v", i, time.Since(t0))
		require.NoError(t, err, "Register right after Reconnect")
		assert.Equal(t, Registered, reg.State())
	}
}

// TestUDPPeerStartingLate: a UDP peer that refuses the first
// transmission (ICMP port unreachable: it is still starting) gets the
// retransmission; the request does not fail on the first refusal.
func TestUDPPeerStartingLate(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	port := pc.LocalAddr().String()
	pc.Close()
	alice := startUA(t, "alice", UserAgentDelegate{})
	done := make(chan error, 1)
	go func() {
		_, err := alice.Options(ctx5(t), "sip:bob@"+port, RequestOptions{})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // refused once, at least
	bob, err := NewUserAgent(UserAgentOptions{URI: "sip:bob@127.0.0.1", MediaFactory: NoMedia,
		Transport: TransportOptions{Listen: []string{"udp://" + port}}})
	require.NoError(t, err)
	require.NoError(t, bob.Start(ctx5(t)))
	t.Cleanup(func() { require.NoError(t, bob.Stop(ctx5(t))) })
	require.NoError(t, <-done, "answered after the peer came up")
}
