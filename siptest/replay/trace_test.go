package replay

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	register = "REGISTER sip:example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKrec1;rport\r\n" +
		"From: <sip:bob@example.com>;tag=rectag\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"Call-ID: reccallid\r\n" +
		"CSeq: 100 REGISTER\r\n" +
		"Content-Length: 0\r\n\r\n"
	// A body with a line that looks like a marker, and no final CRLF.
	msgMESSAGE = "MESSAGE sip:alice@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKrec2\r\n" +
		"Content-Type: text/plain\r\n" +
		"Content-Length: 17\r\n\r\n" +
		"hi\n--- 1s A->B\n#x"
)

func sampleTrace() *Trace {
	return &Trace{
		Title:    "a sample",
		A:        Party{Name: "proxy", Addr: netip.MustParseAddrPort("10.0.0.1:5060"), Description: "a proxy,  with spaces"},
		B:        Party{Name: "ua", Addr: netip.MustParseAddrPort("[2001:db8::2]:5070")},
		Fields:   []Field{{"Recorded", "today"}, {"Transport", "UDP"}},
		Comments: []string{"first comment", "", "third"},
		Messages: []Message{
			{At: 0, From: SideB, Data: []byte(register), Note: "the first\n\nand a blank line"},
			{At: 12345 * time.Microsecond, From: SideA, Data: []byte("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")},
			{At: time.Second, From: SideB, Data: []byte(msgMESSAGE)},
			{At: 2 * time.Second, From: SideB, Data: []byte("\r\n\r\n")},                             // a keep-alive
			{At: 3 * time.Second, From: SideA, Data: []byte("SIP/2.0 200 OK\r\nVia: x\r\n\r\nbody")}, // no Content-Length
			{At: 4 * time.Second, From: SideA, Data: []byte("SIP/2.0 200 OK\nContent-Length: 2\n\nok")},
		},
	}
}

// TestTraceRoundTrip: WriteTrace then ReadTrace gives the trace back, and
// writing it again gives the same bytes.
func TestTraceRoundTrip(t *testing.T) {
	tr := sampleTrace()
	var buf bytes.Buffer
	require.NoError(t, WriteTrace(&buf, tr))
	t.Logf("\n%s", buf.String())
	got, err := ReadTrace(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, tr, got)

	var again bytes.Buffer
	require.NoError(t, WriteTrace(&again, got))
	assert.Equal(t, buf.String(), again.String())

	s := buf.String()
	assert.True(t, strings.HasPrefix(s, "SIPTRACE/1\nTitle: a sample\nA: proxy 10.0.0.1:5060 a proxy,  with spaces\nB: ua [2001:db8::2]:5070\n"))
	assert.Contains(t, s, "--- 0.000000s B->A\n"+register+"\n")
	assert.Contains(t, s, "--- 0.012345s A->B\n")
	assert.Contains(t, s, "--- 1.000000s B->A\n"+msgMESSAGE+"\n")
	assert.Contains(t, s, "--- 2.000000s B->A len=4\n\r\n\r\n\n", "a keep-alive needs its length")
	assert.Contains(t, s, "--- 3.000000s A->B len=", "so does a message without Content-Length")
	assert.Contains(t, s, "--- 4.000000s A->B\n", "LF line ends frame too")
	assert.Contains(t, s, "# the first\n#\n# and a blank line\n--- 0.000000s")
	assert.Equal(t, []string{"B->A REGISTER", "A->B 200", "B->A MESSAGE", "B->A CRLFCRLF", "A->B 200", "A->B 200"}, got.Flow())
	v, ok := got.Field("transport")
	assert.True(t, ok)
	assert.Equal(t, "UDP", v)
}

// TestReadTraceTolerant: CRLF marker lines, blank lines between messages,
// a missing final line feed, a byte-order mark.
func TestReadTraceTolerant(t *testing.T) {
	in := "\uFEFFSIPTRACE/1\r\nTitle: t\r\n\r\n\r\n--- 0.5s B->A\r\n" + register + "\r\n\r\n\n--- 1s A->B\r\n" + register
	tr, err := ReadTrace(strings.NewReader(in))
	require.NoError(t, err)
	require.Len(t, tr.Messages, 2)
	assert.Equal(t, 500*time.Millisecond, tr.Messages[0].At)
	assert.Equal(t, register, string(tr.Messages[0].Data))
	assert.Equal(t, register, string(tr.Messages[1].Data))
	assert.Equal(t, "t", tr.Title)
}

