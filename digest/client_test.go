package digest

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sipua/sip/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var users = map[string]string{"alice": "alice-secret", "bob": "zanzibar"}

func lookupUser(u string) (Credentials, bool) {
	pw, ok := users[u]
	return Credentials{Password: pw}, ok
}

func newServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	if opts.Lookup == nil {
		opts.Lookup = lookupUser
	}
	s, err := NewServer(opts)
	require.NoError(t, err)
	return s
}

// serve answers req as a chain of authenticating elements would: the
// first server whose check fails challenges. With aggregate set, every
// failing server adds its challenges to one response (a forking proxy's
// aggregation, RFC 3261 §16.7).
func serve(req *message.Request, aggregate bool, servers ...*Server) *message.Response {
	var resp *message.Response
	for _, s := range servers {
		_, err := s.Verify(req)
		if err == nil {
			continue
		}
		if resp == nil {
			code := 401
			if s.opts.Proxy {
				code = 407
			}
			resp = message.NewResponse(req, code, "", "")
		}
		s.Challenge(resp, errors.Is(err, ErrStale))
		if !aggregate {
			break
		}
	}
	if resp == nil {
		resp = message.NewResponse(req, 200, "", "")
	}
	return resp
}

// run sends req and answers challenges as a UA does, building each new
// request from the previous one, until a final non-challenge response or
// an error. It returns the number of requests sent.
func run(c *Client, req *message.Request, aggregate bool, servers ...*Server) (int, *message.Response, error) {
	for sent := 1; sent <= 10; sent++ {
		resp := serve(req, aggregate, servers...)
		if resp.StatusCode != 401 && resp.StatusCode != 407 {
			return sent, resp, nil
		}
		n := next(req)
		if err := c.Authorize(n, resp); err != nil {
			return sent, resp, err
		}
		req = n
	}
	return 10, nil, errors.New("loop")
}

// TestRoundTrip answers a Server's challenges with a Client for every
// algorithm and qop, as registrar (401) and as proxy (407).
func TestRoundTrip(t *testing.T) {
	algs := []string{"MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess"}
	for _, alg := range algs {
		for _, qop := range [][]string{nil, {"auth-int"}, {}} {
			for _, proxy := range []bool{false, true} {
				if len(qop) == 0 && qop != nil && len(alg) > 5 && alg[len(alg)-5:] == "-sess" {
					continue // -sess needs a qop
				}
				t.Run(fmt.Sprintf("%s/%q/proxy=%v", alg, qop, proxy), func(t *testing.T) {
					s := newServer(t, ServerOptions{Realm: "biloxi.com", Algorithms: []string{alg}, QOP: qop, Proxy: proxy, Opaque: "op/aque"})
					c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
					req := newRequest("INVITE", "sip:carol@chicago.com", "rt-"+alg, 1)
					req.Body = []byte("v=0\r\n")
					sent, resp, err := run(c, req, false, s)
					require.NoError(t, err)
					assert.Equal(t, 200, resp.StatusCode)
					assert.Equal(t, 2, sent)
				})
			}
		}
	}
}

// TestHeaderNames checks that a 401 is answered with Authorization and a
// 407 with Proxy-Authorization, and that a 401 carrying both kinds (an
// aggregated response) gets both.
func TestHeaderNames(t *testing.T) {
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	req := newRequest("REGISTER", "sip:biloxi.com", "hn", 1)

	n := next(req)
	require.NoError(t, c.Authorize(n, challenge(req, 401, "WWW-Authenticate", `Digest realm="biloxi.com", nonce="a", qop="auth"`)))
	assert.Len(t, headerValues(&n.Header, "Authorization"), 1)
	assert.Empty(t, headerValues(&n.Header, "Proxy-Authorization"))

	n = next(req)
	require.NoError(t, c.Authorize(n, challenge(req, 407, "Proxy-Authenticate", `Digest realm="biloxi.com", nonce="a", qop="auth"`)))
	assert.Empty(t, headerValues(&n.Header, "Authorization"))
	assert.Len(t, headerValues(&n.Header, "Proxy-Authorization"), 1)

	n = next(req)
	require.NoError(t, c.Authorize(n, challenge(req, 401,
		"WWW-Authenticate", `Digest realm="biloxi.com", nonce="a", qop="auth"`,
		"Proxy-Authenticate", `Digest realm="atlanta.com", nonce="b", qop="auth"`)))
	assert.Len(t, headerValues(&n.Header, "Authorization"), 1)
	assert.Len(t, headerValues(&n.Header, "Proxy-Authorization"), 1)
}

