package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sipua/sip/siptest"
)

// Magic is the first line of every trace file: the format's name and
// version.
const Magic = "SIPTRACE/1"

// ErrFormat is wrapped by every error ReadTrace returns for a file that is
// not a well-formed trace.
var ErrFormat = errors.New("replay: malformed trace")

// Side names one of the two parties of a Trace.
type Side byte

// The two sides of a trace. By convention SideB is the user agent under
// test (the one Play checks) and SideA the peer Play simulates.
const (
	SideA Side = 'A'
	SideB Side = 'B'
)

// String returns "A" or "B".
func (s Side) String() string {
	switch s {
	case SideA, SideB:
		return string(rune(s))
	}
	return "Side(" + strconv.Itoa(int(s)) + ")"
}

// Other returns the other side.
func (s Side) Other() Side {
	if s == SideA {
		return SideB
	}
	return SideA
}

// Party describes one side of a trace.
type Party struct {
	// Name is a short label without spaces, e.g. "kamailio" or "sipua",
	// used in ladders and messages.
	Name string
	// Addr is the address this side sent from and received on when the
	// trace was recorded; the zero value when unknown.
	Addr netip.AddrPort
	// Description is free text: what software, which role.
	Description string
}

// Field is a header field of a trace file other than Title, A and B, such
// as "Recorded" or "Transport".
type Field struct {
	Name, Value string
}

// Message is one datagram of a trace.
type Message struct {
	// At is when it was sent, counted from the start of the recording.
	// The file format keeps microseconds.
	At time.Duration
	// From is the side that sent it; the other side received it.
	From Side
	// Data is the datagram as it went over the wire: a SIP message, or a
	// keep-alive (CRLF).
	Data []byte
	// Note is a comment about the message (the "#" lines before it in the
	// file, without the "# "), lines joined by "\n".
	Note string
}

// To returns the side that received m.
func (m Message) To() Side { return m.From.Other() }

// Summary returns the label of m: the method of a request ("INVITE"), the
// status and reason of a response ("401 Unauthorized"), "CRLF" or
// "CRLFCRLF" for a keep-alive (see siptest.Summarize).
func (m Message) Summary() string {
	full, _ := siptest.Summarize(m.Data)
	return full
}

// Trace is a recorded exchange of SIP messages between two parties, A and
// B, in the order they were sent. Read and write it with ReadTrace and
// WriteTrace; see the package documentation for the file format.
type Trace struct {
	// Title says in one line what the trace shows.
	Title string
	// A and B describe the two sides.
	A, B Party
	// Fields are further header fields, in order.
	Fields []Field
	// Comments are the "#" lines of the file's header, without the "# ".
	Comments []string
	// Messages are the datagrams, in the order they were sent.
	Messages []Message
}

// Party returns the description of side s.
func (t *Trace) Party(s Side) Party {
	if s == SideA {
		return t.A
	}
	return t.B
}

