package message

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// seedTorture adds the RFC 4475 messages as seeds.
func seedTorture(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "rfc4475", "*.dat"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(basicReq + "Content-Length: 5\r\n\r\nhello"))
	f.Add([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n"))
}

// FuzzParse checks that Parse never panics, and that what parses, written
// and parsed again, is the same message: writing is a fixed point, and the
// typed accessors agree.
func FuzzParse(f *testing.F) {
	seedTorture(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		// Small limits: a request over them may still be answerable,
		// and its answer must be a valid message.
		for _, lim := range []Limits{{}, {MaxMessageSize: 300, MaxHeaders: 8, MaxLineLength: 120, MaxBodySize: 40}} {
			_, err := lim.Parse(in)
			var pe *ParseError
			if !errors.As(err, &pe) {
				continue
			}
			if req, ok := pe.Message.(*Request); ok {
				b := NewResponse(req, pe.Status, "", "t").AppendTo(nil)
				if validateCommon(&req.Header) != nil {
					continue
				}
				if _, err := Parse(b); err != nil {
					t.Fatalf("answer to %q does not parse: %v\n%q", in, err, b)
				}
			}
		}
		m, err := Parse(in)
		if err != nil {
			if StatusCode(err) < 400 {
				t.Fatalf("error without a status: %v", err)
			}
			return
		}
		verr := m.Validate()
		// Exercise the accessors: none may panic.
		h := m.Headers()
		_, _ = h.Vias()
		_, _ = h.Contacts()
		_, _ = h.Routes()
		_, _ = h.RecordRoutes()
		_, _, _ = h.Event()
		_, _ = h.Reasons()
		_, _, _ = h.Replaces()
		_, _ = h.RAck()
		_ = h.Tokens("Allow")
		_, _ = ParseAuth(h.Get("WWW-Authenticate"))

		w1 := m.AppendTo(nil)
		m2, err := Parse(w1)
		if err != nil {
			t.Fatalf("written message does not parse: %v\n%q\nfrom %q", err, w1, in)
		}
		w2 := m2.AppendTo(nil)
		if !bytes.Equal(w1, w2) {
			t.Fatalf("write is not a fixed point:\n%q\n%q", w1, w2)
		}
		if !bytes.Equal(m.Content(), m2.Content()) {
			t.Fatalf("body changed: %q vs %q", m.Content(), m2.Content())
		}
		if (verr == nil) != (m2.Validate() == nil) {
			t.Fatalf("validity changed: %v vs %v\n%q", verr, m2.Validate(), w1)
		}
		if verr == nil {
			v1, _ := h.TopVia()
			v2, _ := m2.Headers().TopVia()
			if v1 != v2 || h.CallID() != m2.Headers().CallID() || h.FromTag() != m2.Headers().FromTag() || h.ToTag() != m2.Headers().ToTag() {
				t.Fatalf("keys changed:\n%q\n%q", in, w1)
			}
			c1, _ := h.CSeq()
			c2, _ := m2.Headers().CSeq()
			if c1 != c2 {
				t.Fatalf("CSeq changed")
			}
		}
		// Stream framing of the written form finds exactly one message.
		n, k, err := (Limits{}).Frame(w1)
		if err != nil || k != NoKeepalive || n != len(w1) {
			t.Fatalf("Frame(%q) = %d, %v, %v", w1, n, k, err)
		}
	})
}

// FuzzURI checks that ParseURI never panics and that a parsed URI survives
// writing and parsing again unchanged, and equals itself.
func FuzzURI(f *testing.F) {
	for _, s := range []string{
		"sip:alice@atlanta.com", "sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr?subject=x&a=b",
		"sip:%61lice@h", "sip:user;par=u%40example.net@example.com", "tel:+1-201-555-0123;phone-context=x",
		"urn:service:sos", "sip:h;maddr=239.255.255.1;ttl=15", "SIP:A@B", "sip:null-%00-null@example.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		w := u.String()
		u2, err := ParseURI(w)
		if err != nil {
			t.Fatalf("%q written as %q does not parse: %v", s, w, err)
		}
		if u != u2 {
			t.Fatalf("%q: %#v != %#v", s, u, u2)
		}
		if !u.Equal(u2) {
			t.Fatalf("%q not equal to itself", s)
		}
		if w2 := u2.String(); w2 != w {
			t.Fatalf("not a fixed point: %q %q", w, w2)
		}
		// As a header value.
		a := Address{URI: u}
		a2, err := ParseAddress(a.String())
		if err != nil || a2.URI != u {
			t.Fatalf("address %q: %v %#v", a.String(), err, a2)
		}
	})
}
