package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestQuickstart runs the quick start against the local registrar: alice
// registers, calls bob, who answers, and hangs up.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop, url, err := local(ctx)
	require.NoError(t, err)
	defer stop()
	require.NoError(t, call(ctx, url, "alice", "alice-secret", "sipua.test", "sip:bob@sipua.test"))
	// A wrong password is a clear error.
	require.ErrorContains(t, call(ctx, url, "alice", "wrong", "sipua.test", "sip:bob@sipua.test"), "register")
}

// TestREADME: README.md shows the quick start of main.go verbatim.
func TestREADME(t *testing.T) {
	src, err := os.ReadFile("main.go")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(src), "// quickstart begins\n")
	require.True(t, ok)
	code, _, ok := strings.Cut(after, "\n// quickstart ends")
	require.True(t, ok)
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), code, "README.md's quick start differs from examples/quickstart/main.go: copy the function into it")
}
