package message

import (
	"errors"
	"strings"
	"testing"
)

// A request that fails on its Request-URI or on the Limits still gives
// the fields a UAS answers from, when they are readable within the limits.
func TestParseErrorKeepsAnswerableRequest(t *testing.T) {
	lim := Limits{MaxMessageSize: 2000, MaxHeaders: 20, MaxLineLength: 500, MaxBodySize: 100}
	req := func(uri, extra, body string) string {
		return "MESSAGE " + uri + " SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n" +
			"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\nCSeq: 7 MESSAGE\r\n" +
			extra + "\r\n" + body
	}
	for _, c := range []struct {
		name   string
		in     string
		status int
		answer bool
	}{
		{"bad-uri", req("sip:b@[::1", "", ""), 400, true},
		{"bad-uri-port", req("sip:b@example.com:999999", "", ""), 400, true},
		{"bad-uri-no-cseq", strings.Replace(req("sip:b%zz@x", "", ""), "CSeq: 7 MESSAGE\r\n", "", 1), 400, false},
		{"bad-method", "MES@SAGE" + req("sip:b@x", "", "")[len("MESSAGE"):], 400, false},
		{"too-large", req("sip:b@x", "", strings.Repeat("x", 2000)), 513, true},
		{"too-many", req("sip:b@x", strings.Repeat("X: y\r\n", 30), ""), 400, true},
		{"too-many-vias", req("sip:b@x", strings.Repeat("Via: SIP/2.0/UDP h;branch=z9hG4bK2\r\n", 30), ""), 400, false},
		{"line-too-long", req("sip:b@x", "Subject: "+strings.Repeat("s", 600)+"\r\n", ""), 400, true},
		{"from-too-long", strings.Replace(req("sip:b@x", "", strings.Repeat("x", 2000)), "<sip:a@example.com>",
			"<sip:"+strings.Repeat("a", 600)+"@x>", 1), 513, false},
		{"uri-too-long", req("sip:"+strings.Repeat("u", 600)+"@x", "", ""), 414, true},
		{"response", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n" + strings.Repeat("X: y\r\n", 30) + "\r\n", 400, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := lim.Parse([]byte(c.in))
			var pe *ParseError
			if m != nil || !errors.As(err, &pe) {
				t.Fatalf("Parse = %v, %v; want a *ParseError", m, err)
			}
			if pe.Status != c.status {
				t.Errorf("Status %d, want %d", pe.Status, c.status)
			}
			if !c.answer {
				if pe.Message != nil {
					t.Errorf("Message %q, want none", pe.Message)
				}
				return
			}
			r, ok := pe.Message.(*Request)
			if !ok {
				t.Fatalf("Message %v, want a request", pe.Message)
			}
			if r.Method != "MESSAGE" || r.Header.CallID() != "c1" {
				t.Errorf("request %s %q", r.Method, r.Header.CallID())
			}
			if cs, err := r.Header.CSeq(); err != nil || cs.Seq != 7 {
				t.Errorf("CSeq %v, %v", cs, err)
			}
			if v, err := r.Header.TopVia(); err != nil || v.Branch() != "z9hG4bK1" {
				t.Errorf("Via %v, %v", v, err)
			}
		})
	}
}
