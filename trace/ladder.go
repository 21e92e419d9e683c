package trace

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sipua/sip/message"
)

// Ladder is the sequence diagram of one call (one Call-ID): the
// participants, as columns, and the messages between them, in time order.
// NewLadder builds it from traced events; WriteSVG and WriteMermaid draw
// it. The fields may also be filled in by hand.
type Ladder struct {
	// Title is written above the diagram.
	Title string
	// Participants are the column names, left to right.
	Participants []string
	// Steps are the messages, in order.
	Steps []Step
	// Location is the time zone of the times shown. Nil: UTC.
	Location *time.Location
}

// Step is one message of a Ladder.
type Step struct {
	// Time is when it was sent (or received, if only that was traced).
	Time time.Time
	// From and To index Ladder.Participants.
	From, To int
	// Label names the message: the method of a request, the status code
	// and reason of a response, with " (SDP)" or another body type
	// appended when it has a body, e.g. "INVITE (SDP)", "180 Ringing".
	Label string
	// Transport is the transport protocol, e.g. "UDP".
	Transport string
	// StatusCode is the status code of a response; 0 for a request.
	StatusCode int
	// Retransmission is true for a copy of a message already sent between
	// the same addresses.
	Retransmission bool
	// Malformed is true for a received message that did not parse.
	Malformed bool
}

// LadderOptions configures NewLadder. The zero value works.
type LadderOptions struct {
	// Name returns the participant name for an address, so that the
	// several addresses of one party (its UDP socket, the connections it
	// opened) share a column, and columns get readable names. Nil, or "":
	// the address itself, "127.0.0.1:5060".
	Name func(addr netip.AddrPort) string
	// Title is the Ladder's title. Empty: "Call-ID " and the Call-ID.
	Title string
	// Location is the time zone of the times shown. Nil: UTC.
	Location *time.Location
}

// NewLadder returns the ladder of the messages of events whose Call-ID is
// callID, sorted by time. A message traced twice (Sent by one UserAgent
// and Received by another of the same process) is drawn once, as Dedup
// does; failed sends are left out. Participants appear in the order they
// first send or receive.
func NewLadder(events []Event, callID string, opts LadderOptions) *Ladder {
	var evs []Event
	for _, ev := range events {
		if (ev.Dir == Sent || ev.Dir == Received) && ev.CallID() == callID {
			evs = append(evs, ev)
		}
	}
	slices.SortStableFunc(evs, func(a, b Event) int { return a.Time.Compare(b.Time) })
	var once []Event
	d := Dedup(Func(func(ev Event) { once = append(once, ev) }), 0)
	for _, ev := range evs {
		d.Trace(ev)
	}

	l := &Ladder{Title: opts.Title, Location: opts.Location}
	if l.Title == "" {
		l.Title = "Call-ID " + callID
	}
	col := map[string]int{}
	column := func(a netip.AddrPort) int {
		name := ""
		if opts.Name != nil {
			name = opts.Name(a)
		}
		if name == "" {
			name = a.String()
		}
		i, ok := col[name]
		if !ok {
			i = len(l.Participants)
			col[name] = i
			l.Participants = append(l.Participants, name)
		}
		return i
	}
	type seenKey struct {
		src, dst netip.AddrPort
		sum      uint64
		n        int
	}
	seen := map[seenKey]bool{}
	for _, ev := range once {
		s := Step{Time: ev.Time, Transport: ev.Transport, Malformed: ev.Err != nil}
		s.From = column(ev.Source())
		s.To = column(ev.Destination())
		s.Label, s.StatusCode = label(ev)
		h := fnv.New64a()
		_, _ = h.Write(ev.Raw)
		k := seenKey{ev.Source(), ev.Destination(), h.Sum64(), len(ev.Raw)}
		s.Retransmission = seen[k]
		seen[k] = true
		l.Steps = append(l.Steps, s)
	}
	return l
}

