package message

import (
	"strconv"
	"strings"
)

// URI is a SIP, SIPS or tel URI (RFC 3261 §19.1, RFC 3966), or any other
// absolute URI kept opaque. The zero value is an empty URI.
//
// User and Password hold the unescaped text; they are %-escaped again when
// the URI is written. Params and Headers keep their wire form.
type URI struct {
	// Scheme is the scheme in lower case: "sip", "sips", "tel" or another.
	Scheme string
	// User is the user part (for tel, the telephone number), unescaped.
	User string
	// Password is the password of the userinfo, unescaped; rarely used.
	Password string
	// Host is a host name, an IPv4 address or an IPv6 address without
	// brackets.
	Host string
	// Port is the port number, or 0 when the URI names none.
	Port int
	// Params are the uri-parameters (";transport=tcp;lr"), escaped.
	Params Params
	// Headers are the headers component after '?', escaped, e.g.
	// "Replaces=abc%40h%3Bto-tag%3D1". Empty when absent.
	Headers string
	// Opaque holds everything after "scheme:" for schemes other than
	// sip, sips and tel.
	Opaque string
}

// ParseURI parses a URI in its wire form. The error wraps ErrMalformed.
func ParseURI(s string) (URI, error) {
	var u URI
	if err := u.parse(s); err != nil {
		return URI{}, err
	}
	return u, nil
}

// MustParseURI is like ParseURI but panics on error. It is meant for
// constants in programs and tests.
func MustParseURI(s string) URI {
	u, err := ParseURI(s)
	if err != nil {
		panic(err)
	}
	return u
}

func uriError(s, what string) error {
	return errorf(ErrMalformed, "", "URI %q: %s", s, what)
}

func canonicalScheme(s string) string {
	switch {
	case equalFold(s, "sip"):
		return "sip"
	case equalFold(s, "sips"):
		return "sips"
	case equalFold(s, "tel"):
		return "tel"
	}
	return lowerASCII(s)
}

func (u *URI) parse(s string) error {
	colon := strings.IndexByte(s, ':')
	if colon <= 0 || !isAlpha(s[0]) {
		return uriError(s, "no scheme")
	}
	for i := 1; i < colon; i++ {
		if charClass[s[i]]&cScheme == 0 {
			return uriError(s, "bad scheme")
		}
	}
	u.Scheme = canonicalScheme(s[:colon])
	rest := s[colon+1:]
	if rest == "" {
		return uriError(s, "empty")
	}
	switch u.Scheme {
	case "sip", "sips":
		return u.parseSIP(s, rest)
	case "tel":
		num := rest
		if i := strings.IndexByte(rest, ';'); i >= 0 {
			num = rest[:i]
			p, ok := parseURIParams(rest[i+1:])
			if !ok {
				return uriError(s, "bad parameter")
			}
			u.Params = p
		}
		if num == "" {
			return uriError(s, "empty number")
		}
		for i := 0; i < len(num); i++ {
			if charClass[num[i]]&cTel == 0 {
				return uriError(s, "bad telephone number")
			}
		}
		u.User = num
		return nil
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c <= ' ' || c == '<' || c == '>' || c == '"' || c >= 0x7f {
			return uriError(s, "bad character")
		}
	}
	u.Opaque = rest
	return nil
}

func (u *URI) parseSIP(s, rest string) error {
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		rest = rest[at+1:]
		user, pass := userinfo, ""
		hasPass := false
		if c := strings.IndexByte(userinfo, ':'); c >= 0 {
			user, pass, hasPass = userinfo[:c], userinfo[c+1:], true
		}
		if user == "" || !validEscaped(user, cUser) || (hasPass && !validEscaped(pass, cPassword)) {
			return uriError(s, "bad userinfo")
		}
		var ok bool
		if u.User, ok = unescape(user); !ok {
			return uriError(s, "bad escape")
		}
		if u.Password, ok = unescape(pass); !ok {
			return uriError(s, "bad escape")
		}
	}
	// hostport
	end := 0
	for end < len(rest) && rest[end] != ';' && rest[end] != '?' {
		end++
	}
	hostport := rest[:end]
	rest = rest[end:]
	host, port, err := splitHostPort(hostport)
	if err != "" {
		return uriError(s, err)
	}
	u.Host, u.Port = host, port
	if rest != "" && rest[0] == ';' {
		end := strings.IndexByte(rest, '?')
		if end < 0 {
			end = len(rest)
		}
		p, ok := parseURIParams(rest[1:end])
		if !ok {
			return uriError(s, "bad parameter")
		}
		u.Params = p
		rest = rest[end:]
	}
	if rest != "" {
		h := rest[1:]
		if h == "" || !validEscaped(h, cHeader|cHdrSep) {
			return uriError(s, "bad headers")
		}
		u.Headers = h
	}
	return nil
}

// parseURIParams checks a uri-parameters list (after the first ';').
func parseURIParams(s string) (Params, bool) {
	for item := range strings.SplitSeq(s, ";") {
		name, value, hasValue := strings.Cut(item, "=")
		if name == "" || !validEscaped(name, cParam) || (hasValue && (value == "" || !validEscaped(value, cParam))) {
			return "", false
		}
	}
	return Params(s), true
}

