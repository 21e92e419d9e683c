package message

import (
	"errors"
	"strconv"
	"strings"
)

// CSeq is the CSeq header value: a sequence number below 2^31 and a
// method (RFC 3261 §8.1.1.5).
type CSeq struct {
	Seq    uint32
	Method string
}

// String returns the wire form "seq METHOD".
func (c CSeq) String() string { return strconv.FormatUint(uint64(c.Seq), 10) + " " + c.Method }

// MaxCSeq is the largest CSeq sequence number (2^31 - 1).
const MaxCSeq = 1<<31 - 1

// ParseCSeq parses a CSeq value.
func ParseCSeq(s string) (CSeq, error) {
	s = trimWS(s)
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	num, method := s[:i], trimWS(s[i:])
	if num == "" || i == len(s) || !isWS(s[i]) && s[i] != '\r' && s[i] != '\n' {
		return CSeq{}, errorf(ErrMalformed, "CSeq", "%q", s)
	}
	if !isToken(method) {
		return CSeq{}, errorf(ErrMalformed, "CSeq", "bad method %q", method)
	}
	n, ok := parseUint(num, MaxCSeq)
	if !ok {
		return CSeq{}, errorf(ErrOutOfRange, "CSeq", "sequence number %s over 2^31-1", num)
	}
	return CSeq{Seq: uint32(n), Method: method}, nil
}

// CSeq returns the parsed CSeq.
func (h *Header) CSeq() (CSeq, error) {
	v, ok := h.get(hCSeq, "")
	if !ok {
		return CSeq{}, errorf(ErrMissingHeader, "CSeq", "missing")
	}
	return ParseCSeq(v)
}

// CallID returns the Call-ID, or "".
func (h *Header) CallID() string { v, _ := h.get(hCallID, ""); return v }

// ContentType returns the Content-Type value, or "".
func (h *Header) ContentType() string { v, _ := h.get(hContentType, ""); return v }

// MediaType returns the media type of Content-Type in lower case without
// parameters, e.g. "application/sdp", or "".
func (h *Header) MediaType() string {
	v := h.ContentType()
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return lowerASCII(trimWS(v))
}

// uintHeader parses the first field with id as a number no larger than
// max. present is false when the field is absent.
func (h *Header) uintHeader(id hid, max uint64) (n uint64, present bool, err error) {
	v, ok := h.get(id, "")
	if !ok {
		return 0, false, nil
	}
	// A value may carry a comment or parameters (Retry-After, Session-Expires).
	num := v
	for i := 0; i < len(num); i++ {
		if !isDigit(num[i]) {
			num = num[:i]
			break
		}
	}
	if num == "" {
		return 0, true, errorf(ErrMalformed, headerNames[id], "%q is not a number", v)
	}
	n, ok = parseUint(num, max)
	if !ok {
		return 0, true, errorf(ErrOutOfRange, headerNames[id], "%s over %d", num, max)
	}
	return n, true, nil
}

// MaxForwards returns Max-Forwards (0 to 255); present is false without
// one.
func (h *Header) MaxForwards() (n int, present bool, err error) {
	v, p, err := h.uintHeader(hMaxForwards, 255)
	return int(v), p, err
}

// ContentLength returns Content-Length; present is false without one.
func (h *Header) ContentLength() (n int, present bool, err error) {
	v, p, err := h.uintHeader(hContentLength, 1<<31-1)
	return int(v), p, err
}

// Expires returns the Expires delta-seconds (0 to 2^32-1).
func (h *Header) Expires() (sec uint32, present bool, err error) {
	v, p, err := h.uintHeader(hExpires, 1<<32-1)
	return uint32(v), p, err
}

// MinExpires returns Min-Expires (RFC 3261 §20.23).
func (h *Header) MinExpires() (sec uint32, present bool, err error) {
	v, p, err := h.uintHeader(hMinExpires, 1<<32-1)
	return uint32(v), p, err
}

// RSeq returns RSeq (RFC 3262), 1 to 2^32-1.
func (h *Header) RSeq() (n uint32, present bool, err error) {
	v, p, err := h.uintHeader(hRSeq, 1<<32-1)
	return uint32(v), p, err
}