// Field returns the value of the header field called name (compared
// case-insensitively) and whether there is one.
func (t *Trace) Field(name string) (string, bool) {
	for _, f := range t.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// Flow returns one line per message, "B->A REGISTER", "A->B 401", for
// assertions and logs.
func (t *Trace) Flow() []string {
	out := make([]string, len(t.Messages))
	for i, m := range t.Messages {
		_, short := siptest.Summarize(m.Data)
		out[i] = m.From.String() + "->" + m.To().String() + " " + short
	}
	return out
}

// Ladder renders the trace as a ladder diagram (see siptest.Ladder), the
// parties labelled with their names.
func (t *Trace) Ladder() string {
	var start time.Time
	addr := map[Side]netip.AddrPort{
		SideA: siptest.TestNetAddr(1, 1),
		SideB: siptest.TestNetAddr(2, 2),
	}
	names := map[netip.AddrPort]string{addr[SideA]: partyLabel(t.A, "A"), addr[SideB]: partyLabel(t.B, "B")}
	events := make([]siptest.Event, 0, 2*len(t.Messages))
	for i, m := range t.Messages {
		e := siptest.Event{Kind: siptest.EventSent, ID: uint64(i + 1), At: start.Add(m.At),
			From: addr[m.From], To: addr[m.To()], Data: m.Data}
		events = append(events, e)
		e.Kind = siptest.EventDelivered
		events = append(events, e)
	}
	return siptest.Ladder(events, siptest.LadderOptions{Start: start, Names: names})
}

func partyLabel(p Party, def string) string {
	if p.Name != "" {
		return p.Name
	}
	return def
}

// FrameLength returns the length of the SIP message at the start of b as
// framed by its Content-Length: the header section up to and including
// the empty line (CRLF CRLF, or LF LF), then Content-Length bytes (none
// without the header). ok is false when b has no complete header section,
// when Content-Length is malformed, or when b is shorter than the frame.
func FrameLength(b []byte) (n int, ok bool) {
	end := headerEnd(b)
	if end < 0 {
		return 0, false
	}
	cl, ok := contentLength(b[:end])
	if !ok || end+cl > len(b) {
		return 0, false
	}
	return end + cl, true
}

// contentLength returns the value of the Content-Length (or compact "l")
// header line of a header section, 0 without one; ok is false when it is
// malformed.
func contentLength(hdr []byte) (n int, ok bool) {
	for len(hdr) > 0 {
		line := hdr
		if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
			line, hdr = hdr[:i], hdr[i+1:]
		} else {
			hdr = nil
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			continue
		}
		name = bytes.TrimSpace(name)
		if !bytes.EqualFold(name, []byte("Content-Length")) && !bytes.EqualFold(name, []byte("l")) {
			continue
		}
		v, err := strconv.Atoi(string(bytes.TrimSpace(value)))
		if err != nil || v < 0 {
			return 0, false
		}
		n = v
	}
	return n, true
}

// headerEnd returns the index just past the empty line that ends the
// header section of b, or -1.
func headerEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return -1
}

// selfFramed reports whether data can be written without a length: it is
// a SIP message that its Content-Length frames exactly.
func selfFramed(data []byte) bool {
	if len(data) == 0 || data[0] == '\r' || data[0] == '\n' || data[0] == '#' || bytes.HasPrefix(data, []byte("---")) {
		return false
	}
	n, ok := FrameLength(data)
	return ok && n == len(data)
}

// formatOffset writes d as seconds with six decimals and an "s".
func formatOffset(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	us := int64(d.Round(time.Microsecond) / time.Microsecond)
	s := fmt.Sprintf("%d.%06ds", us/1e6, us%1e6)
	if neg {
		s = "-" + s
	}
	return s
}

// WriteTrace writes t to w in the trace file format (see the package
// documentation). Message times are written to the microsecond. A message
// that its own Content-Length does not frame exactly (a keep-alive, a
// message without Content-Length) is written with an explicit length.
func WriteTrace(w io.Writer, t *Trace) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(Magic + "\n")
	if t.Title != "" {
		fmt.Fprintf(bw, "Title: %s\n", oneLine(t.Title))
	}
	for _, p := range []struct {
		side  Side
		party Party
	}{{SideA, t.A}, {SideB, t.B}} {
		if p.party == (Party{}) {
			continue
		}
		name := p.party.Name
		if name == "" {
			name = "-"
		}
		if strings.ContainsAny(name, " \t") {
			return fmt.Errorf("replay: party %v: name %q has spaces", p.side, name)
		}
		addr := "-"
		if p.party.Addr.IsValid() {
			addr = p.party.Addr.String()
		}
		line := fmt.Sprintf("%v: %s %s", p.side, name, addr)
		if p.party.Description != "" {
			line += " " + oneLine(p.party.Description)
		}
		bw.WriteString(line + "\n")
	}
	for _, f := range t.Fields {
		if !validFieldName(f.Name) || isReserved(f.Name) {
			return fmt.Errorf("replay: invalid trace field name %q", f.Name)
		}
		fmt.Fprintf(bw, "%s: %s\n", f.Name, oneLine(f.Value))
	}
	for _, c := range t.Comments {
		writeComment(bw, c)
	}
	if len(t.Messages) > 0 {
		bw.WriteString("\n")
	}
	for i, m := range t.Messages {
		if m.From != SideA && m.From != SideB {
			return fmt.Errorf("replay: message %d: invalid side %v", i, m.From)
		}
		if m.Note != "" {
			for _, l := range strings.Split(m.Note, "\n") {
				writeComment(bw, l)
			}
		}
		marker := fmt.Sprintf("--- %s %v->%v", formatOffset(m.At), m.From, m.To())
		if !selfFramed(m.Data) {
			marker += " len=" + strconv.Itoa(len(m.Data))
		}
		bw.WriteString(marker + "\n")
		bw.Write(m.Data)
		bw.WriteString("\n")
	}
	return bw.Flush()
}

