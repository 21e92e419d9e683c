package trace

import (
	"bytes"
	"errors"

	"github.com/sipua/sip/message"
)

// Redacted is what Redact writes in place of a credential.
const Redacted = "REDACTED"

// Redact returns a Tracer that passes each event on to next with the
// credentials of its Authorization and Proxy-Authorization header fields
// blotted out, so that a trace can be kept, shared or attached to a bug
// report without the password or an offline-crackable hash of it:
//
//   - in Digest credentials, the value of the response parameter (quoted
//     or not) becomes "REDACTED", quotes included; username, realm,
//     nonce, uri, cnonce and the other parameters stay, so that pcaps,
//     text logs and ladders remain useful;
//   - in credentials of any other scheme (Basic, Bearer, …) everything
//     after the scheme becomes REDACTED; a value that is a single token,
//     or does not start with a scheme, is replaced whole;
//   - Digest credentials whose quotes do not balance are handled like
//     another scheme's.
//
// Header names match case-insensitively, every field of a repeated
// header is redacted, and a folded field is unfolded onto one line (the
// other fields keep their bytes). The whole header section is searched
// even when the message is malformed. In the body, the key material of
// SDES-SRTP (RFC 4568 a=crypto "inline:" keys, which decrypt the call's
// media) is overwritten with as many 'X' characters, so that the body's
// length, and its Content-Length, stay right; the rest of the body is
// left alone.
//
// An event without such a field, or with nothing to redact in it, is
// passed on as it is (without allocating when it has no such field: one
// scan of the header section). Otherwise next gets a copy
// whose Raw is the redacted message and whose Message is Raw parsed again
// (when the event had a Message): like Event.Clone, it then lacks the Via
// parameters the transport adds on receipt, and it is what could be
// parsed of a malformed message, or nil. The redacted Raw stays valid
// after the call. SendFailed events are redacted like the Sent event
// they follow, so the two still carry the same bytes.
//
// The returned Tracer is safe for concurrent use when next is.
func Redact(next Tracer) Tracer { return redactor{next} }

type redactor struct{ next Tracer }

func (r redactor) Trace(ev Event) {
	if raw, ok := redactRaw(ev.Raw); ok {
		ev.Raw = raw
		if ev.Message != nil {
			ev.Message = reparse(raw)
		}
	}
	r.next.Trace(ev)
}

// noLimits parses a message again: Raw was already bounded by the
// transport's limits, which may be larger than the defaults, and a
// redacted Basic field may be longer than the original.
var noLimits = message.Limits{MaxMessageSize: -1, MaxHeaders: -1, MaxLineLength: -1, MaxBodySize: -1}

func reparse(raw []byte) message.Message {
	m, err := noLimits.Parse(raw)
	if err != nil {
		var pe *message.ParseError
		if errors.As(err, &pe) {
			return pe.Message
		}
		return nil
	}
	return m
}