// TestStrongestAlgorithm checks that of several challenges for one realm
// the strongest supported one is answered, whatever their order.
func TestStrongestAlgorithm(t *testing.T) {
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	req := newRequest("REGISTER", "sip:biloxi.com", "sa", 1)
	for _, order := range [][]string{
		{"MD5", "SHA-256", "SHA-512-256", "SHA-1"},
		{"SHA-1", "SHA-512-256", "SHA-256", "MD5"},
		{"SHA-256", "UNKNOWN", "SHA-512-256-sess", "MD5-sess"},
	} {
		var fields []string
		for _, a := range order {
			fields = append(fields, "WWW-Authenticate", `Digest realm="biloxi.com", nonce="n-`+a+`", qop="auth", algorithm=`+a)
		}
		n := next(req)
		require.NoError(t, c.Authorize(n, challenge(req, 401, fields...)))
		v := headerValues(&n.Header, "Authorization")
		require.Len(t, v, 1)
		p := params(t, v[0])
		assert.Contains(t, []string{"SHA-512-256", "SHA-512-256-sess"}, p["algorithm"], order)
		assert.Equal(t, "n-"+p["algorithm"], p["nonce"])
	}

	// Only MD5 and an unknown algorithm: MD5.
	n := next(req)
	require.NoError(t, c.Authorize(n, challenge(req, 401,
		"WWW-Authenticate", `Digest realm="biloxi.com", nonce="x", algorithm=SHA-1`,
		"WWW-Authenticate", `Digest realm="biloxi.com", nonce="y"`)))
	p := params(t, n.Header.Get("Authorization"))
	assert.Equal(t, "y", p["nonce"])
	assert.NotContains(t, p, "algorithm")
}

// TestEveryRealm checks that every challenged realm is answered, one
// header field each, and that servers chained behind each other accept
// the result, whether they challenge one at a time (credentials carried
// over) or all at once (aggregated).
func TestEveryRealm(t *testing.T) {
	req := newRequest("INVITE", "sip:carol@chicago.com", "er", 1)
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	n := next(req)
	require.NoError(t, c.Authorize(n, challenge(req, 401,
		"WWW-Authenticate", `Digest realm="a.example", nonce="1", algorithm=MD5, qop="auth"`,
		"WWW-Authenticate", `Digest realm="b.example", nonce="2", algorithm=SHA-256, qop="auth"`,
		"WWW-Authenticate", `Digest realm="c.example", nonce="3", algorithm=SHA-1, qop="auth"`, // unsupported: skipped
		"Proxy-Authenticate", `Digest realm="a.example", nonce="4", qop="auth"`,
	)))
	var realms []string
	for _, v := range headerValues(&n.Header, "Authorization") {
		realms = append(realms, params(t, v)["realm"])
	}
	assert.Equal(t, []string{"a.example", "b.example"}, realms)
	require.Len(t, headerValues(&n.Header, "Proxy-Authorization"), 1)
	assert.Equal(t, "4", params(t, n.Header.Get("Proxy-Authorization"))["nonce"])

	for _, aggregate := range []bool{false, true} {
		t.Run(fmt.Sprintf("aggregate=%v", aggregate), func(t *testing.T) {
			outbound := newServer(t, ServerOptions{Realm: "atlanta.com", Proxy: true, Algorithms: []string{"MD5"}})
			edge := newServer(t, ServerOptions{Realm: "chicago.com", Proxy: true, Algorithms: []string{"SHA-512-256"}})
			uas := newServer(t, ServerOptions{Realm: "carol.example", Algorithms: []string{"SHA-256"}, QOP: []string{"auth-int"}})
			c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
			sent, resp, err := run(c, newRequest("INVITE", "sip:carol@chicago.com", fmt.Sprint("chain", aggregate), 1), aggregate, outbound, edge, uas)
			require.NoError(t, err)
			assert.Equal(t, 200, resp.StatusCode)
			if aggregate {
				assert.Equal(t, 2, sent)
			} else {
				assert.Equal(t, 4, sent)
			}

			// A UA that builds each new request from the original one (no
			// credentials) gets the earlier realms' credentials back.
			c = NewClient(Credentials{Username: "bob", Password: "zanzibar"})
			orig := newRequest("INVITE", "sip:carol@chicago.com", fmt.Sprint("fresh", aggregate), 1)
			req := orig
			for i := 0; ; i++ {
				require.Less(t, i, 5)
				resp := serve(req, aggregate, outbound, edge, uas)
				if resp.StatusCode == 200 {
					break
				}
				n := orig.Clone()
				n.Header.Set("CSeq", fmt.Sprintf("%d INVITE", i+2))
				require.NoError(t, c.Authorize(n, resp))
				req = n
			}
			assert.Len(t, headerValues(&req.Header, "Proxy-Authorization"), 2)
			assert.Len(t, headerValues(&req.Header, "Authorization"), 1)
		})
	}
}