// splitHostPort splits host[:port], where host may be an IPv6 reference in
// brackets. It returns a non-empty reason on error.
func splitHostPort(hp string) (host string, port int, reason string) {
	if hp == "" {
		return "", 0, "no host"
	}
	portStr := ""
	if hp[0] == '[' {
		e := strings.IndexByte(hp, ']')
		if e < 0 {
			return "", 0, "unterminated IPv6 reference"
		}
		host = hp[1:e]
		if host == "" {
			return "", 0, "empty IPv6 reference"
		}
		for i := 0; i < len(host); i++ {
			if c := host[i]; !(isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') || c == ':' || c == '.') {
				return "", 0, "bad IPv6 reference"
			}
		}
		after := hp[e+1:]
		if after != "" {
			if after[0] != ':' {
				return "", 0, "junk after IPv6 reference"
			}
			portStr = after[1:]
			if portStr == "" {
				return "", 0, "empty port"
			}
		}
	} else {
		host = hp
		if c := strings.LastIndexByte(hp, ':'); c >= 0 {
			host, portStr = hp[:c], hp[c+1:]
			if portStr == "" {
				return "", 0, "empty port"
			}
		}
		if host == "" {
			return "", 0, "no host"
		}
		for i := 0; i < len(host); i++ {
			if c := host[i]; !(isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_') {
				return "", 0, "bad host"
			}
		}
	}
	if portStr != "" {
		p, ok := parseUint(portStr, 65535)
		if !ok {
			return "", 0, "bad port"
		}
		port = int(p)
	}
	return host, port, ""
}

// IsSIP reports whether the scheme is sip or sips.
func (u URI) IsSIP() bool { return u.Scheme == "sip" || u.Scheme == "sips" }

// HostPort returns host:port, with brackets around an IPv6 host; without a
// port when Port is 0.
func (u URI) HostPort() string {
	return string(appendHostPort(nil, u.Host, u.Port))
}

func appendHostPort(b []byte, host string, port int) []byte {
	if strings.IndexByte(host, ':') >= 0 {
		b = append(b, '[')
		b = append(b, host...)
		b = append(b, ']')
	} else {
		b = append(b, host...)
	}
	if port > 0 {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(port), 10)
	}
	return b
}

// AppendTo appends the wire form of u to b.
func (u URI) AppendTo(b []byte) []byte {
	b = append(b, u.Scheme...)
	b = append(b, ':')
	switch u.Scheme {
	case "sip", "sips":
	case "tel":
		b = append(b, u.User...)
		if u.Params != "" {
			b = append(b, ';')
			b = append(b, u.Params...)
		}
		return b
	default:
		return append(b, u.Opaque...)
	}
	if u.User != "" {
		b = appendEscaped(b, u.User, cUser)
		if u.Password != "" {
			b = append(b, ':')
			b = appendEscaped(b, u.Password, cPassword)
		}
		b = append(b, '@')
	}
	b = appendHostPort(b, u.Host, u.Port)
	if u.Params != "" {
		b = append(b, ';')
		b = append(b, u.Params...)
	}
	if u.Headers != "" {
		b = append(b, '?')
		b = append(b, u.Headers...)
	}
	return b
}

// String returns the wire form of u.
func (u URI) String() string { return string(u.AppendTo(make([]byte, 0, 64))) }

// Equal reports whether u and v are equivalent under RFC 3261 §19.1.4:
// schemes must match (sip never equals sips); user and password compare
// case-sensitively after unescaping, host case-insensitively; a port, and the
// user, ttl, method, maddr and transport parameters, must appear in both or
// neither; other parameters are compared only when both have them; header
// components must match as sets. tel URIs compare their numbers without
// visual separators, and other schemes compare their text exactly.
func (u URI) Equal(v URI) bool {
	if u.Scheme != v.Scheme {
		return false
	}
	switch u.Scheme {
	case "sip", "sips":
	case "tel":
		return telDigits(u.User) == telDigits(v.User) && paramsEqual(u.Params, v.Params, true)
	default:
		return u.Opaque == v.Opaque
	}
	if u.User != v.User || u.Password != v.Password || !equalFold(u.Host, v.Host) || u.Port != v.Port {
		return false
	}
	return paramsEqual(u.Params, v.Params, false) && headersEqual(u.Headers, v.Headers)
}

func telDigits(s string) string {
	if strings.ContainsAny(s, "-.()") {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			switch c := s[i]; c {
			case '-', '.', '(', ')':
			default:
				b.WriteByte(c | byte(0x20*b2i(c >= 'A' && c <= 'Z')))
			}
		}
		return b.String()
	}
	return lowerASCII(s)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// paramsEqual compares uri-parameters per §19.1.4. all requires every
// parameter to appear in both.
func paramsEqual(a, b Params, all bool) bool {
	check := func(x, y Params) bool {
		for n, xv := range x.All() {
			if first, _ := x.Get(n); first != xv {
				// A repeated name: only its first occurrence counts.
				continue
			}
			yv, ok := y.Get(n)
			if !ok {
				if all {
					return false
				}
				switch strings.ToLower(n) {
				case "user", "ttl", "method", "maddr", "transport":
					return false
				}
				continue
			}
			xu, ok1 := unescape(xv)
			yu, ok2 := unescape(yv)
			if !ok1 || !ok2 || !strings.EqualFold(xu, yu) {
				return false
			}
		}
		return true
	}
	return check(a, b) && check(b, a)
}

func headersEqual(a, b string) bool {
	if a == b {
		return true
	}
	split := func(s string) map[string]string {
		m := map[string]string{}
		for item := range strings.SplitSeq(s, "&") {
			n, v, _ := strings.Cut(item, "=")
			n, _ = unescape(n)
			v, _ = unescape(v)
			m[strings.ToLower(n)] = v
		}
		return m
	}
	ma, mb := split(a), split(b)
	if len(ma) != len(mb) {
		return false
	}
	for k, v := range ma {
		if w, ok := mb[k]; !ok || w != v {
			return false
		}
	}
	return true
}