// TestReadTraceErrors: malformed files fail with ErrFormat and say where.
func TestReadTraceErrors(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
	}{
		{"empty", "", "empty input"},
		{"magic", "SIPTRACE/2\n", `not "SIPTRACE/1"`},
		{"header", "SIPTRACE/1\nno colon here\n", `line 2: a header line must be`},
		{"party", "SIPTRACE/1\nA: x not-an-address\n", "party A: address"},
		{"twice", "SIPTRACE/1\nTitle: a\nTitle: b\n", "line 3: field Title given twice"},
		{"marker", "SIPTRACE/1\n\n--- soon B->A\n" + register, "line 3: time"},
		{"direction", "SIPTRACE/1\n\n--- 1s B->B\n" + register, "direction"},
		{"attribute", "SIPTRACE/1\n\n--- 1s B->A size=3\nabc\n", `unknown attribute "size=3"`},
		{"short", "SIPTRACE/1\n\n--- 1s B->A len=30\nabc\n", "message of 30 bytes"},
		{"no end of header", "SIPTRACE/1\n\n--- 1s B->A\nREGISTER sip:x SIP/2.0\r\n", "no end of its header section"},
		{"content-length too small", "SIPTRACE/1\n\n--- 1s B->A\n" + strings.Replace(msgMESSAGE, "17", "5", 1) + "\n",
			"a message must be followed by a line break"},
		{"content-length too large", "SIPTRACE/1\n\n--- 1s B->A\n" + strings.Replace(msgMESSAGE, "17", "99", 1) + "\n",
			"shorter than Content-Length"},
		{"bad content-length", "SIPTRACE/1\n\n--- 1s B->A\n" + strings.Replace(msgMESSAGE, "17", "x", 1) + "\n",
			"Content-Length is malformed"},
		{"text between", "SIPTRACE/1\n\n--- 1s B->A\n" + register + "\nstray text\n", "line 12: unexpected text"},
		{"trailing comment", "SIPTRACE/1\n\n--- 1s B->A\n" + register + "\n# dangling\n", "comment lines after the last message"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadTrace(strings.NewReader(c.in))
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrFormat), "%v", err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// TestWriteTraceErrors: what the format cannot hold is refused.
func TestWriteTraceErrors(t *testing.T) {
	var buf bytes.Buffer
	assert.Error(t, WriteTrace(&buf, &Trace{A: Party{Name: "two words"}}))
	assert.Error(t, WriteTrace(&buf, &Trace{Fields: []Field{{"bad name", "v"}}}))
	assert.Error(t, WriteTrace(&buf, &Trace{Fields: []Field{{"Title", "v"}}}))
	assert.Error(t, WriteTrace(&buf, &Trace{Messages: []Message{{From: 'C', Data: []byte("x")}}}))
}

// TestRepositoryTracesRoundTrip: the recorded traces of the repository
// are in canonical form.
func TestRepositoryTracesRoundTrip(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "traces", "*.trace"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		tr, err := ReadTrace(bytes.NewReader(b))
		require.NoError(t, err, f)
		var again bytes.Buffer
		require.NoError(t, WriteTrace(&again, tr))
		assert.Equal(t, string(b), again.String(), f)
	}
}

func TestFrameLength(t *testing.T) {
	for _, c := range []struct {
		in string
		n  int
		ok bool
	}{
		{register, len(register), true},
		{register + "extra", len(register), true},
		{msgMESSAGE, len(msgMESSAGE), true},
		{"INVITE x SIP/2.0\r\nl: 3\r\n\r\nabc", 29, true},
		{"INVITE x SIP/2.0\r\nl: 4\r\n\r\nabc", 0, false},
		{"INVITE x SIP/2.0\r\n", 0, false},
		{"INVITE x SIP/2.0\r\nContent-Length: -1\r\n\r\n", 0, false},
	} {
		n, ok := FrameLength([]byte(c.in))
		assert.Equal(t, c.ok, ok, "%q", c.in)
		assert.Equal(t, c.n, n, "%q", c.in)
	}
}

func TestSide(t *testing.T) {
	assert.Equal(t, "A", SideA.String())
	assert.Equal(t, "B", SideB.String())
	assert.Equal(t, "Side(67)", Side('C').String())
	assert.Equal(t, SideB, SideA.Other())
	assert.Equal(t, SideA, Message{From: SideB}.To())
}

// FuzzReadTrace: whatever ReadTrace accepts, WriteTrace writes so that
// ReadTrace reads it back the same.
func FuzzReadTrace(f *testing.F) {
	var buf bytes.Buffer
	if err := WriteTrace(&buf, sampleTrace()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("SIPTRACE/1\n\n--- 1s B->A len=3\nabc\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := ReadTrace(bytes.NewReader(in))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteTrace(&out, tr); err != nil {
			return // e.g. a party name the reader took but the writer refuses
		}
		again, err := ReadTrace(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("reading back what WriteTrace wrote: %v\n%q", err, out.Bytes())
		}
		normalize := func(tr *Trace) {
			for i := range tr.Messages {
				tr.Messages[i].At = tr.Messages[i].At.Round(time.Microsecond)
				if len(tr.Messages[i].Data) == 0 {
					tr.Messages[i].Data = nil
				}
			}
		}
		normalize(tr)
		normalize(again)
		assert.Equal(t, tr, again)
	})
}