// TestReplacesOldCredentials checks that credentials a copied request
// already carries for a challenged realm are replaced, not duplicated,
// and that other values are kept.
func TestReplacesOldCredentials(t *testing.T) {
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	req := newRequest("REGISTER", "sip:biloxi.com", "ro", 5)
	req.Header.Add("Authorization", `Digest username="bob", realm="biloxi.com", nonce="old", uri="sip:biloxi.com", response="00"`)
	req.Header.Add("Authorization", `Digest username="bob", realm="other.com", nonce="o", uri="sip:biloxi.com", response="00"`)
	n := next(req)
	require.NoError(t, c.Authorize(n, challenge(req, 401, "WWW-Authenticate", `Digest realm="biloxi.com", nonce="new"`)))
	v := headerValues(&n.Header, "Authorization")
	require.Len(t, v, 2)
	assert.Equal(t, "other.com", params(t, v[0])["realm"])
	assert.Equal(t, "new", params(t, v[1])["nonce"])
}

// TestWrongPassword checks that a wrong password fails with
// ErrAuthFailed after exactly one retry, and keeps failing for the same
// response instead of looping.
func TestWrongPassword(t *testing.T) {
	for _, proxy := range []bool{false, true} {
		s := newServer(t, ServerOptions{Realm: "biloxi.com", Proxy: proxy})
		c := NewClient(Credentials{Username: "bob", Password: "wrong"})
		sent, resp, err := run(c, newRequest("REGISTER", "sip:biloxi.com", fmt.Sprint("wp", proxy), 1), false, s)
		require.ErrorIs(t, err, ErrAuthFailed)
		assert.Equal(t, 2, sent, "one request, one retry")
		assert.Contains(t, err.Error(), `"biloxi.com"`)

		n := next(newRequest("REGISTER", "sip:biloxi.com", fmt.Sprint("wp", proxy), 2))
		require.ErrorIs(t, c.Authorize(n, resp), ErrAuthFailed, "same response again: still refused")
		assert.Empty(t, headerValues(&n.Header, "Authorization"))
	}

	// An unknown user is the same.
	s := newServer(t, ServerOptions{Realm: "biloxi.com"})
	sent, _, err := run(NewClient(Credentials{Username: "mallory", Password: "x"}), newRequest("REGISTER", "sip:biloxi.com", "wp-u", 1), false, s)
	require.ErrorIs(t, err, ErrAuthFailed)
	assert.Equal(t, 2, sent)

	// A later request of the same call (a refresh) is challenged afresh.
	good := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	req := newRequest("REGISTER", "sip:biloxi.com", "refresh", 1)
	sent, _, err = run(good, req, false, s)
	require.NoError(t, err)
	assert.Equal(t, 2, sent)
	refresh := newRequest("REGISTER", "sip:biloxi.com", "refresh", 3)
	sent, resp, err := run(good, refresh, false, s)
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, 2, sent)
}

