package message

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const basicReq = "OPTIONS sip:bob@example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n" +
	"From: <sip:alice@example.com>;tag=1\r\n" +
	"To: <sip:bob@example.com>\r\n" +
	"Call-ID: abc\r\n" +
	"CSeq: 1 OPTIONS\r\n" +
	"Max-Forwards: 70\r\n"

func TestParseRequest(t *testing.T) {
	r, err := ParseRequest([]byte(basicReq + "Content-Length: 5\r\n\r\nhello"))
	require.NoError(t, err)
	require.NoError(t, r.Validate())
	assert.Equal(t, "OPTIONS", r.Method)
	assert.Equal(t, "bob", r.URI.User)
	assert.Equal(t, "", r.Proto)
	assert.Equal(t, []byte("hello"), r.Body)
	assert.Equal(t, r.Body, r.Content())
	assert.Same(t, &r.Header, r.Headers())
	_, err = ParseResponse([]byte(basicReq + "\r\n"))
	assert.ErrorIs(t, err, ErrMalformed)
}

func TestParseResponse(t *testing.T) {
	raw := "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n" +
		"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	r, err := ParseResponse([]byte(raw))
	require.NoError(t, err)
	require.NoError(t, r.Validate())
	assert.Equal(t, 180, r.StatusCode)
	assert.Equal(t, "Ringing", r.Reason)
	assert.Equal(t, "SIP/2.0 180 Ringing", r.StatusLine())
	assert.Equal(t, raw, r.String())
	assert.Nil(t, r.Content())
	assert.Same(t, &r.Header, r.Headers())
	_, err = ParseRequest([]byte(raw))
	assert.ErrorIs(t, err, ErrMalformed)

	r, err = ParseResponse([]byte("SIP/2.0 100\r\nVia: SIP/2.0/UDP h\r\n\r\n"))
	require.NoError(t, err)
	assert.Equal(t, "", r.Reason)
	assert.ErrorIs(t, r.Validate(), ErrMissingHeader)

	r, err = ParseResponse([]byte("SIP/3.0 200 OK\r\n\r\n"))
	require.NoError(t, err)
	assert.ErrorIs(t, r.Validate(), ErrVersion)
	r.StatusCode = 700
	r.Proto = ""
	assert.ErrorIs(t, r.Validate(), ErrOutOfRange)
}

func TestParseLineEndsAndFolding(t *testing.T) {
	raw := "\r\n\r\nMESSAGE sip:bob@example.com SIP/2.0\n" +
		"Via: SIP/2.0/TCP h;branch=z9hG4bK1\n" +
		"From: <sip:alice@example.com>\n ;tag=1\n" +
		"To: <sip:bob@example.com>\r\n" +
		"Call-ID: abc\nCSeq: 1\r\n\tMESSAGE\n" +
		"Subject: first\r\n   second \r\n\tthird\r\n" +
		"l: 2\n\nhi"
	r, err := ParseRequest([]byte(raw))
	require.NoError(t, err)
	require.NoError(t, r.Validate())
	assert.Equal(t, "1", r.Header.FromTag())
	assert.Equal(t, "first second third", r.Header.Get("Subject"))
	c, _ := r.Header.CSeq()
	assert.Equal(t, CSeq{1, "MESSAGE"}, c)
	assert.Equal(t, "hi", string(r.Body))
}

