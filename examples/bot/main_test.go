package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/examples/internal/cli"
	"github.com/sipua/sip/media/wav"
	"github.com/sipua/sip/siptest/sipserver"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func noEnv(string) string { return "" }

func TestFlags(t *testing.T) {
	var out, errb syncBuffer
	ctx := context.Background()
	assert.Equal(t, cli.ExitUsage, run(ctx, []string{"-user", "bot"}, noEnv, &out, &errb))
	assert.Contains(t, errb.String(), "-server")
	assert.Equal(t, cli.ExitUsage, run(ctx, []string{"-server", "x", "-user", "bot", "-media", "fax"}, noEnv, &out, &errb))
	assert.Equal(t, cli.ExitUsage, run(ctx, []string{"-server", "x", "-user", "bot", "-bogus"}, noEnv, &out, &errb))
	assert.Equal(t, cli.ExitUsage, run(ctx, []string{"-server", "x", "-user", "bot", "-prompt", "/no/such.wav"}, noEnv, &out, &errb))
	assert.Equal(t, cli.ExitOK, run(ctx, []string{"-h"}, noEnv, &out, &errb))
	assert.Contains(t, errb.String(), "Exit codes")
}

func TestUnreachableAndAuth(t *testing.T) {
	// Nothing listens on a port just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	var out, errb syncBuffer
	code := run(context.Background(), []string{"-server", addr, "-transport", "tcp", "-user", "bot", "-timeout", "500ms"}, noEnv, &out, &errb)
	assert.Equal(t, cli.ExitUnreachable, code, errb.String())
	assert.Contains(t, errb.String(), "server unreachable")

	srv, err := sipserver.New(sipserver.Options{Users: map[string]string{"bot": "right"}, Listen: []string{"udp://127.0.0.1:0"}})
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	defer srv.Close()
	env := map[string]string{cli.EnvServer: srv.Addr("udp").String(), cli.EnvUser: "bot", cli.EnvPassword: "wrong", cli.EnvDomain: "sipua.test"}
	code = run(context.Background(), nil, func(k string) string { return env[k] }, &out, &errb)
	assert.Equal(t, cli.ExitAuth, code, errb.String())
	assert.Contains(t, errb.String(), "authentication failed")
}

func TestRunsUntilSignal(t *testing.T) {
	srv, err := sipserver.New(sipserver.Options{Listen: []string{"udp://127.0.0.1:0"}})
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	defer srv.Close()
	prompt := filepath.Join(t.TempDir(), "p.wav")
	require.NoError(t, wav.WriteFile(prompt, make([]int16, 800)))
	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-server", srv.Addr("udp").String(), "-domain", "sipua.test", "-user", "bot",
			"-prompt", prompt, "-media-ip", "127.0.0.1"}, noEnv, &out, &errb)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "ready for calls") }, 10*time.Second, 10*time.Millisecond)
	assert.Len(t, srv.Bindings("bot"), 1)
	cancel()
	assert.Equal(t, cli.ExitOK, <-done, errb.String())
	assert.Contains(t, out.String(), "stopped taking calls")
	assert.Empty(t, srv.Bindings("bot"))
	_ = os.Remove(prompt)
}

// TestSeveralAccountsFlags: -account and -accounts add accounts served
// from the same process; all register, and all unregister at the end.
func TestSeveralAccountsFlags(t *testing.T) {
	srv, err := sipserver.New(sipserver.Options{
		Users:  map[string]string{"bot": "b", "sales": "s:1", "support": "x", "hr": "h"},
		Listen: []string{"udp://127.0.0.1:0"},
	})
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "accounts")
	require.NoError(t, os.WriteFile(file, []byte("# more accounts\nsupport:x\n\nhr@sipua.test:h\n"), 0o600))
	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-server", srv.Addr("udp").String(), "-domain", "sipua.test", "-user", "bot", "-password", "b",
			"-account", "sales:s:1", "-accounts", file, "-media-ip", "127.0.0.1"}, noEnv, &out, &errb)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "ready for calls") }, 10*time.Second, 10*time.Millisecond, errb.String())
	for _, u := range []string{"bot", "sales", "support", "hr"} {
		assert.Len(t, srv.Bindings(u), 1, u)
	}
	cancel()
	assert.Equal(t, cli.ExitOK, <-done, errb.String())
	for _, u := range []string{"bot", "sales", "support", "hr"} {
		assert.Empty(t, srv.Bindings(u), u)
	}

	// Without -user, the first account stands for it; a wrong password
	// of any account is an authentication failure.
	code := run(context.Background(), []string{"-server", srv.Addr("udp").String(), "-domain", "sipua.test",
		"-account", "bot:b", "-account", "sales:wrong", "-timeout", "5s"}, noEnv, &out, &errb)
	assert.Equal(t, cli.ExitAuth, code, errb.String())
	assert.Equal(t, cli.ExitUsage, run(context.Background(), []string{"-server", "x", "-accounts", "/no/such/file"}, noEnv, &out, &errb))
}
