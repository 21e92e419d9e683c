package digest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// answerChallenge answers the challenge value for method and uri (which
// need not be a SIP URI, so that the RFC's HTTP examples can be used).
func answerChallenge(t *testing.T, c *Client, challenge, method, uri string, body []byte) map[string]string {
	t.Helper()
	ch, err := ParseChallenge(challenge)
	require.NoError(t, err)
	cands := pickChallenges([]Challenge{ch})
	require.Len(t, cands, 1)
	c.mu.Lock()
	cands[0].nc = c.reserve(cands[0].key, c.realms[cands[0].key], ch.Nonce)
	c.mu.Unlock()
	v, err := c.answer(&cands[0], method, uri, body)
	require.NoError(t, err)
	return params(t, v)
}

// TestRFC7616Vectors checks the examples of RFC 7616 §3.9.1 (MD5 and
// SHA-256, checked against the RFC text) and §3.9.2 (SHA-512-256 with
// userhash). The RFC's printed §3.9.2 username hash and response are not
// SHA-512/256 as FIPS 180-4 defines it; erratum 4897 gives the values
// below, which Python's hashlib reproduces too.
func TestRFC7616Vectors(t *testing.T) {
	const (
		nonce  = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
		cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
		opaque = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
	)
	for _, tc := range []struct{ alg, want string }{
		{"MD5", "8ca523f5e9506fed4657c9700eebdbec"},
		{"SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			c := fixedCnonce(NewClient(Credentials{Username: "Mufasa", Password: "Circle of Life"}), cnonce)
			got := answerChallenge(t, c, `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=`+tc.alg+
				`, nonce="`+nonce+`", opaque="`+opaque+`"`, "GET", "/dir/index.html", nil)
			assert.Equal(t, map[string]string{
				"username": "Mufasa", "realm": "http-auth@example.org", "uri": "/dir/index.html",
				"algorithm": tc.alg, "nonce": nonce, "nc": "00000001", "cnonce": cnonce, "qop": "auth",
				"response": tc.want, "opaque": opaque,
			}, got)
		})
	}
	t.Run("SHA-512-256 userhash", func(t *testing.T) {
		c := fixedCnonce(NewClient(Credentials{Username: "J\u00e4s\u00f8n Doe", Password: "Secret, or not?"}),
			"NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v")
		got := answerChallenge(t, c, `Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, `+
			`nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", `+
			`charset=UTF-8, userhash=true`, "GET", "/doe.json", nil)
		assert.Equal(t, "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b", got["username"])
		assert.Equal(t, "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5", got["response"])
		assert.Equal(t, "true", got["userhash"])
		assert.Equal(t, "SHA-512-256", got["algorithm"])
	})
}

// TestRFC2617Vectors checks RFC 2617 §3.5 (qop=auth) and the same
// challenge without qop (the RFC 2069 form): no qop, nc or cnonce.
func TestRFC2617Vectors(t *testing.T) {
	creds := Credentials{Username: "Mufasa", Password: "Circle Of Life"}
	const rest = `realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`

	c := fixedCnonce(NewClient(creds), "0a4f113b")
	got := answerChallenge(t, c, `Digest qop="auth,auth-int", `+rest, "GET", "/dir/index.html", nil)
	assert.Equal(t, "6629fae49393a05397450978507c4ef1", got["response"])
	assert.Equal(t, "auth", got["qop"])
	assert.Equal(t, "00000001", got["nc"])
	assert.NotContains(t, got, "algorithm", "no algorithm in the challenge, none in the answer")

	got = answerChallenge(t, NewClient(creds), `Digest `+rest, "GET", "/dir/index.html", nil)
	assert.Equal(t, "670fd8c2df070c60b045671b8b24ff02", got["response"])
	for _, p := range []string{"qop", "nc", "cnonce"} {
		assert.NotContains(t, got, p)
	}
	assert.Equal(t, "5ccc069c403ebaf9f0171e9517f40e41", got["opaque"])
}

