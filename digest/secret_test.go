package digest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sipua/sip/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecretsNeverPrinted formats credentials, clients, servers and the
// errors of every failure path with many verbs and checks that neither
// the password, nor an HA1, nor the server key shows up.
func TestSecretsNeverPrinted(t *testing.T) {
	const (
		password = "Pa55-w0rd-never-shown"
		ha1      = "0123456789abcdef0123456789abcdef" // MD5-sized, for the HA1 callback
		key      = "server-hmac-key-never-shown"
	)
	secrets := []string{password, ha1, key, hex.EncodeToString([]byte(password)), hex.EncodeToString([]byte(key)), strings.ToUpper(ha1)}

	creds := Credentials{Username: "bob", Password: password}
	credsHA1 := Credentials{Username: "bob", HA1: func(string, string) (string, error) { return ha1, nil }}
	c := NewClient(creds)
	s := newServer(t, ServerOptions{Realm: "biloxi.com", Key: []byte(key), Lookup: func(string) (Credentials, bool) { return creds, true }})

	values := []any{creds, &creds, credsHA1, c, s, struct{ C Credentials }{creds}, []Credentials{creds}, map[string]Credentials{"x": creds}}

	// Errors of every kind, from client and server.
	var errs []error
	wrong := NewClient(Credentials{Username: "bob", Password: password + "-wrong"})
	_, _, err := run(wrong, newRequest("REGISTER", "sip:biloxi.com", "sec1", 1), false, s)
	require.ErrorIs(t, err, ErrAuthFailed)
	errs = append(errs, err)
	req := newRequest("REGISTER", "sip:biloxi.com", "sec2", 1)
	for _, ch := range []string{`Digest realm="r", nonce="n", algorithm=SHA-256`, `Digest realm="r`, `Basic realm="r"`} {
		bad := NewClient(Credentials{Username: "bob", HA1: func(string, string) (string, error) { return ha1, nil }})
		errs = append(errs, bad.Authorize(next(req), challenge(req, 401, "WWW-Authenticate", ch)))
	}
	failing := NewClient(Credentials{Username: "bob", HA1: func(string, string) (string, error) { return "", errors.New("store down") }})
	errs = append(errs, failing.Authorize(next(req), challenge(req, 401, "WWW-Authenticate", `Digest realm="r", nonce="n"`)))
	good := authorized(t, NewClient(creds), s, "REGISTER", "sip:biloxi.com", "sec3")
	for _, edit := range []func(*message.Request){
		func(r *message.Request) {},
		func(r *message.Request) { r.URI = message.MustParseURI("sip:elsewhere.com") },
		func(r *message.Request) { r.Method = "INVITE" },
		func(r *message.Request) { r.Header.Del("Authorization") },
	} {
		r := good.Clone()
		edit(r)
		if _, err := s.Verify(r); err != nil {
			errs = append(errs, err)
		}
	}
	for _, e := range errs {
		require.Error(t, e)
		values = append(values, e)
	}

	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
			out := fmt.Sprintf(verb, v)
			for _, secret := range secrets {
				assert.NotContains(t, out, secret, "%s of %T", verb, v)
			}
		}
	}
	assert.Equal(t, `digest.Credentials{Username: "bob", Password: <redacted>}`, fmt.Sprintf("%+v", creds))
	assert.Equal(t, `digest.Credentials{Username: "bob", HA1: <set>}`, fmt.Sprintf("%#v", credsHA1))
}
