package digest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sipua/sip/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// authorized returns a request to uri answered by c for one challenge of s.
func authorized(t *testing.T, c *Client, s *Server, method, uri, callID string) *message.Request {
	t.Helper()
	req := newRequest(method, uri, callID, 1)
	resp := serve(req, false, s)
	require.NotEqual(t, 200, resp.StatusCode)
	n := next(req)
	require.NoError(t, c.Authorize(n, resp))
	return n
}

func TestServerChallenge(t *testing.T) {
	s := newServer(t, ServerOptions{Realm: "biloxi.com", Opaque: "xyz", Algorithms: []string{"SHA-512-256", "SHA-256", "MD5"}, QOP: []string{"auth", "auth-int"}})
	resp := message.NewResponse(newRequest("REGISTER", "sip:biloxi.com", "sc", 1), 401, "", "")
	s.Challenge(resp, true)
	chs, err := ParseChallenges(resp)
	require.NoError(t, err)
	require.Len(t, chs, 3)
	for i, alg := range []string{"SHA-512-256", "SHA-256", "MD5"} {
		assert.Equal(t, alg, chs[i].Algorithm)
		assert.Equal(t, "biloxi.com", chs[i].Realm)
		assert.Equal(t, "xyz", chs[i].Opaque)
		assert.Equal(t, []string{"auth", "auth-int"}, chs[i].QOP)
		assert.True(t, chs[i].Stale)
		assert.Equal(t, chs[0].Nonce, chs[i].Nonce)
	}
	resp2 := message.NewResponse(newRequest("REGISTER", "sip:biloxi.com", "sc", 1), 401, "", "")
	s.Challenge(resp2, false)
	ch, err := ParseChallenge(resp2.Header.Get("WWW-Authenticate"))
	require.NoError(t, err)
	assert.NotEqual(t, chs[0].Nonce, ch.Nonce, "a new nonce each time")
	assert.False(t, ch.Stale)

	p := newServer(t, ServerOptions{Realm: "atlanta.com", Proxy: true, QOP: []string{}})
	resp3 := message.NewResponse(newRequest("INVITE", "sip:bob@biloxi.com", "sc", 1), 407, "", "")
	p.Challenge(resp3, false)
	assert.Empty(t, headerValues(&resp3.Header, "WWW-Authenticate"))
	ch, err = ParseChallenge(resp3.Header.Get("Proxy-Authenticate"))
	require.NoError(t, err)
	assert.Nil(t, ch.QOP, "no qop offered")
}

func TestServerVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	s := newServer(t, ServerOptions{Realm: "biloxi.com", Opaque: "op", Now: clock})
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})

	req := authorized(t, c, s, "REGISTER", "sip:biloxi.com", "sv1")
	user, err := s.Verify(req)
	require.NoError(t, err)
	assert.Equal(t, "bob", user)

	// Replay of the same nonce count.
	_, err = s.Verify(req)
	assert.ErrorIs(t, err, ErrStale)

	// Edited copies of the good credentials.
	good := req.Header.Get("Authorization")
	edit := func(from, to string) *message.Request {
		r := req.Clone()
		r.Header.Set("Authorization", strings.Replace(good, from, to, 1))
		return r
	}
	p := params(t, good)
	for _, tc := range []struct {
		name     string
		req      *message.Request
		want     error
		wantUser string
	}{
		{"next nc", nil, nil, "bob"},
		{"wrong response", edit(p["response"], strings.Repeat("0", len(p["response"]))), ErrAuthFailed, ""},
		{"response not hex", edit(p["response"], "zz"), ErrMalformed, ""},
		{"wrong opaque", edit(`opaque="op"`, `opaque="other"`), ErrAuthFailed, ""},
		{"other uri", edit(`uri="sip:biloxi.com"`, `uri="sip:atlanta.com"`), ErrAuthFailed, ""},
		{"uri written differently", edit(`uri="sip:biloxi.com"`, `uri="sip:BILOXI.com"`), ErrAuthFailed, ""}, // the digest covers the text
		{"unknown user", edit(`username="bob"`, `username="mallory"`), ErrAuthFailed, ""},
		{"algorithm not offered", edit(`algorithm=SHA-256`, `algorithm=SHA-512-256`), ErrUnsupported, ""},
		{"unknown algorithm", edit(`algorithm=SHA-256`, `algorithm=SHA-1`), ErrUnsupported, ""},
		{"userhash", edit(`opaque="op"`, `opaque="op", userhash=true`), ErrUnsupported, ""},
		{"qop not offered", edit(`qop=auth`, `qop=auth-int`), ErrAuthFailed, ""},
		{"no qop", edit(`qop=auth`, `x=y`), ErrAuthFailed, ""},
		{"bad nc", edit(`nc=00000001`, `nc=1`), ErrMalformed, ""},
		{"zero nc", edit(`nc=00000001`, `nc=00000000`), ErrMalformed, ""},
		{"no cnonce", edit(`cnonce=`, `x=`), ErrMalformed, ""},
		{"repeated param", edit(`opaque="op"`, `opaque="op", nonce="x"`), ErrMalformed, ""},
		{"missing uri", edit(`uri=`, `x=`), ErrMalformed, ""},
		{"forged nonce", edit(p["nonce"], "A"+p["nonce"][1:]), ErrAuthFailed, ""}, // the response no longer matches
		{"other realm", edit(`realm="biloxi.com"`, `realm="atlanta.com"`), ErrNoCredentials, ""},
		{"unparseable", edit(`Digest `, `Digest "`), ErrMalformed, ""},
	} {
		r := tc.req
		if r == nil {
			// The client's next answer with the same nonce (nc=2).
			r = next(req)
			cs, _ := r.Header.CSeq()
			c.mu.Lock()
			st := c.realms[realmKey{realm: "biloxi.com"}]
			c.mu.Unlock()
			r.Header.Del("Authorization")
			require.NoError(t, c.Authorize(r, challenge(newRequest("REGISTER", "sip:biloxi.com", "elsewhere", cs.Seq-1), 401,
				"WWW-Authenticate", st.ch.String())))
		}
		user, err := s.Verify(r)
		if tc.want == nil {
			assert.NoError(t, err, tc.name)
		} else {
			assert.ErrorIs(t, err, tc.want, tc.name)
		}
		assert.Equal(t, tc.wantUser, user, tc.name)
	}

	// No credentials; RFC 4475 regaut01's unknown scheme is none either.
	_, err = s.Verify(newRequest("REGISTER", "sip:biloxi.com", "sv2", 1))
	assert.ErrorIs(t, err, ErrNoCredentials)
	raw, err := os.ReadFile("../testdata/rfc4475/regaut01.dat")
	require.NoError(t, err)
	regaut, err := message.ParseRequest(raw)
	require.NoError(t, err)
	_, err = s.Verify(regaut)
	assert.ErrorIs(t, err, ErrNoCredentials)

	// Expiry: right password, old nonce.
	req = authorized(t, c, s, "REGISTER", "sip:biloxi.com", "sv3")
	now = now.Add(5*time.Minute + time.Second)
	_, err = s.Verify(req)
	assert.ErrorIs(t, err, ErrStale)

	// A nonce from another server (another key) is stale, not wrong.
	other := newServer(t, ServerOptions{Realm: "biloxi.com", Opaque: "op", Now: clock})
	req = authorized(t, c, other, "REGISTER", "sip:biloxi.com", "sv4")
	_, err = s.Verify(req)
	assert.ErrorIs(t, err, ErrStale)
	// … unless they share the key.
	k1 := newServer(t, ServerOptions{Realm: "biloxi.com", Key: []byte("shared"), Now: clock})
	k2 := newServer(t, ServerOptions{Realm: "biloxi.com", Key: []byte("shared"), Now: clock})
	_, err = k2.Verify(authorized(t, c, k1, "REGISTER", "sip:biloxi.com", "sv5"))
	assert.NoError(t, err)
}