// lineAt returns the end of the line starting at i (without its LF or
// CRLF, as the message parser reads it) and the start of the next line.
func lineAt(b []byte, i int) (end, next int) {
	j := i
	for j < len(b) && b[j] != '\n' {
		j++
	}
	if j == len(b) {
		return j, j
	}
	end = j
	if end > i && b[end-1] == '\r' {
		end--
	}
	return end, j + 1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func isTrim(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimSpace(s string) string {
	i, j := 0, len(s)
	for i < j && isTrim(s[i]) {
		i++
	}
	for j > i && isTrim(s[j-1]) {
		j--
	}
	return s[i:j]
}

// authName reports whether the field line starts with an Authorization
// or Proxy-Authorization name, and returns the index after its colon.
func authName(line []byte) (int, bool) {
	colon := -1
	for k, c := range line {
		if c == ':' {
			colon = k
			break
		}
	}
	if colon < 0 {
		return 0, false
	}
	name := line[:colon]
	for len(name) > 0 && isSpace(name[len(name)-1]) {
		name = name[:len(name)-1]
	}
	return colon + 1, foldEq(name, "authorization") || foldEq(name, "proxy-authorization")
}

// foldEq reports whether b equals the lower-case ASCII string s, ignoring
// case.
func foldEq[T string | []byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// redactRaw returns raw with its credentials redacted, and false (and no
// allocation) when there is nothing to redact.
func redactRaw(raw []byte) ([]byte, bool) {
	i := 0
	for i < len(raw) && (raw[i] == '\r' || raw[i] == '\n') {
		i++
	}
	var out []byte
	done := 0 // raw[:done] is in out
	for i < len(raw) {
		end, next := lineAt(raw, i)
		if end == i {
			break // the empty line ending the header section
		}
		// The field: its first line and the continuation lines after it.
		fend, fnext := end, next
		for fnext < len(raw) && isSpace(raw[fnext]) {
			fend, fnext = lineAt(raw, fnext)
		}
		if vstart, ok := authName(raw[i:end]); ok {
			vstart += i
			value := unfold(raw, vstart, end, fnext)
			if red := redactValue(value); red != value {
				if out == nil {
					out = make([]byte, 0, len(raw)+16)
				}
				// Keep the name, the colon and the white space after it.
				k := vstart
				for k < end && isSpace(raw[k]) {
					k++
				}
				out = append(out, raw[done:k]...)
				if k == vstart {
					out = append(out, ' ')
				}
				out = append(out, red...)
				out = append(out, raw[fend:fnext]...)
				done = fnext
			}
		}
		i = fnext
	}
	if out == nil {
		return redactKeys(raw, false)
	}
	res, _ := redactKeys(append(out, raw[done:]...), true)
	return res, true
}

// redactKeys overwrites the base64 key material after each "inline:" in
// the body of msg with 'X's, in place when owned, else in a copy made at
// the first key; it reports whether it returned something other than msg
// unchanged.
func redactKeys(msg []byte, owned bool) ([]byte, bool) {
	body := bytes.Index(msg, []byte("\r\n\r\n"))
	if lf := bytes.Index(msg, []byte("\n\n")); lf >= 0 && (body < 0 || lf < body) {
		body = lf
	}
	if body < 0 {
		return msg, false
	}
	changed := false
	const marker = "inline:"
	for i := body; ; {
		k := bytes.Index(msg[i:], []byte(marker))
		if k < 0 {
			break
		}
		start := i + k + len(marker)
		end := start
		for end < len(msg) && isBase64(msg[end]) {
			end++
		}
		if end > start {
			if !owned {
				msg, owned = bytes.Clone(msg), true
			}
			for j := start; j < end; j++ {
				msg[j] = 'X'
			}
			changed = true
		}
		i = end
	}
	return msg, changed
}

func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '='
}

// unfold returns the value of the field whose first line's value runs
// from start to end, followed by continuation lines up to next, as the
// message parser reads it: each line trimmed, joined by single spaces.
func unfold(raw []byte, start, end, next int) string {
	_, first := lineAt(raw, start)
	value := trimSpace(string(raw[start:end]))
	for p := first; p < next; {
		e, n := lineAt(raw, p)
		if c := trimSpace(string(raw[p:e])); c != "" {
			if value != "" {
				value += " "
			}
			value += c
		}
		p = n
	}
	return value
}

// isTokenChar reports whether c may appear in a token (RFC 3261 §25.1).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '!', '%', '*', '_', '+', '`', '\'', '~':
		return true
	}
	return false
}

// redactValue returns a credentials value with its secret replaced.
func redactValue(v string) string {
	if v == "" {
		return v
	}
	i := 0
	for i < len(v) && isTokenChar(v[i]) {
		i++
	}
	scheme, rest := v[:i], trimSpace(v[i:])
	if i == 0 || rest == "" && !foldEq(scheme, "digest") {
		return Redacted
	}
	if !foldEq(scheme, "digest") {
		return scheme + " " + Redacted
	}
	if rest == "" {
		return v
	}
	spans, ok := responseSpans(rest)
	if !ok {
		return scheme + " " + Redacted
	}
	if len(spans) == 0 {
		return v
	}
	off := len(v) - len(rest)
	b := make([]byte, 0, len(v)+len(spans)*len(Redacted))
	last := 0
	for _, s := range spans {
		b = append(b, v[last:off+s[0]]...)
		b = append(b, `"`+Redacted+`"`...)
		last = off + s[1]
	}
	b = append(b, v[last:]...)
	return string(b)
}

// responseSpans returns where the values of the response parameters are
// in a list of auth-params, split as message.ParseAuth splits it (commas
// outside quoted strings and <…>), and false when quotes or angle
// brackets do not balance.
func responseSpans(s string) ([][2]int, bool) {
	var spans [][2]int
	item := func(start, end int) {
		eq := -1
		for k := start; k < end; k++ {
			if s[k] == '=' {
				eq = k
				break
			}
		}
		if eq < 0 || !foldEq(trimSpace(s[start:eq]), "response") {
			return
		}
		vs, ve := eq+1, end
		for vs < ve && isTrim(s[vs]) {
			vs++
		}
		for ve > vs && isTrim(s[ve-1]) {
			ve--
		}
		if vs < ve {
			spans = append(spans, [2]int{vs, ve})
		}
	}
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, false
			}
			i = j
		case '<':
			for i < len(s) && s[i] != '>' {
				i++
			}
			if i == len(s) {
				return nil, false
			}
		case ',':
			item(start, i)
			start = i + 1
		}
	}
	item(start, len(s))
	return spans, true
}