// TestStaleRetry checks that stale=true is answered silently with the
// new nonce, that a stale challenge repeating the used nonce or coming
// too often fails, and that the nonce count restarts with a new nonce.
func TestStaleRetry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newServer(t, ServerOptions{Realm: "biloxi.com", Now: func() time.Time { return now }, NonceLifetime: time.Minute})
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	req := newRequest("REGISTER", "sip:biloxi.com", "stale", 1)
	resp := serve(req, false, s)
	require.Equal(t, 401, resp.StatusCode)
	req2 := next(req)
	require.NoError(t, c.Authorize(req2, resp))
	first := params(t, req2.Header.Get("Authorization"))

	now = now.Add(2 * time.Minute) // the nonce expires in flight
	_, err := s.Verify(req2)
	require.ErrorIs(t, err, ErrStale)
	resp2 := serve(req2, false, s)
	ch, err := ParseChallenge(resp2.Header.Get("WWW-Authenticate"))
	require.NoError(t, err)
	require.True(t, ch.Stale)
	req3 := next(req2)
	require.NoError(t, c.Authorize(req3, resp2), "stale is retried silently")
	again := params(t, req3.Header.Get("Authorization"))
	assert.NotEqual(t, first["nonce"], again["nonce"])
	assert.Equal(t, "00000001", again["nc"])
	require.Len(t, headerValues(&req3.Header, "Authorization"), 1)
	assert.Equal(t, 200, serve(req3, false, s).StatusCode)

	// stale=true with the nonce that was just used: the server makes no
	// progress, so this is a failure, not a loop.
	c2 := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	r := newRequest("REGISTER", "sip:biloxi.com", "stale2", 1)
	r2 := next(r)
	require.NoError(t, c2.Authorize(r2, challenge(r, 401, "WWW-Authenticate", `Digest realm="biloxi.com", nonce="n1", qop="auth"`)))
	require.ErrorIs(t, c2.Authorize(next(r2), challenge(r2, 401, "WWW-Authenticate", `Digest realm="biloxi.com", nonce="n1", qop="auth", stale=true`)), ErrAuthFailed)

	// Endless fresh stale nonces: at most two stale retries in a row.
	c3 := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	r = newRequest("REGISTER", "sip:biloxi.com", "stale3", 1)
	cur := next(r)
	require.NoError(t, c3.Authorize(cur, challenge(r, 401, "WWW-Authenticate", `Digest realm="biloxi.com", nonce="s0", qop="auth"`)))
	var errAt int
	for i := 1; i <= 5; i++ {
		n := next(cur)
		if err := c3.Authorize(n, challenge(cur, 401, "WWW-Authenticate", fmt.Sprintf(`Digest realm="biloxi.com", nonce="s%d", qop="auth", stale=true`, i))); err != nil {
			require.ErrorIs(t, err, ErrAuthFailed)
			errAt = i
			break
		}
		cur = n
	}
	assert.Equal(t, maxStaleRetries+1, errAt)
}

// TestNonceCount checks that nc counts uses of one nonce and restarts at
// 1 with a new one, and that each answer has a fresh cnonce.
func TestNonceCount(t *testing.T) {
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	var cnonces []string
	for i, nonce := range []string{"a", "a", "a", "b", "a"} {
		req := newRequest("MESSAGE", "sip:carol@chicago.com", fmt.Sprint("nc", i), 1)
		n := next(req)
		require.NoError(t, c.Authorize(n, challenge(req, 407, "Proxy-Authenticate", `Digest realm="r", qop="auth", nonce="`+nonce+`"`)))
		p := params(t, n.Header.Get("Proxy-Authorization"))
		assert.Equal(t, []string{"00000001", "00000002", "00000003", "00000001", "00000001"}[i], p["nc"])
		assert.NotContains(t, cnonces, p["cnonce"])
		assert.GreaterOrEqual(t, len(p["cnonce"]), 16)
		cnonces = append(cnonces, p["cnonce"])
	}
}

