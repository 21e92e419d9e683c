package digest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sipua/sip/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// send runs one new request as a UA does: Preauthorize, then answer
// challenges with Authorize. It returns the number of requests sent
// (transactions) and the final response code.
func send(t *testing.T, c *Client, req *message.Request, servers ...*Server) (int, int, error) {
	t.Helper()
	if _, err := c.Preauthorize(req); err != nil {
		return 0, 0, err
	}
	sent, resp, err := run(c, req, false, servers...)
	if resp == nil {
		return sent, 0, err
	}
	return sent, resp.StatusCode, err
}

// TestPreauthorizeNonceCount reuses one nonce for refreshes: nc counts
// up as 8 hex digits, the cnonce is new each time, and the server accepts
// each refresh in one transaction.
func TestPreauthorizeNonceCount(t *testing.T) {
	s := newServer(t, ServerOptions{Realm: "biloxi.com", Algorithms: []string{"SHA-256"}})
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	sent, code, err := send(t, c, newRequest("REGISTER", "sip:biloxi.com", "reg", 1), s)
	require.NoError(t, err)
	require.Equal(t, 200, code)
	require.Equal(t, 2, sent, "the first REGISTER is challenged")

	var nonce string
	cnonces := map[string]bool{}
	for i := 2; i <= 20; i++ {
		req := newRequest("REGISTER", "sip:biloxi.com", "reg", uint32(2*i))
		ok, err := c.Preauthorize(req)
		require.NoError(t, err)
		require.True(t, ok)
		v := headerValues(&req.Header, "Authorization")
		require.Len(t, v, 1)
		p := params(t, v[0])
		assert.Equal(t, fmt.Sprintf("%08x", i), p["nc"])
		assert.Len(t, p["nc"], 8)
		assert.Equal(t, "auth", p["qop"])
		if nonce == "" {
			nonce = p["nonce"]
		}
		assert.Equal(t, nonce, p["nonce"], "the nonce is reused")
		assert.False(t, cnonces[p["cnonce"]], "a fresh cnonce each time")
		cnonces[p["cnonce"]] = true
		n, code, err := send(t, c, req, s) // already preauthorized: no second header
		require.NoError(t, err)
		assert.Equal(t, 200, code)
		assert.Equal(t, 1, n, "refresh %d in one transaction", i)
		assert.Len(t, headerValues(&req.Header, "Authorization"), 1)
	}
}

// TestPreauthorizeScope: only the Request-URIs answered before, only the
// realm's kind, never ACK or CANCEL, and only for qop=auth.
func TestPreauthorizeScope(t *testing.T) {
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	reg := newRequest("REGISTER", "sip:biloxi.com", "sc", 1)
	n := next(reg)
	require.NoError(t, c.Authorize(n, challenge(reg, 401, "WWW-Authenticate", `Digest realm="biloxi.com", nonce="a", qop="auth"`)))

	other := newRequest("INVITE", "sip:carol@biloxi.com", "sc2", 1)
	ok, err := c.Preauthorize(other)
	require.NoError(t, err)
	assert.False(t, ok, "another Request-URI gets nothing")
	assert.Empty(t, headerValues(&other.Header, "Authorization"))

	for _, m := range []string{"ACK", "CANCEL"} {
		r := newRequest(m, "sip:biloxi.com", "sc3", 1)
		ok, err := c.Preauthorize(r)
		require.NoError(t, err)
		assert.False(t, ok, m)
	}

	// A proxy's challenge is answered with Proxy-Authorization only.
	inv := newRequest("MESSAGE", "sip:carol@chicago.com", "sc4", 1)
	n = next(inv)
	require.NoError(t, c.Authorize(n, challenge(inv, 407, "Proxy-Authenticate", `Digest realm="chicago.com", nonce="p", qop="auth"`)))
	again := newRequest("MESSAGE", "sip:carol@chicago.com", "sc5", 1)
	ok, err = c.Preauthorize(again)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Empty(t, headerValues(&again.Header, "Authorization"))
	pa := headerValues(&again.Header, "Proxy-Authorization")
	require.Len(t, pa, 1)
	assert.Equal(t, "00000002", params(t, pa[0])["nc"])

	// Existing credentials for the realm are left alone.
	ok, err = c.Preauthorize(again)
	require.NoError(t, err)
	assert.False(t, ok)

	// No qop (RFC 2069) or qop=auth-int: no reuse.
	for i, ch := range []string{`Digest realm="x.com", nonce="b"`, `Digest realm="y.com", nonce="c", qop="auth-int"`} {
		c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
		r := newRequest("REGISTER", "sip:x.com", "q", 1)
		require.NoError(t, c.Authorize(next(r), challenge(r, 401, "WWW-Authenticate", ch)), i)
		ok, err := c.Preauthorize(newRequest("REGISTER", "sip:x.com", "q", 3))
		require.NoError(t, err)
		assert.False(t, ok, ch)
	}
}