func TestParseDatagramBody(t *testing.T) {
	// No Content-Length on a datagram: the body is the rest.
	r, err := ParseRequest([]byte(basicReq + "\r\nrest of datagram"))
	require.NoError(t, err)
	assert.Equal(t, "rest of datagram", string(r.Body))
	// Content-Length shorter than the datagram: the extra octets go.
	r, err = ParseRequest([]byte(basicReq + "Content-Length: 4\r\n\r\nrest of datagram"))
	require.NoError(t, err)
	assert.Equal(t, "rest", string(r.Body))
	// Header section ending at the end of the datagram without an empty line.
	r, err = ParseRequest([]byte(basicReq))
	require.NoError(t, err)
	assert.Nil(t, r.Body)
	// The body is a separate copy of the input.
	in := []byte(basicReq + "Content-Length: 4\r\n\r\nbody")
	r, err = ParseRequest(in)
	require.NoError(t, err)
	copy(in, strings.Repeat("x", len(in)))
	assert.Equal(t, "body", string(r.Body))
	assert.Equal(t, "OPTIONS", r.Method)
	assert.Equal(t, "abc", r.Header.CallID())
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, raw string
		err       error
		status    int
		hasMsg    bool
	}{
		{"empty", "", ErrMalformed, 400, false},
		{"only CRLF", "\r\n\r\n", ErrMalformed, 400, false},
		{"no line end", "OPTIONS sip:a@b SIP/2.0", ErrMalformed, 400, false},
		{"bad request line", "OPTIONS sip:a@b\r\n\r\n", ErrMalformed, 400, false},
		{"four parts", "OPTIONS sip:a@b; lr SIP/2.0\r\n\r\n", ErrMalformed, 400, false},
		{"bad method", "OPT@ONS sip:a@b SIP/2.0\r\n\r\n", ErrMalformed, 400, false},
		{"bad uri", "OPTIONS <sip:a@b> SIP/2.0\r\n\r\n", ErrMalformed, 400, false},
		{"bad version", "OPTIONS sip:a@b HTTP/1.1\r\n\r\n", ErrMalformed, 400, false},
		{"bad version digits", "OPTIONS sip:a@b SIP/2.x\r\n\r\n", ErrMalformed, 400, false},
		{"bad status", "SIP/2.0 2000 OK\r\n\r\n", ErrMalformed, 400, false},
		{"status under 100", "SIP/2.0 099 OK\r\n\r\n", ErrMalformed, 400, false},
		{"status line short", "SIP/2.0\r\n\r\n", ErrMalformed, 400, false},
		{"continuation first", "OPTIONS sip:a@b SIP/2.0\r\n x: y\r\n\r\n", ErrMalformed, 400, false},
		{"no colon", "OPTIONS sip:a@b SIP/2.0\r\nVia\r\n\r\n", ErrMalformed, 400, false},
		{"bad header name", "OPTIONS sip:a@b SIP/2.0\r\nV(a: x\r\n\r\n", ErrMalformed, 400, false},
		{"no end of headers", "OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\nFrom: y", ErrMalformed, 400, false},
		{"negative CL", basicReq + "Content-Length: -1\r\n\r\n", ErrContentLength, 400, true},
		{"two CL", basicReq + "Content-Length: 1\r\nl: 1\r\n\r\nx", ErrContentLength, 400, true},
		{"CL too big", basicReq + "Content-Length: 10\r\n\r\nshort", ErrContentLength, 400, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.raw))
			assert.Nil(t, m)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.err)
			assert.Equal(t, tt.status, StatusCode(err))
			var pe *ParseError
			require.True(t, errors.As(err, &pe))
			assert.Equal(t, tt.hasMsg, pe.Message != nil)
			assert.NotEmpty(t, pe.Error())
		})
	}
}

func TestLimits(t *testing.T) {
	big := basicReq + "Content-Length: 100\r\n\r\n" + strings.Repeat("x", 100)
	_, err := Limits{MaxMessageSize: 200}.Parse([]byte(big))
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.Equal(t, 513, StatusCode(err))

	_, err = Limits{MaxBodySize: 99}.Parse([]byte(big))
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.Equal(t, 413, StatusCode(err))
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	assert.NotNil(t, pe.Message)

	_, err = Limits{MaxHeaders: 6}.Parse([]byte(big))
	assert.ErrorIs(t, err, ErrTooLarge)
	_, err = Limits{MaxHeaders: 7}.Parse([]byte(big))
	assert.NoError(t, err)

	_, err = Limits{MaxLineLength: 40}.Parse([]byte(big))
	assert.ErrorIs(t, err, ErrTooLarge, "the Via line is over 40 bytes")
	_, err = Limits{MaxLineLength: 20}.Parse([]byte(big))
	assert.ErrorIs(t, err, ErrTooLarge, "start line over 20 bytes")
	long := basicReq + "Subject: " + strings.Repeat("a", 50) + "\r\n " + strings.Repeat("b", 50) + "\r\n\r\n"
	_, err = Limits{MaxLineLength: 80}.Parse([]byte(long))
	assert.ErrorIs(t, err, ErrTooLarge, "folded lines count together")

	huge := basicReq + "Content-Length: 70000\r\n\r\n" + strings.Repeat("x", 70000)
	_, err = Parse([]byte(huge))
	assert.ErrorIs(t, err, ErrTooLarge, "default limit")
	_, err = Limits{MaxMessageSize: -1, MaxBodySize: -1}.Parse([]byte(huge))
	assert.NoError(t, err, "negative: no limit")
}

