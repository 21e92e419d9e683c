package replay

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/sipua/sip/message"
)

// DefaultCompared are the header fields whose values Play compares, once
// the recorded message has been rewritten with this run's values.
// Options.CompareHeaders adds to them and Options.IgnoreHeaders removes
// from them. Authorization and Proxy-Authorization are checked apart: see
// Options.Passwords.
var DefaultCompared = []string{
	"Via", "From", "To", "Call-ID", "CSeq", "Contact", "Route", "Record-Route",
	"Max-Forwards", "Expires", "Content-Type", "Event", "Require", "Proxy-Require",
	"Subscription-State", "Refer-To", "RAck", "RSeq",
}

// comparer checks one message of side B against the trace.
type comparer struct {
	compared  map[string]bool // canonical names
	ignored   map[string]bool
	passwords map[string]string
}

func newComparer(o Options) *comparer {
	c := &comparer{compared: map[string]bool{}, ignored: map[string]bool{}, passwords: o.Passwords}
	for _, n := range DefaultCompared {
		c.compared[message.CanonicalName(n)] = true
	}
	for _, n := range o.CompareHeaders {
		c.compared[message.CanonicalName(n)] = true
	}
	for _, n := range o.IgnoreHeaders {
		c.ignored[message.CanonicalName(n)] = true
	}
	return c
}

// shape is what must match before two messages are compared in detail: the
// method of a request, the status code and CSeq method of a response.
func shape(m message.Message) string {
	switch m := m.(type) {
	case *message.Request:
		return m.Method
	case *message.Response:
		cs, _ := m.Header.CSeq()
		return strconv.Itoa(m.StatusCode) + " " + cs.Method
	}
	return ""
}

// compare returns the differences between want (the recorded message,
// rewritten with this run's values) and got.
func (c *comparer) compare(want, got message.Message) []string {
	var problems []string
	addf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	switch w := want.(type) {
	case *message.Request:
		g, ok := got.(*message.Request)
		if !ok {
			addf("want a %s request, got a response", w.Method)
			return problems
		}
		if w.Method != g.Method {
			addf("method: want %s, got %s", w.Method, g.Method)
			return problems
		}
		if w.URI.String() != g.URI.String() {
			addf("Request-URI: want %s, got %s", w.URI.String(), g.URI.String())
		}
	case *message.Response:
		g, ok := got.(*message.Response)
		if !ok {
			addf("want a %d response, got a %s request", w.StatusCode, got.(*message.Request).Method)
			return problems
		}
		if w.StatusCode != g.StatusCode {
			addf("status: want %d, got %d", w.StatusCode, g.StatusCode)
			return problems
		}
	}
	wh, gh := want.Headers(), got.Headers()

	// Header fields present in one and not in the other.
	wn, gn := names(wh), names(gh)
	for _, n := range wn {
		if !c.ignored[n] && !slices.Contains(gn, n) {
			addf("header %s: missing", n)
		}
	}
	for _, n := range gn {
		if !c.ignored[n] && !slices.Contains(wn, n) {
			addf("header %s: not in the trace", n)
		}
	}

	// The Via count, then the compared values.
	if w, g := wh.ViaCount(), gh.ViaCount(); w != g {
		addf("Via: want %d values, got %d", w, g)
	}
	if wcs, err := wh.CSeq(); err == nil {
		if gcs, err := gh.CSeq(); err != nil {
			addf("CSeq: %v", err)
		} else if wcs.Method != gcs.Method {
			addf("CSeq method: want %s, got %s", wcs.Method, gcs.Method)
		}
	}
	for _, fn := range []struct {
		name string
		tag  func(*message.Header) string
	}{{"From", (*message.Header).FromTag}, {"To", (*message.Header).ToTag}} {
		if (fn.tag(wh) == "") != (fn.tag(gh) == "") {
			addf("%s tag: want %s, got %s", fn.name, presence(fn.tag(wh) != ""), presence(fn.tag(gh) != ""))
		}
	}
	for _, n := range wn {
		if !c.compared[n] || c.ignored[n] || !slices.Contains(gn, n) {
			continue
		}
		w, g := values(wh, n), values(gh, n)
		if w != g {
			addf("%s: want %q, got %q", n, w, g)
		}
	}

	// Credentials.
	for _, n := range []string{"Authorization", "Proxy-Authorization"} {
		if c.ignored[n] {
			continue
		}
		w, wok := wh.Lookup(n)
		g, gok := gh.Lookup(n)
		if wok && gok {
			for _, p := range c.checkCredentials(n, w, g, got) {
				addf("%s", p)
			}
		}
	}

	// The body.
	wb, gb := want.Content(), got.Content()
	switch {
	case len(wb) > 0 && len(gb) == 0:
		addf("body: want %d bytes, got none", len(wb))
	case len(wb) == 0 && len(gb) > 0:
		addf("body: want none, got %d bytes", len(gb))
	case len(wb) > 0 && strings.EqualFold(wh.MediaType(), "application/sdp"):
		if w, g := sdpShape(wb), sdpShape(gb); w != g {
			addf("SDP media: want %q, got %q", w, g)
		}
	}
	return problems
}

