package siptest

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// EventKind tells what happened to a datagram.
type EventKind uint8

// The kinds of Event.
const (
	// EventSent: Send or Inject accepted the datagram.
	EventSent EventKind = iota + 1
	// EventDelivered: a copy reached its Endpoint's queue or handler.
	EventDelivered
	// EventDropped: the datagram, or one copy of it, was dropped; Reason
	// tells why.
	EventDropped
)

// String returns "sent", "delivered" or "dropped".
func (k EventKind) String() string {
	switch k {
	case EventSent:
		return "sent"
	case EventDelivered:
		return "delivered"
	case EventDropped:
		return "dropped"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// DropReason tells why a datagram was dropped. Its zero value means that it
// was not.
type DropReason uint8

// The reasons a datagram is dropped.
const (
	// DropLoss: the Link's Loss drew it.
	DropLoss DropReason = iota + 1
	// DropDown: the Link was Down.
	DropDown
	// DropNoEndpoint: no Endpoint listened at the destination.
	DropNoEndpoint
	// DropClosed: the destination Endpoint closed while the datagram was
	// in flight.
	DropClosed
)

// String returns "loss", "link down", "no endpoint" or "closed".
func (r DropReason) String() string {
	switch r {
	case 0:
		return "none"
	case DropLoss:
		return "loss"
	case DropDown:
		return "link down"
	case DropNoEndpoint:
		return "no endpoint"
	case DropClosed:
		return "closed"
	}
	return "DropReason(" + strconv.Itoa(int(r)) + ")"
}

// lost reports whether the network lost the datagram (as opposed to having
// nobody to give it to).
func (r DropReason) lost() bool { return r == DropLoss || r == DropDown }

// Event is one entry of a Network's trace.
type Event struct {
	// Kind tells what happened.
	Kind EventKind
	// ID identifies the datagram: the events of one Send share it.
	ID uint64
	// Duplicate is true for an event about the second copy of a
	// duplicated datagram.
	Duplicate bool
	// At is when it happened; for a delivery, the scheduled arrival time.
	At time.Time
	// From and To are the datagram's source and destination.
	From, To netip.AddrPort
	// Data is the datagram. It is shared between the events of one
	// datagram and must not be modified.
	Data []byte
	// Reason tells why an EventDropped happened.
	Reason DropReason
}

// String returns a one-line description, such as
// "#3 delivered 192.0.2.1:5060→192.0.2.2:5060 INVITE".
func (e Event) String() string {
	full, _ := Summarize(e.Data)
	s := fmt.Sprintf("#%d %v %v→%v %s", e.ID, e.Kind, e.From, e.To, full)
	if e.Duplicate {
		s += " (duplicate)"
	}
	if e.Kind == EventDropped {
		s += " (" + e.Reason.String() + ")"
	}
	return s
}

// Summarize returns a label for a datagram from the first line of the SIP
// message it carries, in a full and a short form: the method of a request
// ("INVITE", "INVITE"), the status of a response ("180 Ringing", "180"),
// "CRLF" or "CRLFCRLF" for RFC 5626 keep-alives, and "[N bytes]" for
// anything else. Only the first line is read.
func Summarize(data []byte) (full, short string) {
	switch {
	case len(data) == 0:
		return "[0 bytes]", "[0 bytes]"
	case string(data) == "\r\n":
		return "CRLF", "CRLF"
	case string(data) == "\r\n\r\n":
		return "CRLFCRLF", "CRLFCRLF"
	}
	rest := bytes.TrimLeft(data, "\r\n") // RFC 3261 §7.5: leading CRLFs are ignored
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if utf8.Valid(line) {
		f := strings.Fields(string(line))
		if len(f) >= 2 && strings.EqualFold(f[0], "SIP/2.0") && isStatus(f[1]) {
			full = f[1]
			if len(f) > 2 {
				full = strings.Join(f[1:], " ")
			}
			return full, f[1]
		}
		if len(f) == 3 && strings.EqualFold(f[2], "SIP/2.0") && isToken(f[0]) {
			return f[0], f[0]
		}
	}
	s := "[" + strconv.Itoa(len(data)) + " bytes]"
	return s, s
}

func isStatus(s string) bool {
	return len(s) == 3 && s[0] >= '1' && s[0] <= '6' && isDigit(s[1]) && isDigit(s[2])
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || isDigit(c) || strings.IndexByte("-.!%*_+`'~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// PacketEvents turns received Packets into a trace, a sent and a delivered
// Event each, so that Ladder and Flow can render them. Packets with ID 0
// (made by hand) each count as a datagram of their own.
func PacketEvents(pkts []Packet) []Event {
	var maxID uint64
	for _, p := range pkts {
		maxID = max(maxID, p.ID)
	}
	events := make([]Event, 0, 2*len(pkts))
	for _, p := range pkts {
		id := p.ID
		if id == 0 {
			maxID++
			id = maxID
		}
		e := Event{Kind: EventSent, ID: id, At: p.SentAt, From: p.From, To: p.To, Data: p.Data}
		if !p.Duplicate {
			events = append(events, e)
		}
		e.Kind, e.At, e.Duplicate = EventDelivered, p.DeliveredAt, p.Duplicate
		events = append(events, e)
	}
	return events
}

// LadderOptions configures Ladder and Flow.
type LadderOptions struct {
	// Start is the origin of the times shown; when zero, the time of the
	// first Event.
	Start time.Time
	// Names labels addresses; an address without a name is shown as it
	// is.
	Names map[netip.AddrPort]string
}

func (o LadderOptions) label(a netip.AddrPort) string {
	if s, ok := o.Names[a]; ok && s != "" {
		return s
	}
	return a.String()
}

// message gathers the events of one datagram.
type message struct {
	from, to  netip.AddrPort
	sentAt    time.Time
	data      []byte
	delivered []time.Time
	drops     []DropReason
}

// messages groups events by datagram, in the order datagrams first appear.
func messages(events []Event) []*message {
	byID := make(map[uint64]*message)
	var out []*message
	for _, e := range events {
		m := byID[e.ID]
		if m == nil {
			m = &message{from: e.From, to: e.To, sentAt: e.At, data: e.Data}
			byID[e.ID] = m
			out = append(out, m)
		}
		switch e.Kind {
		case EventDelivered:
			m.delivered = append(m.delivered, e.At)
		case EventDropped:
			m.drops = append(m.drops, e.Reason)
		}
	}
	return out
}

// Ladder renders a trace as a ladder diagram, one line per datagram in the
// order they were sent: the time it was sent, the two parties with an
// arrow labelled with the SIP first line (see Summarize) pointing at the
// receiver, then what became of it: nothing when it arrived at once, its
// delay ("+50ms"), "×2" when duplicated, "✗ dropped (loss)", "✗ dropped
// (link down)", "✗ undeliverable (no endpoint)", "✗ undeliverable
// (closed)", or "… in flight". Parties keep their column: the one that
// appears first stands on the left.
//
//	0.000s  alice  ────INVITE────▶  bob    +50ms
//	0.050s  alice  ◀──100 Trying──  bob    +50ms
//	0.150s  alice  ✗────200 OK────  bob    ✗ dropped (loss)
//	0.650s  alice  ◀────200 OK────  bob    +50ms
//	0.700s  alice  ─────ACK──────▶  bob    ×2 +50ms +50ms
func Ladder(events []Event, opts LadderOptions) string {
	msgs := messages(events)
	if len(msgs) == 0 {
		return ""
	}
	start := opts.Start
	if start.IsZero() {
		start = events[0].At
	}
	column := make(map[netip.AddrPort]int)
	labelWidth, arrowWidth := 0, 0
	for _, m := range msgs {
		for _, a := range []netip.AddrPort{m.from, m.to} {
			if _, ok := column[a]; !ok {
				column[a] = len(column)
			}
			labelWidth = max(labelWidth, utf8.RuneCountInString(opts.label(a)))
		}
		full, _ := Summarize(m.data)
		arrowWidth = max(arrowWidth, utf8.RuneCountInString(full)+4)
	}
	var b strings.Builder
	for _, m := range msgs {
		full, _ := Summarize(m.data)
		left, right, rightward := m.from, m.to, true
		if column[m.to] < column[m.from] {
			left, right, rightward = m.to, m.from, false
		}
		pad := arrowWidth - utf8.RuneCountInString(full)
		shaft := strings.Repeat("─", pad/2) + full + strings.Repeat("─", pad-pad/2)
		head := "▶"
		if len(m.delivered) == 0 && len(m.drops) > 0 {
			head = "✗"
		}
		var arrow string
		if rightward {
			arrow = shaft + head
		} else {
			if head == "▶" {
				head = "◀"
			}
			arrow = head + shaft
		}
		line := fmt.Sprintf("%8s  %-*s  %s  %-*s  %s",
			fmt.Sprintf("%.3fs", m.sentAt.Sub(start).Seconds()),
			labelWidth, opts.label(left), arrow, labelWidth, opts.label(right), fate(m))
		b.WriteString(strings.TrimRight(line, " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// fate describes what became of a datagram, for Ladder.
func fate(m *message) string {
	var parts []string
	if len(m.delivered) > 1 {
		parts = append(parts, "×"+strconv.Itoa(len(m.delivered)))
	}
	delayed := false
	for _, at := range m.delivered {
		delayed = delayed || at.Sub(m.sentAt) != 0
	}
	if delayed {
		for _, at := range m.delivered {
			parts = append(parts, "+"+at.Sub(m.sentAt).Round(time.Microsecond).String())
		}
	}
	for _, r := range m.drops {
		if r.lost() {
			parts = append(parts, "✗ dropped ("+r.String()+")")
		} else {
			parts = append(parts, "✗ undeliverable ("+r.String()+")")
		}
	}
	if len(m.delivered) == 0 && len(m.drops) == 0 {
		parts = append(parts, "… in flight")
	}
	return strings.Join(parts, " ")
}

// Flow renders a trace in a compact form for assertions: one string per
// datagram, in the order they were sent, "from→to label" with the short
// label of Summarize (a method or a status code) and, when the datagram
// was not delivered exactly once, a note: "(dropped)" (loss or link down),
// "(undeliverable)", "(x2)" for a duplicate, "(in flight)".
//
//	alice→bob INVITE
//	bob→alice 100
//	bob→alice 200 (dropped)
//	alice→bob ACK (x2)
//
// opts.Start is not used.
func Flow(events []Event, opts LadderOptions) []string {
	msgs := messages(events)
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		_, short := Summarize(m.data)
		s := opts.label(m.from) + "→" + opts.label(m.to) + " " + short
		var notes []string
		if len(m.delivered) > 1 || (len(m.delivered) == 1 && len(m.drops) > 0) {
			notes = append(notes, "x"+strconv.Itoa(len(m.delivered)))
		}
		if len(m.drops) > 0 {
			if m.drops[0].lost() {
				notes = append(notes, "dropped")
			} else {
				notes = append(notes, "undeliverable")
			}
		}
		if len(m.delivered) == 0 && len(m.drops) == 0 {
			notes = append(notes, "in flight")
		}
		if len(notes) > 0 {
			s += " (" + strings.Join(notes, ", ") + ")"
		}
		out = append(out, s)
	}
	return out
}