func TestValidateRequest(t *testing.T) {
	tests := []struct {
		name, raw string
		err       error
		status    int
	}{
		{"ok", basicReq + "\r\n", nil, 0},
		{"no Max-Forwards is tolerated", strings.Replace(basicReq, "Max-Forwards: 70\r\n", "", 1) + "\r\n", nil, 0},
		{"version", strings.Replace(basicReq, "SIP/2.0\r\n", "SIP/7.0\r\n", 1) + "\r\n", ErrVersion, 505},
		{"no Via", strings.Replace(basicReq, "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n", "", 1) + "\r\n", ErrMissingHeader, 400},
		{"no Call-ID", strings.Replace(basicReq, "Call-ID: abc\r\n", "", 1) + "\r\n", ErrMissingHeader, 400},
		{"empty Call-ID", strings.Replace(basicReq, "Call-ID: abc\r\n", "Call-ID: \r\n", 1) + "\r\n", ErrMalformed, 400},
		{"two To", basicReq + "To: <sip:x@y>\r\n\r\n", ErrDuplicateHeader, 400},
		{"mismatch", strings.Replace(basicReq, "1 OPTIONS", "1 INVITE", 1) + "\r\n", ErrMethodMismatch, 400},
		{"CSeq range", strings.Replace(basicReq, "1 OPTIONS", "2147483648 OPTIONS", 1) + "\r\n", ErrOutOfRange, 400},
		{"Max-Forwards range", strings.Replace(basicReq, "Max-Forwards: 70", "Max-Forwards: 300", 1) + "\r\n", ErrOutOfRange, 400},
		{"bad Via", strings.Replace(basicReq, "SIP/2.0/UDP 192.0.2.1", "SIP/2.0/UDP", 1) + "\r\n", ErrMalformed, 400},
		{"bad From", strings.Replace(basicReq, "From: <sip:alice@example.com>", "From: <sip:alice@example.com", 1) + "\r\n", ErrMalformed, 400},
		{"bad To", strings.Replace(basicReq, "To: <sip:bob@example.com>", `To: "x <sip:bob@example.com>`, 1) + "\r\n", ErrMalformed, 400},
		{"bad Contact", basicReq + "Contact: <sip:a@b>;;\r\n\r\n", ErrMalformed, 400},
		{"headers in R-URI", strings.Replace(basicReq, "sip:bob@example.com SIP", "sip:bob@example.com?x=y SIP", 1) + "\r\n", ErrMalformed, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.raw))
			require.NoError(t, err)
			err = m.Validate()
			if tt.err == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tt.err)
			assert.Equal(t, tt.status, StatusCode(err))
			var pe *ParseError
			require.ErrorAs(t, err, &pe)
			assert.Same(t, m, pe.Message)
		})
	}
	r := &Request{Method: "BAD METHOD"}
	assert.ErrorIs(t, r.Validate(), ErrMalformed)
}

func TestStatusCodeOfOtherErrors(t *testing.T) {
	assert.Equal(t, 500, StatusCode(errors.New("other")))
	assert.Equal(t, 505, StatusCode(ErrVersion))
	assert.Equal(t, 416, StatusCode(ErrURIScheme))
	assert.Equal(t, 400, StatusCode(ErrMalformed))
	assert.Equal(t, 400, StatusCode(errors.Join(ErrTooLarge)))
}

func TestWriteNormalisesContentLength(t *testing.T) {
	r, err := ParseRequest([]byte(basicReq + "\r\n"))
	require.NoError(t, err)
	assert.Equal(t, basicReq+"Content-Length: 0\r\n\r\n", r.String(), "added when absent")
	r.Body = []byte("four")
	r.Header.Add("l", "999")
	r.Header.Add("Content-Length", "1")
	assert.Equal(t, basicReq+"l: 4\r\n\r\nfour", r.String(), "rewritten from the body, repeats dropped")

	c := r.Clone()
	c.Body[0] = 'F'
	c.Header.Set("Call-ID", "other")
	assert.Equal(t, "four", string(r.Body))
	assert.Equal(t, "abc", r.Header.CallID())

	resp := &Response{StatusCode: 200, Reason: "OK", Proto: "SIP/2.0"}
	assert.Equal(t, "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", resp.String())
	rc := resp.Clone()
	assert.Equal(t, resp.String(), rc.String())
}
