package digest

import (
	"fmt"
	"strconv"
	"strings"
)

// Credentials are what a user agent authenticates with.
//
// They format themselves with the password and HA1 redacted, under every
// fmt verb, so a Credentials value that ends up in a log line leaks
// nothing.
type Credentials struct {
	// Username is the authentication user name (often the user part of
	// the AOR, but not necessarily).
	Username string
	// Password is the plain-text password. It is not used when HA1 is set.
	Password string
	// HA1, if set, is used instead of Password: it returns the precomputed
	// H(username:realm:password) for an algorithm (hex), so apps need not
	// keep plaintext passwords. algorithm is the hash algorithm without
	// "-sess": "MD5", "SHA-256" or "SHA-512-256" (the -sess variants are
	// derived from the same value).
	HA1 func(realm, algorithm string) (string, error)
}

// String returns a description with the secrets redacted.
func (c Credentials) String() string {
	var b strings.Builder
	b.WriteString("digest.Credentials{Username: ")
	b.WriteString(strconv.Quote(c.Username))
	if c.Password != "" {
		b.WriteString(", Password: <redacted>")
	}
	if c.HA1 != nil {
		b.WriteString(", HA1: <set>")
	}
	b.WriteByte('}')
	return b.String()
}

// GoString is String: %#v redacts the secrets too.
func (c Credentials) GoString() string { return c.String() }

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s,
// %q, %x, %d …) prints the redacted form.
func (c Credentials) Format(f fmt.State, verb rune) { writeRedacted(f, verb, c.String()) }

// writeRedacted writes s for verb: quoted for %q, as-is otherwise.
func writeRedacted(f fmt.State, verb rune, s string) {
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = f.Write([]byte(s))
}

// ha1 returns H(A1) for alg (RFC 7616 §3.4.2) for user in realm: from
// creds.HA1 when set, otherwise from the password; for the -sess
// variants it also covers nonce and cnonce. Errors never contain the
// secret.
func (c *Credentials) ha1(alg algorithm, user, realm, nonce, cnonce string) (string, error) {
	var h string
	if c.HA1 != nil {
		v, err := c.HA1(realm, alg.base)
		if err != nil {
			return "", fmt.Errorf("digest: HA1 for realm %q: %w", shorten(realm), err)
		}
		if !isHex(v, alg.hexLen()) {
			return "", fmt.Errorf("%w: HA1 for realm %q is not a %s hex digest", ErrMalformed, shorten(realm), alg.base)
		}
		h = strings.ToLower(v)
	} else {
		h = alg.digest(user, realm, c.Password)
	}
	if alg.sess {
		h = alg.digest(h, nonce, cnonce)
	}
	return h, nil
}
