package sipserver

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// Direction tells whether the server received or sent a message.
type Direction uint8

// Directions of an Event.
const (
	// In is a message the server received.
	In Direction = iota + 1
	// Out is a message the server sent (or tried to: see Event.Err).
	Out
)

// String returns "in" or "out".
func (d Direction) String() string {
	switch d {
	case In:
		return "in"
	case Out:
		return "out"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// Event is one message the server received or sent.
type Event struct {
	// Time is when the server received or sent it.
	Time time.Time
	// Dir is In or Out.
	Dir Direction
	// Flow is the flow it came on or went out on (for a failed send, the
	// target it was meant for).
	Flow transport.Flow
	// From and To name the two ends: the server's Options.Name, and the
	// peer, known by the user that registered (or first sent a request)
	// on the flow, else by its address.
	From, To string
	// Msg is the message, a *message.Request or a *message.Response, as
	// received or as sent. Do not modify it.
	Msg message.Message
	// Err is why sending failed; nil for a received or sent message.
	Err error
}

// Label returns the request's method and Request-URI, or the response's
// status code and reason with the CSeq method, e.g. "INVITE
// sip:bob@sipua.test" or "180 Ringing (INVITE)".
func (e Event) Label() string {
	switch m := e.Msg.(type) {
	case *message.Request:
		return m.Method + " " + m.URI.String()
	case *message.Response:
		cs, _ := m.Header.CSeq()
		return strconv.Itoa(m.StatusCode) + " " + m.Reason + " (" + cs.Method + ")"
	}
	return "?"
}

// short is the label of a ladder arrow: the method, or code and reason.
func (e Event) short() string {
	switch m := e.Msg.(type) {
	case *message.Request:
		return m.Method
	case *message.Response:
		return strconv.Itoa(m.StatusCode) + " " + m.Reason
	}
	return "?"
}

// String returns e.g. "alice → proxy  INVITE sip:bob@sipua.test  [WS#1
// 127.0.0.1:5060->127.0.0.1:40122]".
func (e Event) String() string {
	s := e.From + " → " + e.To + "  " + e.Label() + "  [" + e.Flow.String() + "]"
	if e.Err != nil {
		s += " failed: " + e.Err.Error()
	}
	return s
}

// peerKey identifies the other end of a flow, whatever local socket.
type peerKey struct {
	proto  transport.Proto
	remote netip.AddrPort
	id     uint64
}

func peerOf(f transport.Flow) peerKey { return peerKey{f.Proto, f.Remote, f.ID} }

// record notes an event and reports it to OnEvent; it runs on the loop.
func (s *Server) record(d Direction, f transport.Flow, m message.Message, err error) {
	e := Event{Time: time.Now(), Dir: d, Flow: f, Msg: m, Err: err}
	s.traceMu.Lock()
	peer := s.names[peerOf(f)]
	if peer == "" {
		peer = f.Remote.String()
	}
	if d == In {
		e.From, e.To = peer, s.name
	} else {
		e.From, e.To = s.name, peer
	}
	limit := s.opts.TraceLimit
	if limit == 0 {
		limit = defaultLimit
	}
	if limit > 0 {
		if len(s.events) >= limit {
			// Drop the oldest half at once: appending stays O(1)
			// amortized.
			n := copy(s.events, s.events[len(s.events)-limit/2:])
			clear(s.events[n:])
			s.events = s.events[:n]
		}
		s.events = append(s.events, e)
	}
	s.traceMu.Unlock()
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(e)
	}
}

// Trace returns the events recorded so far, oldest first, including
// those of the message the server is handling when it is called.
func (s *Server) Trace() []Event {
	s.call(func() {}) // let the message being handled finish
	s.traceMu.Lock()
	defer s.traceMu.Unlock()
	out := make([]Event, len(s.events))
	copy(out, s.events)
	for i := range out {
		out[i].From, out[i].To = s.renameLocked(out[i])
	}
	return out
}

// ClearTrace forgets the events recorded so far.
func (s *Server) ClearTrace() {
	s.traceMu.Lock()
	defer s.traceMu.Unlock()
	clear(s.events)
	s.events = s.events[:0]
}

// renameLocked returns From and To with the peer's current name: a flow
// is named when its user registers, which may be after its first event.
func (s *Server) renameLocked(e Event) (from, to string) {
	from, to = e.From, e.To
	if n := s.names[peerOf(e.Flow)]; n != "" {
		if e.Dir == In {
			from = n
		} else {
			to = n
		}
	}
	return from, to
}

// Flow returns the trace in a compact form meant for assertions, one
// string per message: "alice→proxy INVITE", "proxy→alice 100", with
// " (failed)" after a send that failed.
func (s *Server) Flow() []string {
	var out []string
	for _, e := range s.Trace() {
		l := e.From + "→" + e.To + " "
		switch m := e.Msg.(type) {
		case *message.Request:
			l += m.Method
		case *message.Response:
			l += strconv.Itoa(m.StatusCode)
		}
		if e.Err != nil {
			l += " (failed)"
		}
		out = append(out, l)
	}
	return out
}

// Ladder renders the trace as a ladder diagram with the server in the
// middle: the first peer it heard from on its left, every other peer on
// its right, one line per message with its time since the first event.
//
//	0.040s  alice ──INVITE──────▶ proxy
//	0.040s  alice ◀─100 Trying─── proxy
//	0.040s                        proxy ──INVITE──────▶ bob
//	0.060s                        proxy ◀─180 Ringing── bob
//	0.060s  alice ◀─180 Ringing── proxy
func (s *Server) Ladder() string {
	events := s.Trace()
	if len(events) == 0 {
		return ""
	}
	peer := func(e Event) string {
		if e.Dir == In {
			return e.From
		}
		return e.To
	}
	left := peer(events[0])
	const maxLabel = 24
	lw, aw := utf8.RuneCountInString(left), 0
	for _, e := range events {
		aw = max(aw, min(utf8.RuneCountInString(e.short()), maxLabel))
	}
	aw += 4
	var b strings.Builder
	t0 := events[0].Time
	for _, e := range events {
		label := e.short()
		if utf8.RuneCountInString(label) > maxLabel {
			label = string([]rune(label)[:maxLabel-1]) + "…"
		}
		fmt.Fprintf(&b, "%8.3fs  ", e.Time.Sub(t0).Seconds())
		p := peer(e)
		if p == left {
			// peer on the left: In points right, Out points left.
			fmt.Fprintf(&b, "%*s %s %s", lw, p, arrow(label, aw, e.Dir == In), s.name)
		} else {
			fmt.Fprintf(&b, "%*s %s %s %s", lw+aw+1, "", s.name, arrow(label, aw, e.Dir == Out), p)
		}
		if e.Err != nil {
			b.WriteString("  (failed)")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// arrow draws "──label───▶" (or "◀─label────") w runes wide.
func arrow(label string, w int, right bool) string {
	var b strings.Builder
	n := w - utf8.RuneCountInString(label) - 3
	if right {
		b.WriteString("──")
		b.WriteString(label)
		b.WriteString(strings.Repeat("─", max(n, 0)))
		b.WriteString("▶")
	} else {
		b.WriteString("◀─")
		b.WriteString(label)
		b.WriteString(strings.Repeat("─", max(n+1, 1)))
	}
	return b.String()
}
