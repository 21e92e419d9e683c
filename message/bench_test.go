package message

import (
	"os"
	"path/filepath"
	"testing"
)

// The benchmark messages are realistic wire messages kept as files with
// CRLF line ends and an exact Content-Length. The separate bench/ module
// runs the same files through another SIP library for comparison.

func loadBench(b *testing.B, name string) []byte {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "bench", name))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func benchParse(b *testing.B, name string) {
	data := loadBench(b, name)
	if _, err := Parse(data); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseInvite(b *testing.B)      { benchParse(b, "invite.sip") }
func BenchmarkParseRegister200(b *testing.B) { benchParse(b, "register-200.sip") }
func BenchmarkParseOptions(b *testing.B)     { benchParse(b, "options.sip") }

var sinkKeys struct {
	branch, fromTag, toTag, callID string
	cseq                           CSeq
}

// BenchmarkParseInviteKeys parses and reads what a transaction layer and a
// dialog layer key on: the top Via branch, the From and To tags, the
// Call-ID and the CSeq.
func BenchmarkParseInviteKeys(b *testing.B) {
	data := loadBench(b, "invite.sip")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		h := m.Headers()
		via, err := h.TopVia()
		if err != nil {
			b.Fatal(err)
		}
		cseq, err := h.CSeq()
		if err != nil {
			b.Fatal(err)
		}
		sinkKeys.branch = via.Branch()
		sinkKeys.fromTag = h.FromTag()
		sinkKeys.toTag = h.ToTag()
		sinkKeys.callID = h.CallID()
		sinkKeys.cseq = cseq
	}
	if sinkKeys.branch == "" || sinkKeys.fromTag == "" || sinkKeys.callID == "" || sinkKeys.cseq.Method != "INVITE" {
		b.Fatalf("keys not read: %+v", sinkKeys)
	}
}

func BenchmarkParseInviteValidate(b *testing.B) {
	data := loadBench(b, "invite.sip")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func parseBenchInvite(b *testing.B) (*Request, []byte) {
	data := loadBench(b, "invite.sip")
	req, err := ParseRequest(data)
	if err != nil {
		b.Fatal(err)
	}
	return req, data
}

func BenchmarkWriteInvite(b *testing.B) {
	req, data := parseBenchInvite(b)
	buf := req.AppendTo(nil)
	if string(buf) != string(data) {
		b.Fatalf("written INVITE differs from the input:\n%s", buf)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = req.AppendTo(buf[:0])
	}
}

var sinkString string

func BenchmarkStringInvite(b *testing.B) {
	req, _ := parseBenchInvite(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(req.String())))
	for b.Loop() {
		sinkString = req.String()
	}
}

func BenchmarkResponseFromInvite(b *testing.B) {
	req, _ := parseBenchInvite(b)
	buf := NewResponse(req, 200, "", "tag123").AppendTo(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		resp := NewResponse(req, 200, "", "tag123")
		buf = resp.AppendTo(buf[:0])
	}
}
