package digest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseChallenge(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Challenge
	}{
		{"rfc7616", `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256,
			nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
			Challenge{Realm: "http-auth@example.org", Nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
				Opaque: "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", Algorithm: "SHA-256", QOP: []string{"auth", "auth-int"}}},
		{"kamailio", `Digest realm="sipua.test", nonce="Z2VuZXJhdGVk", qop="auth"`,
			Challenge{Realm: "sipua.test", Nonce: "Z2VuZXJhdGVk", QOP: []string{"auth"}}},
		{"all params, odd spacing and case", `dIgEsT REALM = "r" ,nonce="n",stale=TRUE, domain="sip:a sip:b",` +
			` charset=UTF-8, userhash=true, algorithm="MD5-sess", qop=auth, x-ext="ignored", ext2=tok`,
			Challenge{Realm: "r", Nonce: "n", Stale: true, Domain: "sip:a sip:b", Charset: "UTF-8", Userhash: true,
				Algorithm: "MD5-sess", QOP: []string{"auth"}}},
		{"quoted pair", `Digest realm="a \"quoted\" \\ realm", nonce="n"`,
			Challenge{Realm: `a "quoted" \ realm`, Nonce: "n"}},
		{"empty values", `Digest realm="", nonce="", stale=false`, Challenge{}},
		{"unquoted realm", `Digest realm=example.com, nonce=abc/def==`, Challenge{Realm: "example.com", Nonce: "abc/def=="}},
		{"empty qop", `Digest realm="r", nonce="n", qop=""`, Challenge{Realm: "r", Nonce: "n", QOP: []string{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChallenge(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			// String round trip.
			again, err := ParseChallenge(got.String())
			require.NoError(t, err, got.String())
			assert.Equal(t, got, again)
		})
	}
}

func TestParseChallengeErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{``, ErrMalformed},
		{`   `, ErrMalformed},
		{`Digest`, ErrMalformed},
		{`Digest realm="r"`, ErrMalformed},
		{`Digest nonce="n"`, ErrMalformed},
		{`Digest realm="r", nonce="n", realm="s"`, ErrMalformed},
		{`Digest realm="r" nonce="n"`, ErrMalformed},
		{`Digest realm="r, nonce="n"`, ErrMalformed},
		{`Digest realm="r", nonce="n\`, ErrMalformed},
		{`realm="r", nonce="n"`, ErrMalformed},
		{`Digest realm="r", nonce="a` + "\r\n" + `Via: x"`, ErrMalformed},
		{`Digest realm="r", nonce=a` + "\x00", ErrMalformed},
		{`Digest realm="r", nonce="n", Digest realm="s", nonce="m"`, ErrMalformed},
		{`Digest abc==`, ErrMalformed},
		{`Digest @`, ErrMalformed},
		{`Basic realm="WallyWorld"`, ErrUnsupported},
		{`NoOneKnowsThisScheme opaque-data=here`, ErrUnsupported},
		{`Bearer abc/def==`, ErrUnsupported},
	} {
		_, err := ParseChallenge(tc.in)
		assert.ErrorIs(t, err, tc.want, "%q", tc.in)
	}
}

// TestParseChallenges reads every challenge of a response: several
// fields, several challenges in one field, both kinds, other schemes
// skipped, and broken values reported alongside the good ones.
func TestParseChallenges(t *testing.T) {
	req := newRequest("INVITE", "sip:bob@biloxi.com", "c1", 1)
	resp := challenge(req, 401,
		"WWW-Authenticate", `Digest realm="a", nonce="1", algorithm=MD5, Digest realm="a", nonce="1", algorithm=SHA-256`,
		"Proxy-Authenticate", `Basic realm="x", Digest realm="p", nonce="2"`,
		"www-authenticate", `Digest realm="b", nonce="3"`,
		"WWW-Authenticate", `Digest realm="broken`,
	)
	chs, err := ParseChallenges(resp)
	assert.ErrorIs(t, err, ErrMalformed)
	assert.Equal(t, []Challenge{
		{Realm: "a", Nonce: "1", Algorithm: "MD5"},
		{Realm: "a", Nonce: "1", Algorithm: "SHA-256"},
		{Realm: "p", Nonce: "2", Proxy: true},
		{Realm: "b", Nonce: "3"},
	}, chs)
}