// TestServerHA1 checks a server that stores HA1 values only.
func TestServerHA1(t *testing.T) {
	s := newServer(t, ServerOptions{Realm: "biloxi.com", Algorithms: []string{"MD5"}, Lookup: func(u string) (Credentials, bool) {
		return Credentials{HA1: func(realm, alg string) (string, error) {
			if u != "bob" || realm != "biloxi.com" || alg != "MD5" {
				return "", fmt.Errorf("no HA1")
			}
			return "12af60467a33e8518da5c68bbff12b11", nil
		}}, true
	}})
	_, resp, err := run(NewClient(Credentials{Username: "bob", Password: "zanzibar"}), newRequest("REGISTER", "sip:biloxi.com", "ha1", 1), false, s)
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
}

// TestServerNoQOP checks the RFC 2069 mode.
func TestServerNoQOP(t *testing.T) {
	s := newServer(t, ServerOptions{Realm: "biloxi.com", QOP: []string{}, Algorithms: []string{"MD5"}})
	c := NewClient(Credentials{Username: "bob", Password: "zanzibar"})
	req := authorized(t, c, s, "REGISTER", "sip:biloxi.com", "nq")
	p := params(t, req.Header.Get("Authorization"))
	assert.NotContains(t, p, "qop")
	_, err := s.Verify(req)
	require.NoError(t, err)
}

// TestServerPrune fills the nonce-count memory and checks that it stays
// bounded and that forgotten nonces count as stale.
func TestServerPrune(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newServer(t, ServerOptions{Realm: "biloxi.com", Now: func() time.Time { return now }})
	var first string
	for i := range maxNonces + 10 {
		now = now.Add(time.Millisecond)
		n := s.newNonce()
		if i == 0 {
			first = n
		}
		exp, ok := s.checkNonce(n)
		require.True(t, ok)
		require.NoError(t, s.count(n, 1, exp, now.UnixNano()))
	}
	assert.LessOrEqual(t, len(s.counts), maxNonces)
	exp, _ := s.checkNonce(first)
	assert.ErrorIs(t, s.count(first, 2, exp, now.UnixNano()), ErrStale)
}

func TestNewServerErrors(t *testing.T) {
	for _, o := range []ServerOptions{
		{Realm: "r"}, // no lookup
		{Realm: "r", Lookup: lookupUser, Algorithms: []string{"SHA-1"}},
		{Realm: "r", Lookup: lookupUser, Algorithms: []string{""}},
		{Realm: "r", Lookup: lookupUser, Algorithms: []string{}},
		{Realm: "r", Lookup: lookupUser, QOP: []string{"auth-conf"}},
		{Realm: "r", Lookup: lookupUser, QOP: []string{}, Algorithms: []string{"MD5-sess"}},
	} {
		_, err := NewServer(o)
		assert.ErrorIs(t, err, ErrUnsupported, "%v", o.Algorithms)
	}
	_, err := NewServer(ServerOptions{Realm: "r\r\nX: y", Lookup: lookupUser})
	assert.ErrorIs(t, err, ErrMalformed)
}