// TestAlgorithmVectors checks the -sess variants and auth-int against
// values computed independently (Python hashlib).
func TestAlgorithmVectors(t *testing.T) {
	sdp := []byte("v=0\r\no=bob 2890844527 2890844527 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\n")
	creds := Credentials{Username: "bob", Password: "zanzibar"}
	const nonce = `nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"`
	for _, tc := range []struct {
		name, challenge, method, uri string
		body                         []byte
		qop, want                    string
	}{
		{"MD5-sess", `Digest realm="biloxi.com", ` + nonce + `, algorithm=MD5-sess, qop="auth"`,
			"REGISTER", "sip:biloxi.com", nil, "auth", "d20652dbd76d31d860900c50052719f5"},
		{"MD5 auth-int", `Digest realm="biloxi.com", ` + nonce + `, algorithm=MD5, qop="auth-int"`,
			"INVITE", "sip:bob@biloxi.com", sdp, "auth-int", "77f7d13e3e7fc2aefe256b9204952a11"},
		{"MD5 auth-int empty body", `Digest realm="biloxi.com", ` + nonce + `, qop=auth-int`,
			"REGISTER", "sip:biloxi.com", nil, "auth-int", "21b30cb3720f1d6f22eba30b35c52265"},
		{"SHA-256-sess auth-int", `Digest realm="biloxi.com", ` + nonce + `, algorithm=sha-256-SESS, qop="auth-int"`,
			"INVITE", "sip:bob@biloxi.com", sdp, "auth-int", "43b3fdc2d81345d403ec4a12475520eaa5d9c211dd1da1a11e452f1f78db8e21"},
		{"SHA-512-256-sess", `Digest realm="biloxi.com", ` + nonce + `, algorithm=SHA-512-256-sess, qop="auth"`,
			"REGISTER", "sip:biloxi.com", nil, "auth", "d4d982175dbbf48bfe8ada69e6a51f82c872e88fe8ff37627b13b15108fba843"},
		{"MD5 no qop", `Digest realm="biloxi.com", ` + nonce,
			"REGISTER", "sip:biloxi.com", nil, "", "4441045a8075db3ead543693997e2a0e"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fixedCnonce(NewClient(creds), "0a4f113b")
			got := answerChallenge(t, c, tc.challenge, tc.method, tc.uri, tc.body)
			assert.Equal(t, tc.want, got["response"])
			assert.Equal(t, tc.qop, got["qop"])
		})
	}

	// The nonce count advances when a nonce is used again.
	c := fixedCnonce(NewClient(creds), "0a4f113b")
	ch := `Digest realm="biloxi.com", ` + nonce + `, algorithm=SHA-512-256, qop="auth"`
	answerChallenge(t, c, ch, "REGISTER", "sip:biloxi.com", nil)
	got := answerChallenge(t, c, ch, "REGISTER", "sip:biloxi.com", nil)
	assert.Equal(t, "00000002", got["nc"])
	assert.Equal(t, "de21270dfb2d9596656449967c261c7ab7b637cf862615555e957d0b0ba8413a", got["response"])
}

// TestHA1Callback checks that a precomputed HA1 gives the same answer as
// the password, that the callback gets the realm and the base algorithm,
// and that a bad HA1 is refused without being shown.
func TestHA1Callback(t *testing.T) {
	var gotRealm, gotAlg string
	creds := Credentials{Username: "bob", HA1: func(realm, alg string) (string, error) {
		gotRealm, gotAlg = realm, alg
		return "12AF60467A33E8518DA5C68BBFF12B11", nil // H(bob:biloxi.com:zanzibar), upper case
	}}
	c := fixedCnonce(NewClient(creds), "0a4f113b")
	got := answerChallenge(t, c, `Digest realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", algorithm=MD5-sess, qop="auth"`,
		"REGISTER", "sip:biloxi.com", nil)
	assert.Equal(t, "d20652dbd76d31d860900c50052719f5", got["response"])
	assert.Equal(t, "biloxi.com", gotRealm)
	assert.Equal(t, "MD5", gotAlg)

	bad := Credentials{Username: "bob", HA1: func(string, string) (string, error) { return "not-hex-secret", nil }}
	ch, err := ParseChallenge(`Digest realm="r", nonce="n"`)
	require.NoError(t, err)
	cd := pickChallenges([]Challenge{ch})[0]
	_, err = NewClient(bad).answer(&cd, "REGISTER", "sip:r", nil)
	require.ErrorIs(t, err, ErrMalformed)
	assert.NotContains(t, err.Error(), "not-hex-secret")
}
