// Package trace observes the SIP messages a UserAgent (or a bare
// transport.Transport) sends and receives, and writes them down: as a pcap
// file that tshark, Wireshark and sngrep read (PcapWriter), as a
// human-readable message log (TextWriter), and as a call-ladder picture of
// one Call-ID, in SVG or as a Mermaid sequence diagram (Recorder, Ladder).
//
// A Tracer is set in sip.UserAgentOptions.Tracer (or
// transport.Config.Tracer). The transport calls it synchronously for every
// message, on the goroutine that sends or receives it:
//
//   - a message to send is traced just before it is written, and a message
//     received just before it is handed on, so the events of one
//     UserAgent reach the Tracer in causal order: a request is always
//     traced before the response it causes, retransmissions included;
//   - no copy is made: Event.Raw and Event.Message are lent to the Tracer
//     for the duration of the call (Event.Clone keeps them);
//   - a nil Tracer costs one comparison per message.
//
// In exchange a Tracer must be fast, safe for concurrent use (several
// sockets and connections send and receive at once) and must not call back
// into the UserAgent. The writers of this package satisfy that: each
// serialises its records with a mutex and does one Write per message
// (about 0.2 µs for a pcap record, 3 µs for the text log, no allocation).
// A Tracer that may block (a slow disk, a remote collector) should be
// wrapped in NewAsync, which copies each event into a bounded queue served
// by a goroutine of its own, dropping and counting events rather than
// waiting when the queue is full.
//
// Traces contain credentials: every message is traced verbatim, so the
// Authorization and Proxy-Authorization fields of requests carry the
// digest response (a hash of the password that can be cracked offline)
// or, for Basic, the password itself, unless the Tracer is wrapped in
// Redact, which replaces them with REDACTED before the writers see them:
//
//	Tracer: trace.Redact(trace.Multi(pcap, text))
//
// Multi sends events to several Tracers; Dedup removes the second copy of
// a message that two UserAgents of one process both trace; Recorder keeps
// copies for NewLadder.
//
// The package depends on the message package only, so that writers can
// live outside the root package and the transport can call them.
package trace

import (
	"hash/fnv"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/sipua/sip/message"
)

// Direction says what happened to the message of an Event.
type Direction uint8

// Directions.
const (
	// Sent: the message is about to be written to the network. The
	// Tracer is called before the write, so that it sees a request before
	// any answer to it.
	Sent Direction = iota + 1
	// Received: the message arrived (Err is set when it is malformed).
	Received
	// SendFailed: writing the message of the previous Sent event with the
	// same Raw bytes failed (Err says why); it may not have left. Writers
	// of network captures ignore it.
	SendFailed
)