// label returns the Step label of a message and its status code.
func label(ev Event) (string, int) {
	var s string
	code := 0
	switch m := ev.Message.(type) {
	case *message.Request:
		s = m.Method
	case *message.Response:
		code = m.StatusCode
		s = strconv.Itoa(m.StatusCode)
		if m.Reason != "" {
			s += " " + m.Reason
		}
	default:
		return "malformed", 0
	}
	if len(ev.Message.Content()) > 0 {
		ct := ev.Message.Headers().MediaType()
		switch ct {
		case "application/sdp":
			s += " (SDP)"
		case "":
		default:
			s += " (" + ct + ")"
		}
	}
	return s, code
}

func (l *Ladder) loc() *time.Location {
	if l.Location == nil {
		return time.UTC
	}
	return l.Location
}

// text returns the label of s as drawn, with a retransmission or a
// malformed message marked.
func (s Step) text() string {
	t := s.Label
	if s.Retransmission {
		t += " (retransmission)"
	}
	if s.Malformed {
		t += " (malformed)"
	}
	return t
}

// WriteMermaid writes l as a Mermaid sequence diagram
// (https://mermaid.js.org/syntax/sequenceDiagram.html): requests as solid
// arrows, responses as dotted ones, each preceded by a %% comment with its
// time and transport. Characters that end a message or break the
// rendering ("#", ";", "<", ">") are written as look-alikes ("＃", "；",
// "‹", "›"): Mermaid's own #code; escapes are not decoded in sequence
// diagrams by Mermaid 11.
func (l *Ladder) WriteMermaid(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("sequenceDiagram\n")
	if l.Title != "" {
		fmt.Fprintf(&b, "    title %s\n", mermaidText(l.Title))
	}
	for i, p := range l.Participants {
		fmt.Fprintf(&b, "    participant P%d as %s\n", i+1, mermaidText(p))
	}
	for _, s := range l.Steps {
		arrow := "->>"
		if s.StatusCode != 0 {
			arrow = "-->>"
		}
		fmt.Fprintf(&b, "    %%%% %s %s\n", s.Time.In(l.loc()).Format("15:04:05.000000"), s.Transport)
		fmt.Fprintf(&b, "    P%d%sP%d: %s\n", s.From+1, arrow, s.To+1, mermaidText(s.text()))
	}
	_, err := w.Write(b.Bytes())
	if err != nil {
		return fmt.Errorf("trace: writing the Mermaid diagram: %w", err)
	}
	return nil
}

// mermaidText makes s safe on one line of a Mermaid sequence diagram.
func mermaidText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '#':
			b.WriteRune('＃')
		case r == ';':
			b.WriteRune('；')
		case r == '<':
			b.WriteRune('‹')
		case r == '>':
			b.WriteRune('›')
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// SVG layout, in pixels.
const (
	svgTimeWidth = 110 // the time column on the left
	svgMinCol    = 180 // the least distance between two lifelines
	svgCharWidth = 7.2 // of 12 px monospace text
	svgTop       = 44  // top of the participant boxes
	svgBoxHeight = 28
	svgFirstStep = svgTop + svgBoxHeight + 40
	svgStep      = 40 // between two steps
	svgMargin    = 20
)

