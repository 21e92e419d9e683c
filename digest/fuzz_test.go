package digest

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/sipua/sip/message"
)

// FuzzParseChallenge feeds arbitrary header values to the challenge
// parser (a successful parse must survive a String round trip), to a
// Client as a 401/407 challenge, and to a Server as credentials: nothing
// may panic, and what the client writes must parse again.
func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{
		`Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
		`Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, nonce="5TsQ", charset=UTF-8, userhash=true`,
		`Digest realm="r", nonce="n", algorithm=MD5-sess, qop=auth-int, stale=TRUE, domain="sip:a sip:b"`,
		`Digest realm="a", nonce="1", Digest realm="b", nonce="2", algorithm=SHA-256`,
		`Basic realm="x", Digest realm="q\"uote\\d", nonce=abc/def==`,
		`NoOneKnowsThisScheme opaque-data=here`,
		`Bearer abc/def==`,
		`Digest username="bob", realm="biloxi.com", nonce="n", uri="sip:biloxi.com", response="00000000000000000000000000000000", qop=auth, nc=00000001, cnonce="c"`,
		`Digest realm="r`,
		`,,, Digest ,`,
	} {
		f.Add(s)
	}
	srv, err := NewServer(ServerOptions{Realm: "biloxi.com", Algorithms: []string{"MD5", "SHA-256"},
		Lookup: func(string) (Credentials, bool) { return Credentials{Password: "p"}, true }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value string) {
		if ch, err := ParseChallenge(value); err == nil {
			again, err := ParseChallenge(ch.String())
			if err != nil {
				t.Fatalf("String %q of %q does not parse: %v", ch.String(), value, err)
			}
			if !reflect.DeepEqual(ch, again) {
				t.Fatalf("round trip of %q: %+v != %+v", value, ch, again)
			}
		}
		_, _ = ParseChallenges(&message.Response{})

		c := NewClient(Credentials{Username: "bob", Password: "p"})
		for i, code := range []int{401, 407} {
			req := newRequest("INVITE", "sip:bob@biloxi.com", "fuzz", uint32(i+1))
			req.Body = []byte("body")
			resp := challenge(req, code, "WWW-Authenticate", value, "Proxy-Authenticate", value)
			n := next(req)
			if err := c.Authorize(n, resp); err != nil {
				continue
			}
			for _, name := range []string{"Authorization", "Proxy-Authorization"} {
				for _, v := range headerValues(&n.Header, name) {
					if _, ok := credentialsRealm(v); !ok {
						t.Fatalf("written %s %q does not parse", name, v)
					}
				}
			}
		}

		req := newRequest("REGISTER", "sip:biloxi.com", "fuzz", 1)
		req.Header.Add("Authorization", value)
		_, _ = srv.Verify(req)
		_ = fmt.Sprint(c, srv)
	})
}
