package cli

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
)

const secret = "6629fae49393a05397450978507c4ef1"

var register = []byte("REGISTER sip:pbx.test SIP/2.0\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\n" +
	`Authorization: Digest username="alice", nonce="n", response="` + secret + `"` + "\r\nContent-Length: 0\r\n\r\n")

// traceRegister writes a REGISTER with credentials through OpenTrace.
func traceRegister(t *testing.T, path string, secrets bool, stderr io.Writer) {
	t.Helper()
	tr, err := OpenTrace(path, secrets, stderr)
	require.NoError(t, err)
	m, err := message.Parse(register)
	require.NoError(t, err)
	tr.Tracer.Trace(trace.Event{Dir: trace.Sent, Transport: "UDP", Raw: register, Message: m})
	require.NoError(t, tr.Close())
}

// -trace redacts the digest response unless -trace-secrets is given.
func TestOpenTraceRedacts(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	a := AddFlags(fs, func(string) string { return "" })
	require.NoError(t, fs.Parse([]string{"-trace", "-"}))
	assert.False(t, a.TraceSecrets)
	require.NoError(t, fs.Parse([]string{"-trace-secrets"}))
	assert.True(t, a.TraceSecrets)

	var stderr bytes.Buffer
	traceRegister(t, "-", false, &stderr)
	assert.Contains(t, stderr.String(), `response="REDACTED"`)
	assert.NotContains(t, stderr.String(), secret)

	dir := t.TempDir()
	for _, name := range []string{"sip.pcap", "sip.txt"} {
		path := filepath.Join(dir, name)
		traceRegister(t, path, false, io.Discard)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Contains(t, string(b), `response="REDACTED"`, name)
		assert.NotContains(t, string(b), secret, name)
	}

	stderr.Reset()
	traceRegister(t, "-", true, &stderr)
	assert.Contains(t, stderr.String(), secret)

	tr, err := OpenTrace("", false, io.Discard)
	assert.NoError(t, err)
	assert.Nil(t, tr)
}