// MinSE returns Min-SE delta-seconds (RFC 4028).
func (h *Header) MinSE() (sec uint32, present bool, err error) {
	v, p, err := h.uintHeader(hMinSE, 1<<32-1)
	return uint32(v), p, err
}

// RAck is the RAck header value of a PRACK (RFC 3262 §7.2).
type RAck struct {
	RSeq   uint32
	CSeq   uint32
	Method string
}

// String returns the wire form.
func (r RAck) String() string {
	return strconv.FormatUint(uint64(r.RSeq), 10) + " " + strconv.FormatUint(uint64(r.CSeq), 10) + " " + r.Method
}

// RAck returns the parsed RAck.
func (h *Header) RAck() (RAck, error) {
	v, ok := h.get(hRAck, "")
	if !ok {
		return RAck{}, errorf(ErrMissingHeader, "RAck", "missing")
	}
	f := strings.Fields(v)
	if len(f) != 3 || !isToken(f[2]) {
		return RAck{}, errorf(ErrMalformed, "RAck", "%q", v)
	}
	r, ok1 := parseUint(f[0], 1<<32-1)
	c, ok2 := parseUint(f[1], MaxCSeq)
	if !ok1 || !ok2 {
		return RAck{}, errorf(ErrOutOfRange, "RAck", "%q", v)
	}
	return RAck{RSeq: uint32(r), CSeq: uint32(c), Method: f[2]}, nil
}

// ValueParams is a header value of the form token *(;param): Event,
// Subscription-State, Session-Expires, Retry-After, Content-Disposition,
// Reason and similar.
type ValueParams struct {
	// Value is the part before the first ';', trimmed.
	Value string
	// Params are the parameters.
	Params Params
}

// String returns the wire form.
func (v ValueParams) String() string {
	if v.Params == "" {
		return v.Value
	}
	return v.Value + ";" + string(v.Params)
}

// ParseValueParams splits a header value into its value and parameters.
func ParseValueParams(s string) (ValueParams, error) {
	val, rest, has := strings.Cut(s, ";")
	out := ValueParams{Value: trimWS(val)}
	if out.Value == "" {
		return ValueParams{}, errorf(ErrMalformed, "", "empty value in %q", s)
	}
	if has {
		p, ok := parseHeaderParams(rest)
		if !ok {
			return ValueParams{}, errorf(ErrMalformed, "", "bad parameter in %q", s)
		}
		out.Params = p
	}
	return out, nil
}

func (h *Header) valueParams(id hid) (ValueParams, bool, error) {
	v, ok := h.get(id, "")
	if !ok {
		return ValueParams{}, false, nil
	}
	vp, err := ParseValueParams(v)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.Header = headerNames[id]
		}
	}
	return vp, true, err
}

// Event returns the Event header (RFC 6665): Value is the event package,
// Params may hold id.
func (h *Header) Event() (ValueParams, bool, error) { return h.valueParams(hEvent) }

// SubscriptionState returns Subscription-State (RFC 6665): Value is
// active, pending or terminated; Params may hold expires, reason and
// retry-after.
func (h *Header) SubscriptionState() (ValueParams, bool, error) {
	return h.valueParams(hSubscriptionState)
}

// SessionExpires returns Session-Expires (RFC 4028): Value is the
// delta-seconds, Params may hold refresher.
func (h *Header) SessionExpires() (ValueParams, bool, error) {
	return h.valueParams(hSessionExpires)
}

// RetryAfter returns the Retry-After delta-seconds; a comment and
// parameters after the number are ignored.
func (h *Header) RetryAfter() (sec uint32, present bool, err error) {
	v, p, err := h.uintHeader(hRetryAfter, 1<<32-1)
	return uint32(v), p, err
}

// Replaces is the Replaces header value (RFC 3891).
type Replaces struct {
	CallID    string
	ToTag     string
	FromTag   string
	EarlyOnly bool
}

// String returns the wire form.
func (r Replaces) String() string {
	s := r.CallID + ";to-tag=" + r.ToTag + ";from-tag=" + r.FromTag
	if r.EarlyOnly {
		s += ";early-only"
	}
	return s
}