// WriteSVG writes l as an SVG picture: the participants as boxes on
// top with their lifelines, each message as an arrow with its label above
// and its transport below, its time on the left (hh:mm:ss.mmm and the
// time since the first message). Requests are blue and solid; responses
// dashed, grey for 1xx, green for 2xx, red for the others;
// retransmissions are marked and faded. The picture is self-contained
// (no fonts or scripts) and the same ladder always gives the same bytes.
func (l *Ladder) WriteSVG(w io.Writer) error {
	maxLabel := 0
	for _, s := range l.Steps {
		maxLabel = max(maxLabel, len([]rune(s.text())))
	}
	for _, p := range l.Participants {
		maxLabel = max(maxLabel, len([]rune(p)))
	}
	col := max(svgMinCol, int(float64(maxLabel)*svgCharWidth)+40)
	n := max(len(l.Participants), 1)
	width := svgTimeWidth + n*col
	height := svgFirstStep + len(l.Steps)*svgStep + svgMargin
	x := func(i int) int { return svgTimeWidth + col/2 + i*col }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="monospace" font-size="12">`+"\n", width, height, width, height)
	b.WriteString(`<defs>` + "\n")
	for _, c := range svgColors {
		fmt.Fprintf(&b, `<marker id="arrow-%s" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="%s"/></marker>`+"\n", c.name, c.color)
	}
	b.WriteString(`</defs>` + "\n")
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	if l.Title != "" {
		fmt.Fprintf(&b, `<text x="%d" y="24" font-size="14" font-weight="bold">%s</text>`+"\n", svgMargin/2, xmlText(l.Title))
	}
	bottom := height - svgMargin/2
	for i, p := range l.Participants {
		bw := col - 20
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999999" stroke-dasharray="4,4"/>`+"\n", x(i), svgTop+svgBoxHeight, x(i), bottom)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="4" fill="#eef2f8" stroke="#33475b"/>`+"\n", x(i)-bw/2, svgTop, bw, svgBoxHeight)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x(i), svgTop+18, xmlText(p))
	}
	var t0 time.Time
	if len(l.Steps) > 0 {
		t0 = l.Steps[0].Time
	}
	for k, s := range l.Steps {
		y := svgFirstStep + k*svgStep
		c := stepColor(s)
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555555">%s</text>`+"\n", svgMargin/2, y-4, s.Time.In(l.loc()).Format("15:04:05.000"))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#999999" font-size="10">+%.3fs</text>`+"\n", svgMargin/2, y+9, s.Time.Sub(t0).Seconds())
		opacity := ""
		if s.Retransmission {
			opacity = ` opacity="0.6"`
		}
		fmt.Fprintf(&b, `<g%s>`, opacity)
		x1, x2 := x(s.From), x(s.To)
		dash := ""
		if s.StatusCode != 0 {
			dash = ` stroke-dasharray="6,3"`
		}
		if s.From == s.To {
			// A message to itself: a loop on the right of the lifeline.
			fmt.Fprintf(&b, `<path d="M%d,%d h30 v12 h-30" fill="none" stroke="%s" stroke-width="1.5"%s marker-end="url(#arrow-%s)"/>`, x1, y-6, c.color, dash, c.name)
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`, x1+36, y-6, c.color, xmlText(s.text()))
		} else {
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.5"%s marker-end="url(#arrow-%s)"/>`, x1, y, x2, y, c.color, dash, c.name)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text>`, (x1+x2)/2, y-5, c.color, xmlText(s.text()))
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#999999" font-size="9">%s</text>`, (x1+x2)/2, y+12, xmlText(s.Transport))
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	if err != nil {
		return fmt.Errorf("trace: writing the SVG ladder: %w", err)
	}
	return nil
}

type svgColor struct{ name, color string }

var svgColors = [...]svgColor{
	{"request", "#1f4e9e"},
	{"provisional", "#777777"},
	{"success", "#1b7f3b"},
	{"failure", "#b3261e"},
}

func stepColor(s Step) svgColor {
	switch {
	case s.StatusCode == 0:
		return svgColors[0]
	case s.StatusCode < 200:
		return svgColors[1]
	case s.StatusCode < 300:
		return svgColors[2]
	}
	return svgColors[3]
}

// xmlText escapes s for XML character data and attribute values, and
// drops characters XML cannot hold.
func xmlText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '"':
			b.WriteString("&quot;")
		case r == '\'':
			b.WriteString("&#39;")
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r < 0x20 || r == 0xfffe || r == 0xffff || r == 0x7f:
			// not allowed in XML 1.0 (0x7f allowed but invisible)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