// String returns "sent", "received" or "send failed".
func (d Direction) String() string {
	switch d {
	case Sent:
		return "sent"
	case Received:
		return "received"
	case SendFailed:
		return "send failed"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// Event is one SIP message sent or received.
type Event struct {
	// Time is when the message was sent or received.
	Time time.Time
	// Dir says whether it was sent or received.
	Dir Direction
	// Transport is the transport protocol as written in Via: "UDP",
	// "TCP", "TLS", "WS" or "WSS".
	Transport string
	// Local is the local address of the socket or connection. For a UDP
	// socket bound to a wildcard address (0.0.0.0, ::), the transport
	// gives the address the system sends from to Remote instead, as a
	// capture would show it.
	Local netip.AddrPort
	// Remote is the peer's address.
	Remote netip.AddrPort
	// ConnID is the stream connection's number within its transport
	// (transport.Flow.ID); 0 for UDP.
	ConnID uint64
	// Raw is the message as it is on the wire (for WebSocket, the payload
	// of its frame; for TLS, the plaintext). It is valid only during the
	// Tracer call and must not be modified.
	Raw []byte
	// Message is Raw parsed, or nil when it could not be parsed. A received
	// request already carries the received and rport Via parameters the
	// transport adds (Raw does not). It is valid only during the Tracer
	// call and must not be modified.
	Message message.Message
	// Err is, for Received, the parse error of a malformed message (Message
	// is then what could be parsed, or nil); for SendFailed, the write
	// error. Nil for Sent.
	Err error
}

// Source returns the address the message came from: Local for a sent
// message, Remote for a received one.
func (e *Event) Source() netip.AddrPort {
	if e.Dir == Received {
		return e.Remote
	}
	return e.Local
}

// Destination returns the address the message went to: Remote for a sent
// message, Local for a received one.
func (e *Event) Destination() netip.AddrPort {
	if e.Dir == Received {
		return e.Local
	}
	return e.Remote
}

// CallID returns the Call-ID of the message, or "" when it has none or
// could not be parsed.
func (e *Event) CallID() string {
	if e.Message == nil {
		return ""
	}
	return e.Message.Headers().CallID()
}

// Summary returns a one-line description of the message: the method and
// Request-URI of a request, or the status code and reason of a response,
// e.g. "INVITE sip:bob@example.com" or "180 Ringing". It is "?" when the
// message could not be parsed.
func (e *Event) Summary() string {
	switch m := e.Message.(type) {
	case *message.Request:
		return m.Method + " " + m.URI.String()
	case *message.Response:
		s := strconv.Itoa(m.StatusCode)
		if m.Reason != "" {
			s += " " + m.Reason
		}
		return s
	}
	return "?"
}

// Clone returns a copy of e that stays valid after the Tracer call: Raw is
// copied and Message is parsed again from the copy (so it does not carry
// the Via parameters the transport adds on receipt).
func (e Event) Clone() Event {
	e.Raw = append([]byte(nil), e.Raw...)
	if e.Message != nil {
		m, err := message.Limits{MaxMessageSize: max(len(e.Raw), message.DefaultMaxMessageSize)}.Parse(e.Raw)
		if err == nil {
			e.Message = m
		} else {
			e.Message = nil
		}
	}
	return e
}

// Tracer receives every SIP message sent and received. See the package
// documentation for when and how it is called: it must be fast, safe for
// concurrent use, and must not call back into the UserAgent.
type Tracer interface {
	Trace(ev Event)
}

// Func adapts a function to the Tracer interface.
type Func func(ev Event)

// Trace calls f(ev).
func (f Func) Trace(ev Event) { f(ev) }

// Multi returns a Tracer that passes each event to each of ts in turn.
// Nil entries are skipped.
func Multi(ts ...Tracer) Tracer {
	var keep multi
	for _, t := range ts {
		if t != nil {
			keep = append(keep, t)
		}
	}
	return keep
}

type multi []Tracer

func (m multi) Trace(ev Event) {
	for _, t := range m {
		t.Trace(ev)
	}
}

// DefaultDedupWindow is Dedup's window when none is given.
const DefaultDedupWindow = 5 * time.Second

// dedupMax bounds the messages a Dedup remembers, whatever the window.
const dedupMax = 4096

// Dedup returns a Tracer for several UserAgents of one process that share
// one writer: a message one of them sends to another is seen twice, as
// Sent by the first and Received by the second. Dedup passes it on once
// (the first of the two events, normally the Sent one) and drops the
// other, pairing events by transport, source, destination and bytes
// within window (DefaultDedupWindow when zero or negative). A
// retransmission is a new message: each copy sent pairs with one copy
// received. SendFailed events pass unchanged. At most 4096 unpaired
// messages are remembered; beyond that the oldest are forgotten (their
// partners then pass, seen twice). The returned Tracer is safe for
// concurrent use and does not hold its lock while calling next.
func Dedup(next Tracer, window time.Duration) Tracer {
	if window <= 0 {
		window = DefaultDedupWindow
	}
	return &dedup{next: next, window: window, pending: map[dedupKey]int{}}
}

type dedupKey struct {
	transport string
	src, dst  netip.AddrPort
	dir       Direction // the direction of the event waiting for its partner
	sum       uint64
	n         int
}

type dedupEntry struct {
	key dedupKey
	at  time.Time
}

type dedup struct {
	next   Tracer
	window time.Duration

	mu      sync.Mutex
	pending map[dedupKey]int // unpaired events by key: how many
	order   []dedupEntry     // the same, oldest first
}

func (d *dedup) Trace(ev Event) {
	if ev.Dir != Sent && ev.Dir != Received {
		d.next.Trace(ev)
		return
	}
	h := fnv.New64a()
	_, _ = h.Write(ev.Raw)
	k := dedupKey{transport: ev.Transport, src: ev.Source(), dst: ev.Destination(), sum: h.Sum64(), n: len(ev.Raw)}
	partner := k
	partner.dir = Sent
	k.dir = Received
	if ev.Dir == Sent {
		partner.dir, k.dir = Received, Sent
	}
	d.mu.Lock()
	d.expire(ev.Time)
	if d.pending[partner] > 0 {
		d.take(partner)
		d.mu.Unlock()
		return
	}
	d.pending[k]++
	d.order = append(d.order, dedupEntry{k, ev.Time})
	d.mu.Unlock()
	d.next.Trace(ev)
}

// take removes the oldest entry with key k.
func (d *dedup) take(k dedupKey) {
	if d.pending[k]--; d.pending[k] <= 0 {
		delete(d.pending, k)
	}
	for i, e := range d.order {
		if e.key == k {
			d.order = append(d.order[:i], d.order[i+1:]...)
			return
		}
	}
}

// expire forgets entries older than the window, and the oldest beyond
// dedupMax.
func (d *dedup) expire(now time.Time) {
	n := 0
	for n < len(d.order) && (len(d.order)-n >= dedupMax || now.Sub(d.order[n].at) > d.window) {
		k := d.order[n].key
		if d.pending[k]--; d.pending[k] <= 0 {
			delete(d.pending, k)
		}
		n++
	}
	if n > 0 {
		d.order = append(d.order[:0], d.order[n:]...)
	}
}
