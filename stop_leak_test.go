package sip_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/siptest/sipserver"
)

// openFDs lists this process's open file descriptors with what they
// point at (socket:[inode], a path …).
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	fds := map[string]string{}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own fd, closed by now
		}
		fds[e.Name()] = target
	}
	return fds
}

// newFDs returns the descriptors open now that were not in before.
func newFDs(t *testing.T, before map[string]string) []string {
	var out []string
	for fd, target := range openFDs(t) {
		if before[fd] != target {
			out = append(out, fd+" -> "+target)
		}
	}
	sort.Strings(out)
	return out
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestStopLeavesNothingOpen: a UserAgent listening on UDP, TCP and
// WebSocket registers, makes a call with plain-RTP media, takes a MESSAGE
// over TCP and one over WebSocket, and stops: afterwards no goroutine and
// no file descriptor (socket, file) it opened is left.
func TestStopLeavesNothingOpen(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc/self/fd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The peers live through the whole test: the registrar, and bob, who
	// answers calls and sends alice MESSAGEs.
	srv, err := sipserver.New(sipserver.Options{Domain: "sipua.test", Listen: []string{"udp://127.0.0.1:0"}})
	require.NoError(t, err)
	require.NoError(t, srv.Start(ctx))
	defer srv.Close()
	media := rtp.NewFactory(rtp.Config{IP: net.IPv4(127, 0, 0, 1)})
	bobPort := freePort(t)
	bob, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:          fmt.Sprintf("sip:bob@127.0.0.1:%d", bobPort),
		Transport:    sip.TransportOptions{Listen: []string{fmt.Sprintf("udp://127.0.0.1:%d", bobPort)}},
		MediaFactory: media,
		Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			assert.NoError(t, inv.Accept(ctx, sip.AcceptOptions{}))
		}},
	})
	require.NoError(t, err)
	require.NoError(t, bob.Start(ctx))
	defer func() { assert.NoError(t, bob.Stop(ctx)) }()
	// bob's first send over TCP and WS starts long-lived parts of the
	// runtime (DNS config, HTTP machinery): warm them up before counting.
	_, _ = bob.Options(ctx, fmt.Sprintf("sip:nobody@127.0.0.1:%d;transport=tcp", freePort(t)), sip.RequestOptions{})

	ignore := goleak.IgnoreCurrent()
	before := openFDs(t)

	udpPort, tcpPort, wsPort := freePort(t), freePort(t), freePort(t)
	got := make(chan string, 4)
	alice, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI: "sip:alice@sipua.test",
		Transport: sip.TransportOptions{Listen: []string{
			fmt.Sprintf("udp://127.0.0.1:%d", udpPort),
			fmt.Sprintf("tcp://127.0.0.1:%d", tcpPort),
			fmt.Sprintf("ws://127.0.0.1:%d", wsPort),
		}},
		MediaFactory: media,
		Delegate: sip.UserAgentDelegate{OnMessage: func(r *sip.IncomingRequest) {
			got <- string(r.Request.Body)
			assert.NoError(t, r.Accept(context.Background()))
		}},
	})
	require.NoError(t, err)
	require.NoError(t, alice.Start(ctx))

	reg, err := sip.NewRegisterer(alice, sip.RegistererOptions{Registrar: srv.URI("udp").String(), Expires: 300})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}))
	require.Len(t, srv.Bindings("alice"), 1)

	call, err := sip.NewInviter(alice, fmt.Sprintf("sip:bob@127.0.0.1:%d", bobPort), sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{}))
	time.Sleep(100 * time.Millisecond) // some RTP both ways
	require.NoError(t, call.Bye(ctx))

	for _, target := range []string{
		fmt.Sprintf("sip:alice@127.0.0.1:%d;transport=tcp", tcpPort),
		fmt.Sprintf("sip:alice@127.0.0.1:%d;transport=ws", wsPort),
	} {
		m, err := sip.NewMessager(bob, target, []byte(target), "text/plain", sip.RequestOptions{})
		require.NoError(t, err)
		require.NoError(t, m.Message(ctx), target)
		assert.Equal(t, target, <-got)
	}

	require.NoError(t, alice.Stop(ctx))
	assert.Empty(t, srv.Bindings("alice"), "Stop unregisters")
	goleak.VerifyNone(t, ignore)
	// bob notices the closed TCP and WebSocket connections on his side a
	// moment later; wait for it with a deadline.
	deadline := time.Now().Add(5 * time.Second)
	var left []string
	for {
		left = newFDs(t, before)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	assert.Empty(t, left, "descriptors left open:\n%s", strings.Join(left, "\n"))
}

// TestStopAfterFailedStart: a UserAgent whose Start failed (a Listen
// address it cannot bind) stops at once and leaves nothing running; Stop
// used to wait for an event loop that never ran.
func TestStopAfterFailedStart(t *testing.T) {
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{URI: "sip:alice@127.0.0.1", MediaFactory: sip.NoMedia,
		Transport: sip.TransportOptions{Listen: []string{"udp://127.0.0.1:0", "udp://192.0.2.77:5060"}}})
	require.NoError(t, err)
	require.ErrorIs(t, ua.Start(context.Background()), sip.ErrTransportClosed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ua.Stop(ctx) }()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("Stop after a failed Start does not return")
	}
}
