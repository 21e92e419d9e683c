package digest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sipua/sip/message"
)

// Challenge is one parsed WWW-Authenticate or Proxy-Authenticate value of
// the Digest scheme (RFC 7616 §3.3, RFC 3261 §20.44).
type Challenge struct {
	// Realm is the protection space, e.g. "example.com".
	Realm string
	// Nonce is the server's nonce.
	Nonce string
	// Opaque is echoed back unchanged; empty when absent.
	Opaque string
	// Algorithm is the algorithm as the server wrote it; empty means MD5.
	Algorithm string
	// QOP lists the offered qop values ("auth", "auth-int"); nil when the
	// challenge has no qop parameter (RFC 2069 compatibility).
	QOP []string
	// Stale reports stale=true: the previous credentials were right but
	// their nonce had expired.
	Stale bool
	// Proxy reports a Proxy-Authenticate challenge (answered with
	// Proxy-Authorization). ParseChallenge leaves it false;
	// ParseChallenges sets it from the header field name.
	Proxy bool
	// Domain is the space-separated list of URIs of the protection space;
	// empty when absent.
	Domain string
	// Charset is the charset parameter (only "UTF-8" is defined); empty
	// when absent.
	Charset string
	// Userhash reports userhash=true: the server accepts a hashed username.
	Userhash bool
}

// ParseChallenge parses one Digest challenge value, e.g.
//
//	Digest realm="example.com", nonce="abc", qop="auth", algorithm=MD5
//
// A value of another scheme gives an error wrapping ErrUnsupported; a
// syntax error, several challenges in one value, or a challenge without
// realm or nonce gives one wrapping ErrMalformed.
func ParseChallenge(value string) (Challenge, error) {
	list, err := parseAuthList(value)
	if err != nil {
		return Challenge{}, err
	}
	switch {
	case len(list) == 0:
		return Challenge{}, malformed("empty challenge")
	case len(list) > 1:
		return Challenge{}, malformed("%d challenges in one value", len(list))
	}
	return challengeFrom(&list[0])
}

// challengeFrom converts a parsed value of the Digest scheme.
func challengeFrom(r *rawAuth) (Challenge, error) {
	if !strings.EqualFold(r.scheme, "Digest") {
		return Challenge{}, fmt.Errorf("%w: scheme %q", ErrUnsupported, shorten(r.scheme))
	}
	if r.token68 != "" {
		return Challenge{}, malformed("Digest challenge without parameters")
	}
	var c Challenge
	var seen uint16
	for _, p := range r.params {
		var bit uint16
		switch strings.ToLower(p.name) {
		case "realm":
			bit, c.Realm = 1<<0, p.value
		case "nonce":
			bit, c.Nonce = 1<<1, p.value
		case "opaque":
			bit, c.Opaque = 1<<2, p.value
		case "algorithm":
			bit, c.Algorithm = 1<<3, p.value
		case "qop":
			bit = 1 << 4
			c.QOP = []string{}
			for v := range strings.SplitSeq(p.value, ",") {
				if v = strings.Trim(v, " \t\r\n"); v != "" {
					c.QOP = append(c.QOP, v)
				}
			}
		case "stale":
			bit, c.Stale = 1<<5, strings.EqualFold(p.value, "true")
		case "domain":
			bit, c.Domain = 1<<6, p.value
		case "charset":
			bit, c.Charset = 1<<7, p.value
		case "userhash":
			bit, c.Userhash = 1<<8, strings.EqualFold(p.value, "true")
		default:
			continue // extension parameters are ignored (RFC 7616 §3.3)
		}
		if seen&bit != 0 {
			return Challenge{}, malformed("repeated parameter %q", shorten(p.name))
		}
		seen |= bit
	}
	if seen&(1<<0) == 0 {
		return Challenge{}, malformed("Digest challenge without realm")
	}
	if seen&(1<<1) == 0 {
		return Challenge{}, malformed("Digest challenge without nonce")
	}
	return c, nil
}

// String returns the challenge in its wire form, without the header field
// name, e.g. `Digest realm="example.com", nonce="abc", algorithm=MD5`.
// ParseChallenge(c.String()) returns c again (Proxy aside).
func (c Challenge) String() string {
	b := make([]byte, 0, 96+len(c.Realm)+len(c.Nonce)+len(c.Opaque)+len(c.Domain))
	b = append(b, "Digest "...)
	b = appendParam(b, "realm", c.Realm, true)
	if c.Domain != "" {
		b = appendParam(b, "domain", c.Domain, true)
	}
	b = appendParam(b, "nonce", c.Nonce, true)
	if c.Opaque != "" {
		b = appendParam(b, "opaque", c.Opaque, true)
	}
	if c.Stale {
		b = appendParam(b, "stale", "true", false)
	}
	if c.Algorithm != "" {
		b = appendParam(b, "algorithm", c.Algorithm, false)
	}
	if c.QOP != nil {
		b = appendParam(b, "qop", strings.Join(c.QOP, ","), true)
	}
	if c.Charset != "" {
		b = appendParam(b, "charset", c.Charset, false)
	}
	if c.Userhash {
		b = appendParam(b, "userhash", "true", false)
	}
	return string(b)
}

// Header field names.
const (
	hWWWAuthenticate    = "WWW-Authenticate"
	hProxyAuthenticate  = "Proxy-Authenticate"
	hAuthorization      = "Authorization"
	hProxyAuthorization = "Proxy-Authorization"
)

// ParseChallenges returns the Digest challenges of a response: every
// WWW-Authenticate and Proxy-Authenticate value (a 401 may carry both when
// a forking proxy aggregated several responses, RFC 3261 §16.7), with
// Proxy set for Proxy-Authenticate. One header field may hold several
// challenges. Challenges of other schemes are skipped. The error joins
// the parse errors of values that could not be read (each wraps
// ErrMalformed); the challenges that could be read are returned with it.
func ParseChallenges(resp *message.Response) ([]Challenge, error) {
	chs, _, err := collectChallenges(resp)
	return chs, err
}

// collectChallenges returns the Digest challenges of resp, the schemes of
// the others, and the joined parse errors.
func collectChallenges(resp *message.Response) (chs []Challenge, others []string, err error) {
	var errs []error
	for _, f := range resp.Header.Fields() {
		var proxy bool
		switch message.CanonicalName(f.Name) {
		case hWWWAuthenticate:
		case hProxyAuthenticate:
			proxy = true
		default:
			continue
		}
		list, perr := parseAuthList(f.Value)
		if perr != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Name, perr))
			continue
		}
		for i := range list {
			if !strings.EqualFold(list[i].scheme, "Digest") {
				others = append(others, shorten(list[i].scheme))
				continue
			}
			c, cerr := challengeFrom(&list[i])
			if cerr != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.Name, cerr))
				continue
			}
			c.Proxy = proxy
			chs = append(chs, c)
		}
	}
	return chs, others, errors.Join(errs...)
}