func writeComment(w *bufio.Writer, c string) {
	c = oneLine(c)
	if c == "" {
		w.WriteString("#\n")
		return
	}
	w.WriteString("# " + c + "\n")
}

// oneLine replaces line breaks with spaces.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

func validFieldName(s string) bool {
	// A letter first: a name starting with "-" would be written as a
	// line that reads back as a message marker.
	if s == "" || !(s[0] >= 'A' && s[0] <= 'Z' || s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func isReserved(name string) bool {
	return strings.EqualFold(name, "Title") || name == "A" || name == "B"
}

// reader reads a trace file, counting lines for error messages.
type reader struct {
	r    *bufio.Reader
	line int
}

func (r *reader) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrFormat, r.line, fmt.Sprintf(format, args...))
}

// readLine returns the next line without its LF (or CRLF); io.EOF at the
// end of the input. A last line without LF is returned as a line.
func (r *reader) readLine() (string, error) {
	s, err := r.r.ReadString('\n')
	if err == io.EOF && s == "" {
		return "", io.EOF
	}
	if err != nil && err != io.EOF {
		return "", err
	}
	r.line++
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	return s, nil
}

// ReadTrace reads a trace in the file format described in the package
// documentation. Errors about the content wrap ErrFormat and give the line
// number.
func ReadTrace(rd io.Reader) (*Trace, error) {
	r := &reader{r: bufio.NewReader(rd)}
	first, err := r.readLine()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: empty input", ErrFormat)
	}
	if err != nil {
		return nil, err
	}
	first = strings.TrimPrefix(first, "\uFEFF")
	if strings.TrimSpace(first) != Magic {
		return nil, r.errorf("the first line is %q, not %q", truncate(first), Magic)
	}
	t := &Trace{}
	var comments []string
	seen := map[string]bool{}
	inHeader := true
	for {
		line, err := r.readLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		// Text lines hold no CR: WriteTrace writes one as a space.
		line = strings.ReplaceAll(line, "\r", " ")
		switch {
		case strings.HasPrefix(line, "#"):
			c := strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ")
			if inHeader {
				t.Comments = append(t.Comments, c)
			} else {
				comments = append(comments, c)
			}
			continue
		case strings.TrimSpace(line) == "":
			// The header block ends at the first blank line; comments
			// after it belong to the next message.
			inHeader = false
			continue
		case strings.HasPrefix(line, "---"):
			inHeader = false
			m, err := r.readMessage(line)
			if err != nil {
				return nil, err
			}
			m.Note = strings.Join(comments, "\n")
			comments = nil
			t.Messages = append(t.Messages, m)
			continue
		}
		if !inHeader {
			return nil, r.errorf("unexpected text %q between messages (a wrong Content-Length?); a message starts with a \"---\" line", truncate(line))
		}
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || !validFieldName(name) {
			return nil, r.errorf("a header line must be \"Name: value\", got %q", truncate(line))
		}
		key := strings.ToLower(name)
		if isReserved(name) && seen[key] {
			return nil, r.errorf("field %s given twice", name)
		}
		seen[key] = true
		switch {
		case strings.EqualFold(name, "Title"):
			t.Title = value
		case name == "A" || name == "B":
			p, err := parseParty(value)
			if err != nil {
				return nil, r.errorf("party %s: %v", name, err)
			}
			if name == "A" {
				t.A = p
			} else {
				t.B = p
			}
		default:
			t.Fields = append(t.Fields, Field{Name: name, Value: value})
		}
	}
	if len(comments) > 0 {
		return nil, r.errorf("comment lines after the last message")
	}
	return t, nil
}

