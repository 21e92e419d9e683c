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

// TestREADME: README.md shows the quick start of main.go and the test of
// kit_test.go verbatim (tabs and all), so that neither can rot.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, block := range []struct{ file, begin, end string }{
		{"main.go", "// quickstart begins\n", "\n// quickstart ends"},
		{"kit_test.go", "\t// kit begins\n", "\n\t// kit ends"},
	} {
		src, err := os.ReadFile(block.file)
		require.NoError(t, err)
		_, after, ok := strings.Cut(string(src), block.begin)
		require.True(t, ok, block.begin)
		code, _, ok := strings.Cut(after, block.end)
		require.True(t, ok, block.end)
		if block.file == "kit_test.go" { // shown one level less indented
			code = strings.ReplaceAll("\n"+code, "\n\t", "\n")[1:]
		}
		require.Contains(t, string(readme), code, "README.md differs from examples/quickstart/%s: copy the block into it", block.file)
	}
}
