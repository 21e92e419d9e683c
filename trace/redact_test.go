package trace_test

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
)

const digestResponse = "6629fae49393a05397450978507c4ef1"

// register returns a REGISTER carrying the given extra header lines.
func register(extra ...string) []byte {
	lines := []string{
		"REGISTER sip:example.com SIP/2.0",
		"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKr1;rport",
		"From: <sip:alice@example.com>;tag=a1",
		"To: <sip:alice@example.com>",
		"Call-ID: reg-1@192.0.2.10",
		"CSeq: 2 REGISTER",
	}
	lines = append(lines, extra...)
	lines = append(lines, "Content-Length: 0", "", "")
	return msg(lines...)
}

// redactOne passes ev through Redact and returns what the next Tracer got.
func redactOne(t *testing.T, ev trace.Event) trace.Event {
	t.Helper()
	var got []trace.Event
	trace.Redact(trace.Func(func(ev trace.Event) { got = append(got, ev) })).Trace(ev)
	require.Len(t, got, 1)
	return got[0]
}

func parsed(t *testing.T, raw []byte) trace.Event {
	t.Helper()
	m, err := message.Parse(raw)
	require.NoError(t, err)
	return trace.Event{Time: t0, Dir: trace.Sent, Transport: "UDP", Local: alice, Remote: bob, Raw: raw, Message: m}
}

