// Package bench compares github.com/sipua/sip/message with
// github.com/emiago/sipgo/sip on the same wire messages. It is a separate
// module so that sipgo never enters the main module's dependencies.
//
// Every benchmark has one sub-benchmark per library, lib=sipua and
// lib=sipgo, so benchstat can put them side by side with -col /lib.
package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	sipgo "github.com/emiago/sipgo/sip"
	"github.com/sipua/sip/message"
)

// The inputs live in the main module's testdata so that its own
// benchmarks use the very same bytes.
var inputs = []string{"invite.sip", "register-200.sip", "options.sip"}

func load(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "message", "testdata", "bench", name))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// keys are what a transaction and a dialog layer key on.
type keys struct {
	branch, fromTag, toTag, callID string
	seq                            uint32
	method                         string
}

func sipuaParse(tb testing.TB, data []byte) message.Message {
	m, err := message.Parse(data)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func sipgoParse(tb testing.TB, data []byte) sipgo.Message {
	m, err := sipgo.ParseMessage(data)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func sipuaKeys(tb testing.TB, m message.Message) keys {
	h := m.Headers()
	via, err := h.TopVia()
	if err != nil {
		tb.Fatal(err)
	}
	cseq, err := h.CSeq()
	if err != nil {
		tb.Fatal(err)
	}
	return keys{
		branch:  via.Branch(),
		fromTag: h.FromTag(),
		toTag:   h.ToTag(),
		callID:  h.CallID(),
		seq:     cseq.Seq,
		method:  cseq.Method,
	}
}

func sipgoKeys(tb testing.TB, m sipgo.Message) keys {
	via, from, to, callID, cseq := m.Via(), m.From(), m.To(), m.CallID(), m.CSeq()
	if via == nil || from == nil || to == nil || callID == nil || cseq == nil {
		tb.Fatal("sipgo: a key header is missing")
	}
	var k keys
	k.branch, _ = via.Params.Get("branch")
	k.fromTag, _ = from.Params.Get("tag")
	k.toTag, _ = to.Params.Get("tag")
	k.callID = string(*callID)
	k.seq = cseq.SeqNo
	k.method = string(cseq.MethodName)
	return k
}

// TestSameKeys checks that both libraries accept every input and read the
// same keys from it, so the benchmarks compare like with like.
func TestSameKeys(t *testing.T) {
	for _, name := range inputs {
		data := load(t, name)
		a := sipuaKeys(t, sipuaParse(t, data))
		g := sipgoKeys(t, sipgoParse(t, data))
		if a != g {
			t.Errorf("%s: sipua %+v, sipgo %+v", name, a, g)
		}
		if a.branch == "" || a.fromTag == "" || a.callID == "" || a.method == "" {
			t.Errorf("%s: keys not read: %+v", name, a)
		}
	}
}

// TestWriteSameLength checks that both libraries write the INVITE back
// with the same length (sipgo may reorder parameters or spacing, but not
// add or drop content), so the write benchmarks move the same bytes.
func TestWriteSameLength(t *testing.T) {
	data := load(t, "invite.sip")
	a := sipuaParse(t, data).String()
	if a != string(data) {
		t.Errorf("sipua does not write the INVITE back byte for byte:\n%s", a)
	}
	g := sipgoParse(t, data).String()
	if len(g) != len(data) {
		t.Errorf("sipgo writes %d bytes, input has %d:\n%s", len(g), len(data), g)
	}
}

func benchParse(b *testing.B, name string) {
	data := load(b, name)
	b.Run("lib=sipua", func(b *testing.B) {
		sipuaParse(b, data)
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := message.Parse(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lib=sipgo", func(b *testing.B) {
		sipgoParse(b, data)
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := sipgo.ParseMessage(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkParseInvite(b *testing.B)      { benchParse(b, "invite.sip") }
func BenchmarkParseRegister200(b *testing.B) { benchParse(b, "register-200.sip") }
func BenchmarkParseOptions(b *testing.B)     { benchParse(b, "options.sip") }

var sinkKeys keys

// BenchmarkParseInviteKeys parses and reads the transaction and dialog
// keys: top Via branch, From tag, To tag, Call-ID, CSeq. sipua parses
// header values lazily, sipgo parses these headers while parsing the
// message, so this is the fairer parse comparison.
func BenchmarkParseInviteKeys(b *testing.B) {
	data := load(b, "invite.sip")
	b.Run("lib=sipua", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			sinkKeys = sipuaKeys(b, sipuaParse(b, data))
		}
	})
	b.Run("lib=sipgo", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			sinkKeys = sipgoKeys(b, sipgoParse(b, data))
		}
	})
}

// BenchmarkWriteInvite writes a parsed INVITE into a reused buffer.
func BenchmarkWriteInvite(b *testing.B) {
	data := load(b, "invite.sip")
	b.Run("lib=sipua", func(b *testing.B) {
		m := sipuaParse(b, data)
		buf := m.AppendTo(nil)
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			buf = m.AppendTo(buf[:0])
		}
	})
	b.Run("lib=sipgo", func(b *testing.B) {
		m := sipgoParse(b, data)
		var buf bytes.Buffer
		m.StringWrite(&buf)
		b.ReportAllocs()
		b.SetBytes(int64(buf.Len()))
		for b.Loop() {
			buf.Reset()
			m.StringWrite(&buf)
		}
	})
}

var sinkString string

// BenchmarkStringInvite writes a parsed INVITE as a new string.
func BenchmarkStringInvite(b *testing.B) {
	data := load(b, "invite.sip")
	b.Run("lib=sipua", func(b *testing.B) {
		m := sipuaParse(b, data)
		b.ReportAllocs()
		b.SetBytes(int64(len(m.String())))
		for b.Loop() {
			sinkString = m.String()
		}
	})
	b.Run("lib=sipgo", func(b *testing.B) {
		m := sipgoParse(b, data)
		b.ReportAllocs()
		b.SetBytes(int64(len(m.String())))
		for b.Loop() {
			sinkString = m.String()
		}
	})
}

// BenchmarkResponseFromInvite builds a 200 OK to a parsed INVITE as a UAS
// does (RFC 3261 §8.2.6) and writes it into a reused buffer. sipua is
// given the To tag; sipgo makes a random one (a UUID) on every call and
// also fills in received/rport from the request's source, so part of the
// gap is work sipua does not do here.
func BenchmarkResponseFromInvite(b *testing.B) {
	data := load(b, "invite.sip")
	b.Run("lib=sipua", func(b *testing.B) {
		m := sipuaParse(b, data)
		req, ok := m.(*message.Request)
		if !ok {
			b.Fatal("not a request")
		}
		buf := message.NewResponse(req, 200, "", "tag123").AppendTo(nil)
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			res := message.NewResponse(req, 200, "", "tag123")
			buf = res.AppendTo(buf[:0])
		}
	})
	b.Run("lib=sipgo", func(b *testing.B) {
		m := sipgoParse(b, data)
		req, ok := m.(*sipgo.Request)
		if !ok {
			b.Fatal("not a request")
		}
		var buf bytes.Buffer
		sipgo.NewResponseFromRequest(req, 200, "OK", nil).StringWrite(&buf)
		b.ReportAllocs()
		b.SetBytes(int64(buf.Len()))
		for b.Loop() {
			res := sipgo.NewResponseFromRequest(req, 200, "OK", nil)
			buf.Reset()
			res.StringWrite(&buf)
		}
	})
}
