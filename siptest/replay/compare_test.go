package replay

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/digest"
	"github.com/sipua/sip/message"
)

// TestCheckCredentialsAlgorithms: the digest check agrees with the
// project's own digest client for every algorithm and qop it answers.
func TestCheckCredentialsAlgorithms(t *testing.T) {
	c := newComparer(Options{Passwords: map[string]string{"bob": "secret"}})
	for _, challenge := range []string{
		`Digest realm="example.com", nonce="abc"`, // RFC 2069, no qop
		`Digest realm="example.com", nonce="abc", qop="auth"`,
		`Digest realm="example.com", nonce="abc", qop="auth-int", algorithm=MD5-sess`,
		`Digest realm="example.com", nonce="abc", qop="auth", algorithm=SHA-256`,
		`Digest realm="example.com", nonce="abc", qop="auth-int", algorithm=SHA-512-256-sess`,
	} {
		t.Run(challenge, func(t *testing.T) {
			credentials := func(password string) (*message.Request, string) {
				req := message.NewRequest("INVITE", message.MustParseURI("sip:alice@example.com"),
					message.Address{URI: message.MustParseURI("sip:bob@example.com")},
					message.Address{URI: message.MustParseURI("sip:alice@example.com")})
				req.Body = []byte("v=0\r\n")
				resp := message.NewResponse(req, 407, "", "")
				resp.Header.Add("Proxy-Authenticate", challenge)
				require.NoError(t, digest.NewClient(digest.Credentials{Username: "bob", Password: password}).Authorize(req, resp))
				return req, req.Header.Get("Proxy-Authorization")
			}
			req, got := credentials("secret")
			_, other := credentials("secret") // another cnonce
			assert.Empty(t, c.checkCredentials("Proxy-Authorization", other, got, req))
			req, got = credentials("wrong")
			assert.Equal(t, []string{"Proxy-Authorization: the response is not the digest of bob's password"},
				c.checkCredentials("Proxy-Authorization", other, got, req))
		})
	}
}

func TestCheckCredentialsShape(t *testing.T) {
	c := newComparer(Options{})
	want := `Digest username="bob", realm="r", nonce="n", uri="sip:x", response="00000000000000000000000000000000"`
	assert.Empty(t, c.checkCredentials("Authorization", want, want, &message.Request{Method: "REGISTER"}))
	assert.Equal(t, []string{`Authorization: scheme: want Digest, got Basic`},
		c.checkCredentials("Authorization", want, "Basic Ym9iOnNlY3JldA==", &message.Request{}))
	assert.Equal(t, []string{`Authorization: realm: want "r", got none`, "Authorization: no response"},
		c.checkCredentials("Authorization", want, `Digest username="bob", nonce="n", uri="sip:x"`, &message.Request{}))
	assert.Empty(t, c.checkCredentials("Authorization", "Bearer x", "Bearer x", &message.Request{}))
	assert.Equal(t, []string{`Authorization: want "Bearer x", got "Bearer y"`},
		c.checkCredentials("Authorization", "Bearer x", "Bearer y", &message.Request{}))
}

func TestSDPShape(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0 8\r\nm=video 0 RTP/SAVPF 96\r\n"
	assert.Equal(t, "audio RTP/AVP, video RTP/SAVPF", sdpShape([]byte(sdp)))
	assert.Equal(t, "", sdpShape([]byte("v=0\r\n")))

	c := newComparer(Options{})
	msg := func(body string) message.Message {
		m, err := message.Parse([]byte("SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body))
		require.NoError(t, err)
		return m
	}
	assert.Empty(t, c.compare(msg(sdp), msg("v=0\r\nm=audio 5000 RTP/AVP 0\r\nm=video 9 RTP/SAVPF 97\r\n")))
	assert.Equal(t, []string{`SDP media: want "audio RTP/AVP, video RTP/SAVPF", got "audio RTP/AVP"`},
		c.compare(msg(sdp), msg("v=0\r\nm=audio 5000 RTP/AVP 0\r\n")))
	assert.Equal(t, []string{"body: want 81 bytes, got none"}, c.compare(msg(sdp), msg("")))
}

func TestTraceAccessors(t *testing.T) {
	tr := sampleTrace()
	assert.Equal(t, "proxy", tr.Party(SideA).Name)
	assert.Equal(t, "ua", tr.Party(SideB).Name)
	_, ok := tr.Field("nope")
	assert.False(t, ok)
	assert.Equal(t, "REGISTER", tr.Messages[0].Summary())
	assert.Contains(t, (&Trace{Messages: tr.Messages[:1]}).Ladder(), "B  ──REGISTER──▶  A")
}