func TestRedact(t *testing.T) {
	const digest = `Digest username="alice", realm="example.com", nonce="n0nce", uri="sip:example.com", `
	for _, c := range []struct {
		name     string
		in, want []string // extra header lines
	}{
		{"digest quoted",
			[]string{"Authorization: " + digest + `response="` + digestResponse + `", algorithm=MD5, cnonce="c1", qop=auth, nc=00000001`},
			[]string{"Authorization: " + digest + `response="REDACTED", algorithm=MD5, cnonce="c1", qop=auth, nc=00000001`}},
		{"digest unquoted, odd spacing and case",
			[]string{`authorization :  digest nonce="n", Response = ` + digestResponse + ` ,uri="sip:x"`},
			[]string{`authorization :  digest nonce="n", Response = "REDACTED" ,uri="sip:x"`}},
		{"two headers",
			[]string{`Proxy-Authorization: ` + digest + `response="` + digestResponse + `"`,
				`Authorization: Digest username="alice", response=abcdef0123`},
			[]string{`Proxy-Authorization: ` + digest + `response="REDACTED"`,
				`Authorization: Digest username="alice", response="REDACTED"`}},
		{"response inside a quoted parameter is not a parameter",
			[]string{`Authorization: Digest uri="sip:x;response=1", response="` + digestResponse + `"`},
			[]string{`Authorization: Digest uri="sip:x;response=1", response="REDACTED"`}},
		{"basic",
			[]string{"Authorization: Basic YWxpY2U6c2VjcmV0"},
			[]string{"Authorization: Basic REDACTED"}},
		{"bearer token with padding",
			[]string{"PROXY-AUTHORIZATION: Bearer abc.def/ghi=="},
			[]string{"PROXY-AUTHORIZATION: Bearer REDACTED"}},
		{"a bare credential",
			[]string{"Authorization: YWxpY2U6c2VjcmV0"},
			[]string{"Authorization: REDACTED"}},
		{"unbalanced quotes",
			[]string{`Authorization: Digest username="alice, response=` + digestResponse},
			[]string{`Authorization: Digest REDACTED`}},
		{"folded",
			[]string{"Authorization: Digest username=\"alice\",", "\tresponse=\"" + digestResponse + "\",", "  nonce=\"n\""},
			[]string{`Authorization: Digest username="alice", response="REDACTED", nonce="n"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := register(c.in...)
			ev := parsed(t, in)
			keep := bytes.Clone(in)
			got := redactOne(t, ev)
			assert.Equal(t, string(register(c.want...)), string(got.Raw))
			assert.Equal(t, keep, in, "the original Raw is not modified")
			assert.NotContains(t, string(got.Raw), digestResponse)
			assert.NotContains(t, string(got.Raw), "YWxpY2U6c2VjcmV0")
			// Message is the redacted Raw parsed.
			require.NotNil(t, got.Message)
			for _, v := range authValues(got.Message) {
				assert.Contains(t, v, "REDACTED")
			}
			assert.Equal(t, "reg-1@192.0.2.10", got.CallID())
			assert.Equal(t, ev.Time, got.Time)
			assert.Equal(t, ev.Remote, got.Remote)
		})
	}
}

func TestRedactPassesOthersUnchanged(t *testing.T) {
	for _, raw := range [][]byte{
		exampleCall()[0].Raw,
		register("Authorization: Digest username=\"alice\", nonce=\"n\""), // no response
		register("Authorization: Basic REDACTED"),                         // already redacted
		register("Authorization:"),
		[]byte(""),
		msg("REGISTER sip:x SIP/2.0", "Content-Length: 30", "", "Authorization: Basic c2VjcmV0"), // in the body
	} {
		m, _ := message.Parse(raw)
		ev := trace.Event{Dir: trace.Received, Raw: raw, Message: m}
		got := redactOne(t, ev)
		assert.Equal(t, string(raw), string(got.Raw))
		if len(raw) > 0 {
			assert.Same(t, &raw[0], &got.Raw[0], "not copied")
		}
		assert.Equal(t, m, got.Message)
	}

	ev := exampleCall()[0]
	r := trace.Redact(trace.Func(func(trace.Event) {}))
	assert.Zero(t, testing.AllocsPerRun(100, func() { r.Trace(ev) }))
}

func TestRedactMalformed(t *testing.T) {
	// Content-Length beyond the end: a ParseError with the message parsed
	// so far; no start line at all: nothing parsed.
	raw := msg("INVITE sip:bob@example.com SIP/2.0", "Call-ID: bad-1",
		"Authorization: Digest username=\"alice\", response=\""+digestResponse+"\"", "Content-Length: 99", "", "")
	_, err := message.Parse(raw)
	require.Error(t, err)
	var pe *message.ParseError
	require.ErrorAs(t, err, &pe)
	require.NotNil(t, pe.Message)
	got := redactOne(t, trace.Event{Dir: trace.Received, Raw: raw, Message: pe.Message, Err: err})
	assert.NotContains(t, string(got.Raw), digestResponse)
	require.NotNil(t, got.Message, "what could be parsed")
	assert.Equal(t, `Digest username="alice", response="REDACTED"`, got.Message.Headers().Get("Authorization"))
	assert.Equal(t, err, got.Err)

	for _, raw := range [][]byte{
		[]byte("Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n"),
		[]byte("garbage\nauthorization: Basic YWxpY2U6c2VjcmV0"),
		[]byte("\r\n\r\nX sip:x SIP/2.0\r\n Authorization: x\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n"),
	} {
		m, err := message.Parse(raw)
		require.Error(t, err)
		got = redactOne(t, trace.Event{Dir: trace.Received, Raw: raw, Message: m, Err: err})
		assert.NotContains(t, string(got.Raw), "YWxpY2U6c2VjcmV0")
		assert.Contains(t, string(got.Raw), "Basic REDACTED")
		assert.Nil(t, got.Message)
	}
}

// A SendFailed event follows its Sent event with the same bytes: both are
// redacted alike, and a redacted Raw outlives the call.
func TestRedactSendFailedAndRecorder(t *testing.T) {
	rec := trace.NewRecorder(0)
	r := trace.Redact(rec)
	ev := parsed(t, register("Authorization: Basic YWxpY2U6c2VjcmV0"))
	r.Trace(ev)
	ev.Dir, ev.Message = trace.SendFailed, nil
	r.Trace(ev)
	evs := rec.Events()
	require.Len(t, evs, 2)
	assert.Equal(t, evs[0].Raw, evs[1].Raw)
	assert.NotContains(t, string(evs[0].Raw), "YWxpY2U6c2VjcmV0")
	assert.Nil(t, evs[1].Message)
}

// Redact keeps credentials out of a text log (or a pcap file, or a ladder).
func ExampleRedact() {
	w := trace.NewTextWriter(os.Stdout, trace.TextOptions{HeadersOnly: true})
	tracer := trace.Redact(w) // UserAgentOptions.Tracer
	raw := msg(
		"REGISTER sip:example.com SIP/2.0",
		"Call-ID: reg-1@192.0.2.10",
		"CSeq: 2 REGISTER",
		`Authorization: Digest username="alice", realm="example.com", nonce="n0nce", uri="sip:example.com", response="`+digestResponse+`"`,
		"Content-Length: 0", "", "")
	m, _ := message.Parse(raw)
	tracer.Trace(trace.Event{Time: t0, Dir: trace.Sent, Transport: "UDP", Local: alice, Remote: bob, Raw: raw, Message: m})
	// Output:
	// ----- 2026-11-25 21:30:00.000000 UTC  sent  UDP 192.0.2.10:5060 -> 192.0.2.20:5060  (220 bytes)
	// REGISTER sip:example.com SIP/2.0
	// Call-ID: reg-1@192.0.2.10
	// CSeq: 2 REGISTER
	// Authorization: Digest username="alice", realm="example.com", nonce="n0nce", uri="sip:example.com", response="REDACTED"
	// Content-Length: 0
}

// credentialsOK reports whether an Authorization or Proxy-Authorization
// value, as the message package reads it, carries no credential but
// REDACTED.
func credentialsOK(v string) bool {
	a, err := message.ParseAuth(v)
	if err != nil {
		return v == ""
	}
	if strings.EqualFold(a.Scheme, "Digest") {
		r, ok := a.Get("response")
		return !ok || r == "" || r == "REDACTED"
	}
	return v == "REDACTED" || v == a.Scheme+" REDACTED"
}

// secrets returns the credentials of raw's Authorization and
// Proxy-Authorization fields as the message package reads them.
func secrets(raw []byte) []string {
	m, err := message.Limits{MaxMessageSize: -1, MaxHeaders: -1, MaxLineLength: -1, MaxBodySize: -1}.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	for _, v := range authValues(m) {
		a, err := message.ParseAuth(v)
		if err != nil {
			continue
		}
		if strings.EqualFold(a.Scheme, "Digest") {
			if r, ok := a.Get("response"); ok {
				out = append(out, r)
			}
			continue
		}
		for _, p := range a.Params {
			out = append(out, p.Name, p.Value)
		}
	}
	return out
}

// authValues returns the values of m's Authorization and
// Proxy-Authorization fields.
func authValues(m message.Message) []string {
	var out []string
	h := m.Headers()
	for _, f := range h.Fields() {
		if n := message.CanonicalName(f.Name); n == "Authorization" || n == "Proxy-Authorization" {
			out = append(out, f.Value)
		}
	}
	return out
}

// FuzzRedact: Redact never panics, never modifies the event it gets, and
// leaves no credential in Raw or Message: every Authorization and
// Proxy-Authorization field of the output reads as REDACTED, and a
// credential of the input that occurs once in it is gone.
func FuzzRedact(f *testing.F) {
	for _, ev := range exampleCall() {
		f.Add(ev.Raw)
	}
	f.Add(register(`Authorization: Digest username="alice", nonce="n", response="` + digestResponse + `"`))
	f.Add(register(`Proxy-Authorization: Digest response=`+digestResponse, "Authorization: Basic YWxpY2U6c2VjcmV0"))
	f.Add(register("Authorization: Digest a=<\">, response=0123456789, b=<\">"))
	f.Add(register("authorization: Digest username=\"a\\\"b\",\r\n response=\"x\\\"yz123\""))
	f.Add([]byte("\r\nAUTHORIZATION : Basic\r\n\tc2VjcmV0\r\n\r\nbody"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		keep := bytes.Clone(raw)
		m, err := message.Parse(raw)
		var got trace.Event
		n := 0
		trace.Redact(trace.Func(func(ev trace.Event) { got = ev; n++ })).Trace(
			trace.Event{Dir: trace.Received, Raw: raw, Message: m, Err: err})
		require.Equal(t, 1, n)
		require.Equal(t, keep, raw, "input modified")
		if !bytes.Equal(got.Raw, raw) {
			require.Contains(t, strings.ToLower(string(raw)), "authorization")
		}

		out, _ := message.Limits{MaxMessageSize: -1, MaxHeaders: -1, MaxLineLength: -1, MaxBodySize: -1}.Parse(got.Raw)
		for _, mm := range []message.Message{out, got.Message} {
			if mm == nil {
				continue
			}
			for _, v := range authValues(mm) {
				require.True(t, credentialsOK(v), "%q", v)
			}
		}
		for _, s := range secrets(raw) {
			if len(s) >= 4 && bytes.Count(raw, []byte(s)) == 1 && !strings.Contains(`Digest "REDACTED"`, s) {
				require.NotContains(t, string(got.Raw), s)
			}
		}
	})
}

// TestRedactSRTPKeys: the SDES keys of an SDP body (a=crypto inline:)
// become as many X's, Content-Length stays right, the suite and the rest
// of the body stay; with credentials too, both are redacted.
func TestRedactSRTPKeys(t *testing.T) {
	const key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
	body := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^20\r\n" +
		"a=crypto:2 AEAD_AES_128_GCM inline:" + key[:36] + "\r\n"
	for _, auth := range []string{"", "Proxy-Authorization: Basic c2VjcmV0\r\n"} {
		raw := []byte("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n" +
			"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n" +
			auth + "Content-Type: application/sdp\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body)
		orig := string(raw)
		got := redactOne(t, parsed(t, raw))
		assert.Equal(t, orig, string(raw), "the event's bytes are not changed in place")
		assert.NotContains(t, string(got.Raw), key[:20])
		assert.Contains(t, string(got.Raw), "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+strings.Repeat("X", len(key))+"|2^20\r\n")
		assert.Contains(t, string(got.Raw), "a=crypto:2 AEAD_AES_128_GCM inline:"+strings.Repeat("X", 36)+"\r\n")
		require.NotNil(t, got.Message)
		assert.Len(t, got.Message.Content(), len(body))
		if auth != "" {
			assert.NotContains(t, string(got.Raw), "c2VjcmV0")
		}
	}
}
