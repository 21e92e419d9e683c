package message

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func msgWithBody(body string) string {
	return basicReq + "Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func TestFrame(t *testing.T) {
	var l Limits
	m := msgWithBody("hello")
	tests := []struct {
		in   string
		n    int
		k    Keepalive
		err  error
		name string
	}{
		{"", 0, NoKeepalive, ErrIncomplete, "empty"},
		{"\r\n\r\n", 4, Ping, nil, "ping"},
		{"\r\n\r\nINVITE", 4, Ping, nil, "ping then data"},
		{"\r\n", 2, Pong, nil, "pong"},
		{"\r\nINVITE", 2, Pong, nil, "pong then data"},
		{"\r\n\r", 0, NoKeepalive, ErrIncomplete, "half ping"},
		{"\r", 0, NoKeepalive, ErrIncomplete, "lone CR"},
		{basicReq + "Content-Length: 3\n\r\nabc" + m, len(basicReq) + 23, NoKeepalive, nil, "LF then CRLF ends the header section"},
		{"\rINVITE", 0, NoKeepalive, ErrMalformed, "stray CR"},
		{"\r\n\rINVITE", 2, Pong, nil, "pong then stray CR"},
		{basicReq + "X: " + strings.Repeat("a", 70000) + "\r\nl: x\r\n\r\n", 0, NoKeepalive, ErrTooLarge, "header section over the message limit"},
		{"\n", 1, Pong, nil, "bare LF"},
		{m, len(m), NoKeepalive, nil, "message"},
		{m + "OPTIONS", len(m), NoKeepalive, nil, "message then more"},
		{m[:len(m)-1], 0, NoKeepalive, ErrIncomplete, "body short"},
		{m[:40], 0, NoKeepalive, ErrIncomplete, "headers short"},
		{basicReq + "\r\n", len(basicReq) + 2, NoKeepalive, nil, "no Content-Length means empty body"},
		{basicReq + "l: x\r\n\r\n", 0, NoKeepalive, ErrContentLength, "bad CL"},
		{basicReq + "l: 1\r\nContent-Length: 1\r\n\r\nx", 0, NoKeepalive, ErrContentLength, "two CL"},
		{strings.ReplaceAll(msgWithBody("hi"), "\r\n", "\n"), len(msgWithBody("hi")) - 9, NoKeepalive, nil, "bare LF message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, k, err := l.Frame([]byte(tt.in))
			if tt.err != nil {
				assert.ErrorIs(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.n, n)
			assert.Equal(t, tt.k, k)
		})
	}
	assert.Equal(t, "ping", Ping.String())
	assert.Equal(t, "pong", Pong.String())
	assert.Equal(t, "none", NoKeepalive.String())
}

func TestFrameLimits(t *testing.T) {
	_, _, err := Limits{MaxBodySize: 4}.Frame([]byte(msgWithBody("hello")))
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.Equal(t, 413, StatusCode(err))
	_, _, err = Limits{MaxMessageSize: 100}.Frame([]byte(msgWithBody("hello")))
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.Equal(t, 513, StatusCode(err))
	// No end of header section within the limit: give up rather than wait.
	_, _, err = Limits{MaxMessageSize: 100}.Frame([]byte("OPTIONS sip:a@b SIP/2.0\r\n" + strings.Repeat("X-A: b\r\n", 20)))
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestStreamReader(t *testing.T) {
	m1 := msgWithBody("first")
	m2 := msgWithBody("")
	// A ping's four bytes arrive together (a lone CRLF is a pong); the rest
	// may be cut anywhere.
	ping := "\r\n\r\n"
	stream := m1 + "\r\n" + m2 + msgWithBody(strings.Repeat("z", 9000))
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(ping + stream),
		"one byte": io.MultiReader(strings.NewReader(ping), iotest.OneByteReader(strings.NewReader(stream))),
		"half":     io.MultiReader(strings.NewReader(ping), iotest.HalfReader(strings.NewReader(stream))),
	} {
		t.Run(name, func(t *testing.T) {
			sr := NewStreamReader(r, Limits{})
			m, k, err := sr.Next()
			require.NoError(t, err)
			assert.Nil(t, m)
			assert.Equal(t, Ping, k)

			m, k, err = sr.Next()
			require.NoError(t, err)
			assert.Equal(t, NoKeepalive, k)
			assert.Equal(t, "first", string(m.Content()))

			m, k, err = sr.Next()
			require.NoError(t, err)
			assert.Nil(t, m)
			assert.Equal(t, Pong, k)

			m, _, err = sr.Next()
			require.NoError(t, err)
			assert.Empty(t, m.Content())

			m, _, err = sr.Next()
			require.NoError(t, err)
			assert.Len(t, m.Content(), 9000)

			_, _, err = sr.Next()
			assert.ErrorIs(t, err, io.EOF)
			_, _, err = sr.Next()
			assert.ErrorIs(t, err, io.EOF, "sticky")
		})
	}
}

func TestStreamReaderErrors(t *testing.T) {
	// A framed but malformed message: error, and the reader goes on.
	bad := "OPTIONS <sip:a@b> SIP/2.0\r\nContent-Length: 0\r\n\r\n"
	sr := NewStreamReader(strings.NewReader(bad+msgWithBody("ok")), Limits{})
	_, _, err := sr.Next()
	assert.ErrorIs(t, err, ErrMalformed)
	m, _, err := sr.Next()
	require.NoError(t, err)
	assert.Equal(t, "ok", string(m.Content()))

	// Framing error: sticky.
	sr = NewStreamReader(strings.NewReader(basicReq+"Content-Length: -5\r\n\r\n"+msgWithBody("ok")), Limits{})
	_, _, err = sr.Next()
	assert.ErrorIs(t, err, ErrContentLength)
	_, _, err = sr.Next()
	assert.ErrorIs(t, err, ErrContentLength)

	// Stream ends inside a message.
	sr = NewStreamReader(strings.NewReader(msgWithBody("cut")[:60]), Limits{})
	_, _, err = sr.Next()
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)

	// A trailing single CRLF at EOF is a pong.
	sr = NewStreamReader(strings.NewReader(msgWithBody("")+"\r\n"), Limits{})
	_, _, err = sr.Next()
	require.NoError(t, err)
	_, k, err := sr.Next()
	require.NoError(t, err)
	assert.Equal(t, Pong, k)
	_, _, err = sr.Next()
	assert.ErrorIs(t, err, io.EOF)

	// Read errors pass through.
	boom := errors.New("boom")
	sr = NewStreamReader(iotest.ErrReader(boom), Limits{})
	_, _, err = sr.Next()
	assert.ErrorIs(t, err, boom)

	// Endless header section: stops at the limit.
	endless := "OPTIONS sip:a@b SIP/2.0\r\n" + strings.Repeat("X-Pad: 0123456789\r\n", 5000)
	sr = NewStreamReader(strings.NewReader(endless), Limits{MaxMessageSize: 8000})
	_, _, err = sr.Next()
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestParseStream(t *testing.T) {
	// On a stream a message without Content-Length has no body.
	m, err := Limits{}.ParseStream([]byte(basicReq + "\r\n"))
	require.NoError(t, err)
	assert.Empty(t, m.Content())
}