// Replaces returns the Replaces header.
func (h *Header) Replaces() (Replaces, bool, error) {
	vp, ok, err := h.valueParams(hReplaces)
	if !ok || err != nil {
		return Replaces{}, ok, err
	}
	r := Replaces{CallID: vp.Value, EarlyOnly: vp.Params.Has("early-only")}
	r.ToTag, _ = vp.Params.Get("to-tag")
	r.FromTag, _ = vp.Params.Get("from-tag")
	if r.ToTag == "" || r.FromTag == "" {
		return Replaces{}, true, errorf(ErrMalformed, "Replaces", "missing to-tag or from-tag")
	}
	return r, true, nil
}

// Reason is one Reason header value (RFC 3326).
type Reason struct {
	Protocol string // "SIP", "Q.850" …
	Cause    int
	Text     string
}

// Reasons returns all Reason values.
func (h *Header) Reasons() ([]Reason, error) {
	var out []Reason
	for v := range h.values(hReason, "") {
		vp, err := ParseValueParams(v)
		if err != nil {
			return nil, err
		}
		r := Reason{Protocol: vp.Value}
		if c, ok := vp.Params.Get("cause"); ok {
			n, ok := parseUint(c, 1<<31-1)
			if !ok {
				return nil, errorf(ErrMalformed, "Reason", "bad cause %q", c)
			}
			r.Cause = int(n)
		}
		if t, ok := vp.Params.Get("text"); ok {
			r.Text = unquote(t)
		}
		out = append(out, r)
	}
	return out, nil
}

// Tokens returns the comma-separated tokens of a list header such as
// Allow, Supported, Require, Proxy-Require, Unsupported or Allow-Events.
func (h *Header) Tokens(name string) []string {
	var out []string
	for v := range h.Values(name) {
		out = append(out, v)
	}
	return out
}

// HasToken reports whether a list header contains tok (case-insensitive),
// e.g. HasToken("Supported", "100rel").
func (h *Header) HasToken(name, tok string) bool {
	for v := range h.Values(name) {
		if equalFold(v, tok) {
			return true
		}
	}
	return false
}

// Auth is a WWW-Authenticate, Proxy-Authenticate, Authorization or
// Proxy-Authorization value: a scheme and comma-separated auth-params
// (RFC 3261 §25.1, §22).
type Auth struct {
	// Scheme is the auth scheme as written, e.g. "Digest".
	Scheme string
	// Params are the auth-params in order; values keep their quotes.
	Params []AuthParam
}

// AuthParam is one name=value pair of an Auth value.
type AuthParam struct {
	Name, Value string
}

// Get returns the value of the parameter name without quotes, and whether
// it is present.
func (a Auth) Get(name string) (string, bool) {
	for _, p := range a.Params {
		if equalFold(p.Name, name) {
			return unquote(p.Value), true
		}
	}
	return "", false
}

// ParseAuth parses a challenge or credentials value.
func ParseAuth(s string) (Auth, error) {
	s = trimWS(s)
	i := 0
	for i < len(s) && charClass[s[i]]&cToken != 0 {
		i++
	}
	if i == 0 {
		return Auth{}, errorf(ErrMalformed, "", "no auth scheme in %q", s)
	}
	a := Auth{Scheme: s[:i]}
	rest := trimWS(s[i:])
	if rest == "" {
		return a, nil
	}
	ok := splitList(rest, func(item string) bool {
		n, v, _ := strings.Cut(item, "=")
		a.Params = append(a.Params, AuthParam{Name: trimWS(n), Value: trimWS(v)})
		return true
	})
	if !ok {
		return Auth{}, errorf(ErrMalformed, "", "unbalanced quotes in %q", s)
	}
	for _, p := range a.Params {
		if !isToken(p.Name) {
			// Not auth-params: an opaque token68-like credential. Keep the
			// whole rest as one nameless parameter.
			a.Params = []AuthParam{{Value: rest}}
			break
		}
	}
	return a, nil
}

// String returns the wire form.
func (a Auth) String() string {
	var b strings.Builder
	b.WriteString(a.Scheme)
	for i, p := range a.Params {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		if p.Name != "" {
			b.WriteString(p.Name)
			b.WriteByte('=')
		}
		b.WriteString(p.Value)
	}
	return b.String()
}