func presence(b bool) string {
	if b {
		return "one"
	}
	return "none"
}

// names returns the canonical names of the header fields, each once, in
// order.
func names(h *message.Header) []string {
	var out []string
	for _, f := range h.Fields() {
		n := message.CanonicalName(f.Name)
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

var (
	spaces = regexp.MustCompile(`[ \t]+`)
	commas = regexp.MustCompile(` ?, ?`)
)

// values returns the values of every field called name, joined with ", ",
// with white space normalized.
func values(h *message.Header, name string) string {
	var vs []string
	for v := range h.Values(name) {
		vs = append(vs, v)
	}
	s := spaces.ReplaceAllString(strings.Join(vs, ", "), " ")
	return commas.ReplaceAllString(s, ", ")
}

// sdpShape summarizes the media of an SDP body, "audio RTP/AVP": what
// must be the same, unlike ports, addresses and session versions.
func sdpShape(b []byte) string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if m, ok := strings.CutPrefix(line, "m="); ok {
			f := strings.Fields(m)
			if len(f) >= 3 {
				out = append(out, f[0]+" "+f[2])
			}
		}
	}
	return strings.Join(out, ", ")
}

// checkCredentials compares digest credentials: every parameter but the
// client's cnonce and the response must be as recorded (once rewritten),
// the response must have the digest's length, and when the password is
// known it must be right.
func (c *comparer) checkCredentials(name, want, got string, msg message.Message) []string {
	var problems []string
	wa, err := message.ParseAuth(want)
	if err != nil {
		return nil // nothing to compare with
	}
	ga, err := message.ParseAuth(got)
	if err != nil {
		return []string{fmt.Sprintf("%s: malformed: %v", name, err)}
	}
	if !strings.EqualFold(wa.Scheme, ga.Scheme) {
		return []string{fmt.Sprintf("%s: scheme: want %s, got %s", name, wa.Scheme, ga.Scheme)}
	}
	if !strings.EqualFold(ga.Scheme, "Digest") {
		if want != got {
			problems = append(problems, fmt.Sprintf("%s: want %q, got %q", name, want, got))
		}
		return problems
	}
	for _, p := range []string{"username", "realm", "nonce", "uri", "algorithm", "qop", "nc", "opaque", "userhash"} {
		w, wok := wa.Get(p)
		g, gok := ga.Get(p)
		if wok != gok || w != g {
			problems = append(problems, fmt.Sprintf("%s: %s: want %s, got %s", name, p, show(w, wok), show(g, gok)))
		}
	}
	_, wok := wa.Get("cnonce")
	cnonce, gok := ga.Get("cnonce")
	if wok != gok {
		problems = append(problems, fmt.Sprintf("%s: cnonce: want %s, got %s", name, presence(wok), presence(gok)))
	}
	resp, ok := ga.Get("response")
	alg, _ := ga.Get("algorithm")
	newHash := digestHash(alg)
	if !ok {
		problems = append(problems, name+": no response")
		return problems
	}
	if newHash == nil {
		return problems // an algorithm this check does not know
	}
	if _, err := hex.DecodeString(resp); err != nil || len(resp) != 2*newHash().Size() {
		problems = append(problems, fmt.Sprintf("%s: response %q is not a %s digest", name, resp, cmpOr(alg, "MD5")))
		return problems
	}
	user, _ := ga.Get("username")
	pw, known := c.passwords[user]
	if !known {
		return problems
	}
	realm, _ := ga.Get("realm")
	nonce, _ := ga.Get("nonce")
	uri, _ := ga.Get("uri")
	qop, _ := ga.Get("qop")
	nc, _ := ga.Get("nc")
	method := ""
	if r, ok := msg.(*message.Request); ok {
		method = r.Method
	}
	h := func(s string) string {
		d := newHash()
		d.Write([]byte(s))
		return hex.EncodeToString(d.Sum(nil))
	}
	ha1 := h(user + ":" + realm + ":" + pw)
	if strings.HasSuffix(strings.ToLower(alg), "-sess") {
		ha1 = h(ha1 + ":" + nonce + ":" + cnonce)
	}
	a2 := method + ":" + uri
	if strings.EqualFold(qop, "auth-int") {
		a2 += ":" + h(string(msg.Content()))
	}
	expected := h(ha1 + ":" + nonce + ":" + h(a2))
	if qop != "" {
		expected = h(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + h(a2))
	}
	if !strings.EqualFold(resp, expected) {
		problems = append(problems, fmt.Sprintf("%s: the response is not the digest of %s's password", name, user))
	}
	return problems
}

func show(v string, ok bool) string {
	if !ok {
		return "none"
	}
	return strconv.Quote(v)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// digestHash returns the hash of a digest algorithm ("" is MD5), nil for
// an unknown one.
func digestHash(alg string) func() hash.Hash {
	switch strings.ToUpper(strings.TrimSuffix(strings.ToLower(alg), "-sess")) {
	case "", "MD5":
		return md5.New
	case "SHA-256":
		return sha256.New
	case "SHA-512-256":
		return sha512.New512_256
	}
	return nil
}