// parseParty parses "name addr description…" ("-" for an unknown name or
// address).
func parseParty(s string) (Party, error) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return Party{}, errors.New("want \"name address [description]\"")
	}
	p := Party{Name: f[0]}
	if p.Name == "-" {
		p.Name = ""
	}
	if f[1] != "-" {
		a, err := netip.ParseAddrPort(f[1])
		if err != nil {
			return Party{}, fmt.Errorf("address %q: %v", f[1], err)
		}
		p.Addr = a
	}
	// The description is the rest of the line after the second field,
	// with its inner spacing kept.
	rest := strings.TrimSpace(s)
	for range 2 {
		rest = strings.TrimLeft(rest, " \t")
		if i := strings.IndexAny(rest, " \t"); i >= 0 {
			rest = rest[i:]
		} else {
			rest = ""
		}
	}
	p.Description = strings.TrimSpace(rest)
	return p, nil
}

// readMessage reads the message introduced by the marker line.
func (r *reader) readMessage(marker string) (Message, error) {
	f := strings.Fields(marker)
	if len(f) < 3 || f[0] != "---" {
		return Message{}, r.errorf("a message line is \"--- <time> <from>-><to> [len=N]\", got %q", truncate(marker))
	}
	at, err := time.ParseDuration(f[1])
	if err != nil {
		return Message{}, r.errorf("time %q: want seconds such as 0.012345s", f[1])
	}
	m := Message{At: at}
	switch f[2] {
	case "A->B":
		m.From = SideA
	case "B->A":
		m.From = SideB
	default:
		return Message{}, r.errorf("direction %q: want A->B or B->A", f[2])
	}
	length := -1
	for _, attr := range f[3:] {
		v, ok := strings.CutPrefix(attr, "len=")
		if !ok {
			return Message{}, r.errorf("unknown attribute %q", attr)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxBody {
			return Message{}, r.errorf("bad length %q (at most %d)", attr, maxBody)
		}
		length = n
	}
	if length >= 0 {
		m.Data = make([]byte, length)
		if _, err := io.ReadFull(r.r, m.Data); err != nil {
			return Message{}, r.errorf("message of %d bytes: %v", length, err)
		}
	} else if m.Data, err = r.readFramed(); err != nil {
		return Message{}, err
	}
	r.line += bytes.Count(m.Data, []byte("\n"))
	// The line break that ends the record.
	b, err := r.r.Peek(2)
	switch {
	case len(b) >= 1 && b[0] == '\n':
		r.r.Discard(1)
	case len(b) == 2 && b[0] == '\r' && b[1] == '\n':
		r.r.Discard(2)
	case err == io.EOF && len(b) == 0:
	default:
		return Message{}, r.errorf("a message must be followed by a line break (a wrong Content-Length or len=?)")
	}
	return m, nil
}

// readFramed reads a SIP message framed by its header section and
// Content-Length.
func (r *reader) readFramed() ([]byte, error) {
	var buf []byte
	start := r.line + 1
	for {
		chunk, err := r.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			return nil, fmt.Errorf("%w: line %d: the message has no end of its header section (an empty line)", ErrFormat, start)
		}
		if err != nil {
			return nil, err
		}
		if len(chunk) == 1 || len(chunk) == 2 && chunk[0] == '\r' {
			if bytes.Equal(buf, chunk) {
				return nil, fmt.Errorf("%w: line %d: empty message", ErrFormat, start)
			}
			break // the empty line
		}
	}
	n, ok := contentLength(buf)
	if !ok || n > maxBody {
		return nil, fmt.Errorf("%w: line %d: the message's Content-Length is malformed or larger than %d", ErrFormat, start, maxBody)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.r, body); err != nil {
		return nil, fmt.Errorf("%w: line %d: the body is shorter than Content-Length %d", ErrFormat, start, len(body))
	}
	return append(buf, body...), nil
}

// maxBody bounds the Content-Length and the len= of a message ReadTrace
// accepts (a trace is read before its sizes can be trusted).
const maxBody = 1 << 20

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
