package digest

import (
	"fmt"
	"strings"
)

// authParam is one auth-param: a name and its value, unquoted.
type authParam struct {
	name, value string
}

// rawAuth is one challenge or credentials value: a scheme and its
// auth-params, or a token68 (RFC 7235 §2.1).
type rawAuth struct {
	scheme  string
	params  []authParam
	token68 string
}

// get returns the value of the parameter name (case-insensitive).
func (r *rawAuth) get(name string) (string, bool) {
	for _, p := range r.params {
		if strings.EqualFold(p.name, name) {
			return p.value, true
		}
	}
	return "", false
}

// maxShown bounds how much of a peer's text goes into an error message.
const maxShown = 40

// shorten returns s cut to maxShown bytes for an error message.
func shorten(s string) string {
	if len(s) > maxShown {
		return s[:maxShown] + "…"
	}
	return s
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// isTokenChar reports whether c may appear in a token (RFC 3261 §25.1).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// isToken68Char reports whether c may appear in a token68 before its
// trailing '=' padding (RFC 7235 §2.1).
func isToken68Char(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", c) >= 0
}

// isToken reports whether s is a non-empty token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// hasCTL reports whether s holds a control character other than HTAB:
// such text must never be written into a header field.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipOWS(s string, i int) int {
	for i < len(s) && isOWS(s[i]) {
		i++
	}
	return i
}

func scanToken(s string, i int) int {
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return i
}

// endOfItem skips white space after a value and reports whether the list
// item ends there (at a comma or the end of s).
func endOfItem(s string, i int) (int, bool) {
	i = skipOWS(s, i)
	return i, i == len(s) || s[i] == ','
}

// parseAuthList parses a header value holding one or more challenges or
// credentials (RFC 7235 §4.1: "1#challenge"), e.g.
//
//	Digest realm="a", nonce="x", Digest realm="b", nonce="y"
//
// Elements are separated by commas; an element that is a token not
// followed by '=' starts a new scheme.
func parseAuthList(s string) ([]rawAuth, error) {
	var out []rawAuth
	i := 0
	for {
		for i < len(s) && (isOWS(s[i]) || s[i] == ',') {
			i++
		}
		if i == len(s) {
			break
		}
		start := i
		i = scanToken(s, i)
		if i == start {
			return nil, malformed("unexpected %q in %q", s[i], shorten(s))
		}
		name := s[start:i]
		if j := skipOWS(s, i); j < len(s) && s[j] == '=' {
			// An auth-param of the current scheme.
			if len(out) == 0 {
				return nil, malformed("parameter %q before an auth scheme", shorten(name))
			}
			p, k, err := parseParam(s, name, j+1)
			if err != nil {
				return nil, err
			}
			cur := &out[len(out)-1]
			cur.params = append(cur.params, p)
			var ok bool
			if i, ok = endOfItem(s, k); !ok {
				return nil, malformed("missing comma after parameter %q", shorten(name))
			}
			continue
		} else {
			i = j
		}
		// A new scheme, maybe followed by its first auth-param or a token68.
		out = append(out, rawAuth{scheme: name})
		cur := &out[len(out)-1]
		if i == len(s) || s[i] == ',' {
			continue
		}
		start = i
		k := scanToken(s, i)
		if k > start {
			if m := skipOWS(s, k); m < len(s) && s[m] == '=' && !token68Tail(s, m) {
				p, n, err := parseParam(s, s[start:k], m+1)
				if err != nil {
					return nil, err
				}
				cur.params = append(cur.params, p)
				var ok bool
				if i, ok = endOfItem(s, n); !ok {
					return nil, malformed("missing comma after parameter %q", shorten(p.name))
				}
				continue
			}
		}
		k = start
		for k < len(s) && isToken68Char(s[k]) {
			k++
		}
		if k == start {
			return nil, malformed("unexpected %q after scheme %q", s[k], shorten(name))
		}
		for k < len(s) && s[k] == '=' {
			k++
		}
		cur.token68 = s[start:k]
		var ok bool
		if i, ok = endOfItem(s, k); !ok {
			return nil, malformed("unexpected text after %q credentials", shorten(name))
		}
	}
	return out, nil
}

// token68Tail reports whether the '=' at s[i] is padding that ends a
// token68 ("abc==") rather than the start of a parameter value.
func token68Tail(s string, i int) bool {
	for i < len(s) && s[i] == '=' {
		i++
	}
	_, end := endOfItem(s, i)
	return end
}

// parseParam parses the value of the parameter name starting at s[i]
// (after '='), a token-like word or a quoted-string, and returns the
// position after it.
func parseParam(s, name string, i int) (authParam, int, error) {
	i = skipOWS(s, i)
	if i < len(s) && s[i] == '"' {
		var b []byte // allocated only for quoted-pairs
		start := i + 1
		for j := start; j < len(s); j++ {
			switch c := s[j]; {
			case c == '"':
				v := s[start:j]
				if b != nil {
					v = string(append(b, s[start:j]...))
				}
				return authParam{name: name, value: v}, j + 1, nil
			case c == '\\':
				if j+1 == len(s) {
					return authParam{}, 0, malformed("unterminated quoted string in %q", shorten(name))
				}
				b = append(b, s[start:j]...)
				j++
				if hasCTL(s[j : j+1]) {
					return authParam{}, 0, malformed("control character in %q", shorten(name))
				}
				start = j
			case c < 0x20 && c != '\t' || c == 0x7f:
				return authParam{}, 0, malformed("control character in %q", shorten(name))
			}
		}
		return authParam{}, 0, malformed("unterminated quoted string in %q", shorten(name))
	}
	start := i
	for i < len(s) && !isOWS(s[i]) && s[i] != ',' {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '"' {
			return authParam{}, 0, malformed("bad character in %q", shorten(name))
		}
		i++
	}
	return authParam{name: name, value: s[start:i]}, i, nil
}

// appendQuoted appends s as a quoted-string.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// appendParam appends ", name=value" (no comma for the first parameter),
// quoting the value when quote is set or when it is not a token.
func appendParam(b []byte, name, value string, quote bool) []byte {
	if b[len(b)-1] != ' ' {
		b = append(b, ", "...)
	}
	b = append(b, name...)
	b = append(b, '=')
	if quote || !isToken(value) {
		return appendQuoted(b, value)
	}
	return append(b, value...)
}
