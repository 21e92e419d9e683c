package message

// Character classes of RFC 3261 §25, as lookup tables.

const (
	cToken      uint16 = 1 << iota // token
	cUnreserved                    // unreserved = alphanum / mark
	cUser                          // user-unreserved
	cPassword                      // password extra characters
	cParam                         // param-unreserved
	cHeader                        // hnv-unreserved
	cScheme                        // scheme characters after the first
	cHost                          // hostname, IPv4 and IPv6 reference characters
	cWord                          // word (Call-ID)
	cTel                           // characters of a tel URI number
	cHdrSep                        // '=' and '&' between URI headers
)

var charClass = func() [256]uint16 {
	var t [256]uint16
	set := func(chars string, c uint16) {
		for i := 0; i < len(chars); i++ {
			t[chars[i]] |= c
		}
	}
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	set(alnum+"-.!%*_+`'~", cToken)
	set(alnum+"-_.!~*'()", cUnreserved)
	set("&=+$,;?/", cUser)
	set("&=+$,", cPassword)
	set("[]/:&+$", cParam)
	set("[]/?:+$", cHeader)
	set(alnum+"+-.", cScheme)
	set(alnum+"-.:[]", cHost)
	set(alnum+"-.!%*_+`'~()<>:\\\"/[]?{}", cWord)
	set("0123456789ABCDEFabcdef-.()*#+pPwW", cTel)
	set("=&", cHdrSep)
	return t
}()

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if charClass[s[i]]&cToken == 0 {
			return false
		}
	}
	return true
}

func isWS(c byte) bool { return c == ' ' || c == '\t' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }

// trimWS trims spaces, tabs, CR and LF from both ends.
func trimWS(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t' || s[j-1] == '\r' || s[j-1] == '\n') {
		j--
	}
	return s[i:j]
}

func skipWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

func hasWS(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n' {
			return true
		}
	}
	return false
}

// lowerASCII returns s in lower case, allocating only when s has an upper
// case letter.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// equalFold compares two ASCII strings case-insensitively.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || (x|0x20) < 'a' || (x|0x20) > 'z' {
			return false
		}
	}
	return true
}

// parseUint parses a decimal number no larger than max. It accepts leading
// zeros. ok is false on an empty string, a non-digit or a value over max.
func parseUint(s string, max uint64) (v uint64, ok bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
		if v > max {
			return 0, false
		}
	}
	return v, true
}

// quotedEnd returns the index just past the closing quote of the quoted
// string that starts at s[i] == '"', or -1 if it is not terminated.
func quotedEnd(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// unquote removes the quotes of a quoted-string and its backslash escapes.
// A string that is not quoted is returned as it is.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			b := make([]byte, 0, len(s))
			b = append(b, s[:i]...)
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b = append(b, s[i])
			}
			return string(b)
		}
	}
	return s
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

// splitList calls f with each element of a comma-separated header value,
// trimmed, skipping empty elements. Commas inside quoted strings and angle
// brackets do not split. It stops early when f returns false, and returns
// false if the value is unbalanced (an unterminated quote or '<').
func splitList(s string, f func(string) bool) bool {
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			e := quotedEnd(s, i)
			if e < 0 {
				return false
			}
			i = e - 1
		case '<':
			for i < len(s) && s[i] != '>' {
				i++
			}
			if i == len(s) {
				return false
			}
		case ',':
			if v := trimWS(s[start:i]); v != "" {
				if !f(v) {
					return true
				}
			}
			start = i + 1
		}
	}
	if v := trimWS(s[start:]); v != "" {
		f(v)
	}
	return true
}

const hexDigits = "0123456789ABCDEF"

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unescape decodes %HH escapes. A '%' not followed by two hex digits is an
// error. It allocates only when s has an escape.
func unescape(s string) (string, bool) {
	i := 0
	for i < len(s) && s[i] != '%' {
		i++
	}
	if i == len(s) {
		return s, true
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		h, ok1 := unhex(s[i+1])
		l, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b = append(b, h<<4|l)
		i += 2
	}
	return string(b), true
}

// appendEscaped appends s, %-escaping every byte outside unreserved and the
// extra class.
func appendEscaped(b []byte, s string, extra uint16) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if charClass[c]&(cUnreserved|extra) != 0 {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return b
}

// validEscaped reports whether s consists of characters of class plus
// unreserved and well-formed escapes.
func validEscaped(s string, class uint16) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) {
				return false
			}
			if _, ok := unhex(s[i+1]); !ok {
				return false
			}
			if _, ok := unhex(s[i+2]); !ok {
				return false
			}
			i += 2
			continue
		}
		if charClass[c]&(cUnreserved|class) == 0 {
			return false
		}
	}
	return true
}