// TestPreauthorizeStale: a nonce the server calls stale, or one it
// refuses outright, falls back to answering the new challenge (two
// transactions, the request not lost, no ErrAuthFailed); a wrong
// password is still refused after one answer.
func TestPreauthorizeStale(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newServer(t, ServerOptions{Realm: "biloxi.com", NonceLifetime: time.Minute, Now: func() time.Time { return now }})
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	sent, code, err := send(t, c, newRequest("REGISTER", "sip:biloxi.com", "st", 1), s)
	require.NoError(t, err)
	require.Equal(t, 200, code)
	require.Equal(t, 2, sent)

	now = now.Add(2 * time.Minute) // the nonce expires
	req := newRequest("REGISTER", "sip:biloxi.com", "st", 10)
	sent, code, err = send(t, c, req, s)
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.Equal(t, 2, sent, "stale: one more round")

	// The new nonce is reused again.
	sent, code, err = send(t, c, newRequest("REGISTER", "sip:biloxi.com", "st", 20), s)
	require.NoError(t, err)
	assert.Equal(t, 200, code)
	assert.Equal(t, 1, sent)

	// A server that forgot its nonces (new key) and challenges without
	// stale=true: the preemptive credentials do not count as a wrong
	// password.
	s2 := newServer(t, ServerOptions{Realm: "biloxi.com", Now: func() time.Time { return now }})
	req = newRequest("REGISTER", "sip:biloxi.com", "st", 30)
	ok, err := c.Preauthorize(req)
	require.NoError(t, err)
	require.True(t, ok)
	resp := challenge(req, 401)
	s2.Challenge(resp, false)
	n := next(req)
	require.NoError(t, c.Authorize(n, resp), "refused preemptive credentials are not a wrong password")
	_, err = s2.Verify(n)
	require.NoError(t, err)

	// The password changed on the server: preemptive credentials refused,
	// the answer to the new challenge refused: ErrAuthFailed, no loop.
	wrong := NewClient(Credentials{Username: "bob", Password: "old"})
	r := newRequest("REGISTER", "sip:biloxi.com", "wp", 1)
	require.NoError(t, wrong.Authorize(next(r), challenge(r, 401, "WWW-Authenticate", `Digest realm="biloxi.com", nonce="a", qop="auth"`)))
	sent, _, err = send(t, wrong, newRequest("REGISTER", "sip:biloxi.com", "wp", 5), s)
	assert.True(t, errors.Is(err, ErrAuthFailed), "%v", err)
	assert.Equal(t, 2, sent)
}

// TestPreauthorizeNonceCountOrder: a refused nonce count (a replay as
// the server sees it) falls back to the challenge too.
func TestPreauthorizeNonceCountOrder(t *testing.T) {
	s := newServer(t, ServerOptions{Realm: "biloxi.com"})
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	_, _, err := send(t, c, newRequest("REGISTER", "sip:biloxi.com", "o", 1), s)
	require.NoError(t, err)
	a := newRequest("REGISTER", "sip:biloxi.com", "o", 3)
	b := newRequest("REGISTER", "sip:biloxi.com", "o", 4)
	_, err = c.Preauthorize(a)
	require.NoError(t, err)
	_, err = c.Preauthorize(b)
	require.NoError(t, err)
	// b (nc=3) overtakes a (nc=2): a is a replay for the server.
	sent, code, err := send(t, c, b, s)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 200}, []int{sent, code})
	sent, code, err = send(t, c, a, s)
	require.NoError(t, err)
	assert.Equal(t, []int{2, 200}, []int{sent, code})
}

// TestPreauthorizeLookupError: a failing credentials lookup adds nothing
// and says why.
func TestPreauthorizeLookupError(t *testing.T) {
	boom := errors.New("vault sealed")
	fail := false
	c := NewClientFunc(func(string) (Credentials, error) {
		if fail {
			return Credentials{}, boom
		}
		return Credentials{Username: "bob", Password: "zanzibar"}, nil
	})
	r := newRequest("REGISTER", "sip:biloxi.com", "le", 1)
	require.NoError(t, c.Authorize(next(r), challenge(r, 401, "WWW-Authenticate", `Digest realm="biloxi.com", nonce="a", qop="auth"`)))
	fail = true
	req := newRequest("REGISTER", "sip:biloxi.com", "le", 3)
	ok, err := c.Preauthorize(req)
	assert.ErrorIs(t, err, boom)
	assert.False(t, ok)
	assert.Empty(t, headerValues(&req.Header, "Authorization"))
	_, err = c.Preauthorize(nil)
	assert.NoError(t, err)
	_, err = c.Preauthorize(&message.Request{Method: "REGISTER", URI: message.MustParseURI("sip:biloxi.com")})
	assert.ErrorIs(t, err, ErrMalformed)
}

// TestPreauthorizeScopeBounded: a realm remembers at most four
// Request-URIs.
func TestPreauthorizeScopeBounded(t *testing.T) {
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	for i := range 10 {
		uri := fmt.Sprintf("sip:u%d@biloxi.com", i)
		r := newRequest("MESSAGE", uri, "b", uint32(i*2+1))
		require.NoError(t, c.Authorize(next(r), challenge(r, 407, "Proxy-Authenticate", `Digest realm="biloxi.com", nonce="a", qop="auth"`)))
	}
	c.mu.Lock()
	for _, st := range c.realms {
		assert.Len(t, st.uris, maxScopeURIs)
	}
	c.mu.Unlock()
	ok, _ := c.Preauthorize(newRequest("MESSAGE", "sip:u0@biloxi.com", "b", 99))
	assert.False(t, ok, "the oldest URI is forgotten")
	ok, _ = c.Preauthorize(newRequest("MESSAGE", "sip:u9@biloxi.com", "b", 99))
	assert.True(t, ok)
}
