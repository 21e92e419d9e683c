package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media/rtp"
)

func TestServerAddress(t *testing.T) {
	for _, c := range []struct{ server, transport, want, aor string }{
		{"pbx.test", "", "sip:pbx.test", "sip:u@pbx.test"},
		{"pbx.test:5070", "udp", "sip:pbx.test:5070", "sip:u@pbx.test"},
		{"127.0.0.1:5060", "tcp", "sip:127.0.0.1:5060;transport=tcp", "sip:u@127.0.0.1"},
		{"pbx.test", "TLS", "sips:pbx.test", "sip:u@pbx.test"},
		{"pbx.test:8080", "ws", "ws://pbx.test:8080/", "sip:u@pbx.test"},
		{"pbx.test", "wss", "wss://pbx.test/", "sip:u@pbx.test"},
		{"wss://pbx.test/ws", "", "wss://pbx.test/ws", "sip:u@pbx.test"},
		{"wss://pbx.test/ws", "wss", "wss://pbx.test/ws", "sip:u@pbx.test"},
		{"sip:pbx.test:5080;transport=tcp", "tcp", "sip:pbx.test:5080;transport=tcp", "sip:u@pbx.test"},
		{"sip:pbx.test", "udp", "sip:pbx.test", "sip:u@pbx.test"},
	} {
		a := &Account{Server: c.server, Transport: c.transport, User: "u", Media: "rtp", Timeout: 1}
		got, err := a.ServerAddress()
		require.NoError(t, err, c.server)
		assert.Equal(t, c.want, got)
		assert.Equal(t, c.aor, a.AOR())
		assert.NoError(t, a.Check())
	}
	for _, c := range []struct{ server, transport string }{
		{"pbx.test", "sctp"},
		{"wss://pbx.test/", "tcp"},
		{"sip:pbx.test;transport=tcp", "udp"},
		{"pbx.test/ws", ""},
	} {
		a := &Account{Server: c.server, Transport: c.transport}
		_, err := a.ServerAddress()
		assert.ErrorIs(t, err, ErrUsage, c)
	}
}

func TestFlagsAndEnv(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	env := map[string]string{EnvServer: "pbx.test", EnvUser: "alice", EnvTransport: "tcp", EnvMedia: "webrtc"}
	a := AddFlags(fs, func(k string) string { return env[k] })
	require.NoError(t, fs.Parse([]string{"-user", "bob", "-domain", "example.test", "-media-ip", "127.0.0.1"}))
	assert.Equal(t, "bob", a.User)
	assert.Equal(t, "webrtc", a.Media)
	assert.Equal(t, "sip:bob@example.test", a.AOR())
	require.NoError(t, a.Check())
	assert.True(t, a.WebRTCConfig().LoopbackOnly)
	assert.Equal(t, "127.0.0.1", a.RTPConfig().IP.String())
	assert.Equal(t, rtp.SRTPOff, a.RTPConfig().SRTP)
	assert.Equal(t, []rtp.Codec{rtp.PCMU, rtp.PCMA}, a.RTPConfig().Codecs)

	env[EnvSRTP], env[EnvCodecs] = "required", "g722, PCMA"
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	a = AddFlags(fs, func(k string) string { return env[k] })
	require.NoError(t, fs.Parse(nil))
	require.NoError(t, a.Check())
	assert.Equal(t, rtp.SRTPRequired, a.RTPConfig().SRTP)
	assert.Equal(t, []rtp.Codec{rtp.G722, rtp.PCMA}, a.RTPConfig().Codecs)

	for _, bad := range []Account{
		{User: "u", Media: "rtp", Timeout: 1},
		{Server: "s", Media: "rtp", Timeout: 1},
		{Server: "s", User: "u", Media: "sdp", Timeout: 1},
		{Server: "s", User: "u", Media: "rtp", MediaIP: "nope", Timeout: 1},
		{Server: "s", User: "u", Media: "rtp"},
		{Server: "s", User: "u", Media: "rtp", Timeout: 1, CAFile: "/no/such"},
		{Server: "s", User: "u", Media: "rtp", Timeout: 1, SRTP: "maybe"},
		{Server: "s", User: "u", Media: "rtp", Timeout: 1, Codecs: "PCMU,GSM"},
	} {
		err := bad.Check()
		if err == nil {
			_, err = bad.TLSConfig()
		}
		assert.ErrorIs(t, err, ErrUsage, "%+v", bad)
	}
}

func TestExitCode(t *testing.T) {
	for err, want := range map[error]int{
		nil:                           ExitOK,
		errors.New("x"):               ExitError,
		fmt.Errorf("%w: x", ErrUsage): ExitUsage,
		fmt.Errorf("register: %w", sip.ErrAuthFailed):                   ExitAuth,
		&sip.ResponseError{StatusCode: 403}:                             ExitAuth,
		&sip.ResponseError{StatusCode: 486}:                             ExitError,
		fmt.Errorf("%w: %w", sip.ErrTransportClosed, context.Canceled):  ExitUnreachable,
		fmt.Errorf("%w: %w", sip.ErrCanceled, context.DeadlineExceeded): ExitUnreachable,
		sip.ErrTimeout: ExitUnreachable,
	} {
		assert.Equal(t, want, ExitCode(err), "%v", err)
	}
}