// TestUnsupported checks ErrUnsupported and ErrMalformed for responses
// that cannot be answered, among them the unknown scheme of RFC 4475's
// regaut01 test.
func TestUnsupported(t *testing.T) {
	raw, err := os.ReadFile("../testdata/rfc4475/regaut01.dat")
	require.NoError(t, err)
	regaut, err := message.ParseRequest(raw)
	require.NoError(t, err)
	unknown := regaut.Header.Get("Authorization")
	require.Contains(t, unknown, "NoOneKnowsThisScheme")

	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	req := newRequest("REGISTER", "sip:biloxi.com", "un", 1)
	for _, tc := range []struct {
		name string
		resp *message.Response
		want error
	}{
		{"regaut01 scheme", challenge(req, 401, "WWW-Authenticate", unknown), ErrUnsupported},
		{"basic", challenge(req, 401, "WWW-Authenticate", `Basic realm="x"`), ErrUnsupported},
		{"algorithm", challenge(req, 401, "WWW-Authenticate", `Digest realm="x", nonce="n", algorithm=SHA-1`), ErrUnsupported},
		{"qop", challenge(req, 401, "WWW-Authenticate", `Digest realm="x", nonce="n", qop="auth-conf"`), ErrUnsupported},
		{"sess without qop", challenge(req, 401, "WWW-Authenticate", `Digest realm="x", nonce="n", algorithm=MD5-sess`), ErrUnsupported},
		{"no challenge", challenge(req, 401), ErrUnsupported},
		{"only broken", challenge(req, 401, "WWW-Authenticate", `Digest realm="x`), ErrMalformed},
		{"not a challenge", challenge(req, 403, "WWW-Authenticate", `Digest realm="x", nonce="n"`), ErrMalformed},
	} {
		n := next(req)
		err := c.Authorize(n, tc.resp)
		assert.ErrorIs(t, err, tc.want, tc.name)
		assert.Empty(t, headerValues(&n.Header, "Authorization"), tc.name)
	}

	// A broken value next to a good one: the good one is answered.
	n := next(req)
	require.NoError(t, c.Authorize(n, challenge(req, 401, "WWW-Authenticate", `Digest realm="x`, "WWW-Authenticate", unknown,
		"WWW-Authenticate", `Digest realm="y", nonce="n"`)))
	assert.Len(t, headerValues(&n.Header, "Authorization"), 1)

	// Missing Call-ID or CSeq.
	bare := &message.Response{StatusCode: 401}
	bare.Header.Add("WWW-Authenticate", `Digest realm="y", nonce="n"`)
	assert.ErrorIs(t, c.Authorize(next(req), bare), ErrMalformed)
	assert.ErrorIs(t, c.Authorize(&message.Request{Method: "REGISTER"}, challenge(req, 401, "WWW-Authenticate", `Digest realm="y", nonce="n"`)), ErrMalformed)
	assert.ErrorIs(t, c.Authorize(nil, nil), ErrMalformed)

	// A username that would break the header.
	evil := NewClient(Credentials{Username: "bob\r\nVia: x", Password: "p"})
	assert.ErrorIs(t, evil.Authorize(next(req), challenge(req, 401, "WWW-Authenticate", `Digest realm="y", nonce="n"`)), ErrMalformed)
}

// TestCredentialsPerRealm checks NewClientFunc: each realm gets its own
// credentials, and a lookup error aborts with the error wrapped.
func TestCredentialsPerRealm(t *testing.T) {
	errNoAccount := errors.New("no account")
	c := NewClientFunc(func(realm string) (Credentials, error) {
		switch realm {
		case "atlanta.com":
			return Credentials{Username: "alice", Password: "alice-secret"}, nil
		case "biloxi.com":
			return Credentials{Username: "bob", Password: "zanzibar"}, nil
		}
		return Credentials{}, errNoAccount
	})
	proxy := newServer(t, ServerOptions{Realm: "atlanta.com", Proxy: true})
	registrar := newServer(t, ServerOptions{Realm: "biloxi.com"})
	_, resp, err := run(c, newRequest("REGISTER", "sip:biloxi.com", "pr", 1), true, proxy, registrar)
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)

	req := newRequest("REGISTER", "sip:biloxi.com", "pr2", 1)
	err = c.Authorize(next(req), challenge(req, 401, "WWW-Authenticate", `Digest realm="elsewhere", nonce="n"`))
	require.ErrorIs(t, err, errNoAccount)
	assert.Contains(t, err.Error(), "elsewhere")
}

// TestRealmMemoryBounded checks that a Client forgets old realms.
func TestRealmMemoryBounded(t *testing.T) {
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	for i := range 3 * maxRealms {
		req := newRequest("REGISTER", "sip:biloxi.com", "mb", uint32(i+1))
		require.NoError(t, c.Authorize(next(req), challenge(req, 401, "WWW-Authenticate", fmt.Sprintf(`Digest realm="r%d", nonce="n"`, i))))
	}
	c.mu.Lock()
	assert.Len(t, c.realms, maxRealms)
	c.mu.Unlock()
	c.Reset()
	assert.Equal(t, "digest.Client{realms: 0}", c.String())
}

// TestConcurrentUse drives one Client and one Server from several
// goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	s := newServer(t, ServerOptions{Realm: "biloxi.com"})
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				_, resp, err := run(c, newRequest("OPTIONS", "sip:biloxi.com", fmt.Sprintf("cc-%d-%d", g, i), 1), false, s)
				assert.NoError(t, err)
				assert.Equal(t, 200, resp.StatusCode)
			}
		})
	}
	wg.Wait()
}
