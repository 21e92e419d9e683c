package transport

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/sipua/sip/message"
)

// Proto is a SIP transport protocol, written as in a Via header field.
type Proto string

// The transport protocols this package speaks.
const (
	// UDP is SIP over UDP (RFC 3261 §18).
	UDP Proto = "UDP"
	// TCP is SIP over TCP, framed by Content-Length.
	TCP Proto = "TCP"
	// TLS is SIP over TLS on TCP.
	TLS Proto = "TLS"
	// WS is SIP over WebSocket (RFC 7118), one message per frame.
	WS Proto = "WS"
	// WSS is SIP over secure WebSocket (RFC 7118).
	WSS Proto = "WSS"
)

// ParseProto returns the Proto named by s, case-insensitively ("udp",
// "TCP", "ws" …), and whether s names one this package speaks.
func ParseProto(s string) (Proto, bool) {
	switch p := Proto(strings.ToUpper(s)); p {
	case UDP, TCP, TLS, WS, WSS:
		return p, true
	}
	return "", false
}

// Stream reports whether p is connection-oriented (everything but UDP).
func (p Proto) Stream() bool { return p != UDP }

// Secure reports whether p runs over TLS (TLS, WSS).
func (p Proto) Secure() bool { return p == TLS || p == WSS }

// WebSocket reports whether p is WS or WSS.
func (p Proto) WebSocket() bool { return p == WS || p == WSS }

// DefaultPort returns the port used when a URI names none: 5060 for UDP
// and TCP, 5061 for TLS, 80 for WS and 443 for WSS.
func (p Proto) DefaultPort() uint16 {
	switch p {
	case TLS:
		return 5061
	case WS:
		return 80
	case WSS:
		return 443
	}
	return 5060
}

// Param returns the value of the URI transport parameter for p, in lower
// case ("udp", "tcp", "tls", "ws", "wss").
func (p Proto) Param() string { return strings.ToLower(string(p)) }

// String returns the name as written in Via, e.g. "WSS".
func (p Proto) String() string { return string(p) }

// Target is one place a message can be sent: a transport and an address,
// as Resolve returns them, or a Flow's way back (Flow.Target).
type Target struct {
	// Proto is the transport to use.
	Proto Proto
	// Addr is the remote IP address and port.
	Addr netip.AddrPort
	// Host is the name the target was resolved from, used as the TLS
	// server name (certificate verification, SNI) and the WebSocket Host.
	// Empty means Addr's IP.
	Host string
	// Path is the WebSocket resource path, e.g. "/ws". Empty means "/".
	Path string
	// Local, when valid, selects the UDP socket bound to this address to
	// send from (the one a request came in on). Ignored for streams.
	Local netip.AddrPort
	// ConnID, when non-zero, restricts sending to that one connection (a
	// Flow's ID): if it is gone, Send fails with ErrNoConnection rather
	// than opening a new one (RFC 5626 flows).
	ConnID uint64
}

// String returns "proto host:port", e.g. "TLS 192.0.2.1:5061".
func (t Target) String() string {
	s := string(t.Proto) + " " + t.Addr.String()
	if t.Host != "" && t.Host != t.Addr.Addr().String() {
		s += " (" + t.Host + ")"
	}
	return s
}

// Flow identifies the path a message came on or went out on: a
// connection for stream transports, a local socket and a remote address
// for UDP (RFC 5626 §3.1). It is a comparable value.
type Flow struct {
	// Proto is the transport.
	Proto Proto
	// Local is the local address of the socket or connection.
	Local netip.AddrPort
	// Remote is the peer's address.
	Remote netip.AddrPort
	// ID is the connection's number within its Transport, unique for its
	// lifetime; 0 for UDP.
	ID uint64
}

// IsZero reports whether f is the zero Flow.
func (f Flow) IsZero() bool { return f == Flow{} }

// Target returns the target that sends on f: the same connection for a
// stream, the same socket and peer address for UDP.
func (f Flow) Target() Target {
	return Target{Proto: f.Proto, Addr: f.Remote, Local: f.Local, ConnID: f.ID}
}

// String returns e.g. "TCP#3 127.0.0.1:40022->127.0.0.1:5060".
func (f Flow) String() string {
	s := string(f.Proto)
	if f.ID != 0 {
		s += "#" + strconv.FormatUint(f.ID, 10)
	}
	return s + " " + f.Local.String() + "->" + f.Remote.String()
}

// Then is work that Config.OnMessagesThen leaves to the reader goroutine
// that delivered the messages.
type Then interface {
	// Run runs the work. reader numbers the reader goroutine: it stays
	// the same for all the work one goroutine runs and is never given to
	// another goroutine of the Transport.
	Run(reader uint64)
	// Relieve is called, on another goroutine, when the reader running
	// Run is relieved (see Config.OnMessagesThen): what Run has not
	// started yet should be done elsewhere. Run is still running.
	Relieve()
}

// Incoming is a message received by a Transport.
type Incoming struct {
	// Msg is the message: a *message.Request or a *message.Response. For
	// a request, the top Via already carries received and rport as RFC
	// 3261 §18.2.1 and RFC 3581 require. When Err is set, Msg is what
	// could be parsed (so a UAS can still answer 400), or nil.
	Msg message.Message
	// Err is the parse error of a message that was framed but is
	// malformed; nil for a good message. Validate is not called: the
	// layer above does that.
	Err error
	// Flow is where the message came from; pass it to SendResponse.
	Flow Flow
}

// ConnState is the state of one connection in a ConnEvent.
type ConnState int

// Connection states.
const (
	// ConnOpen: the connection was established (and, for TLS and
	// WebSocket, its handshake completed).
	ConnOpen ConnState = iota + 1
	// ConnClosed: the connection is gone; ConnEvent.Err says why.
	ConnClosed
)

// String returns "open" or "closed".
func (s ConnState) String() string {
	switch s {
	case ConnOpen:
		return "open"
	case ConnClosed:
		return "closed"
	}
	return "ConnState(" + strconv.Itoa(int(s)) + ")"
}

// ConnEvent reports a stream connection opening or closing.
type ConnEvent struct {
	// Flow is the connection.
	Flow Flow
	// State is ConnOpen or ConnClosed.
	State ConnState
	// Inbound is true for a connection the peer opened.
	Inbound bool
	// Err tells why a connection closed: ErrClosed after a local Close
	// (Transport.Close, CloseFlow, Upstream.Close), io.EOF when the peer
	// closed it cleanly, ErrDeadPeer after an unanswered
	// keepalive, ErrReadTimeout, a framing error (wrapping a message
	// error such as message.ErrContentLength), or the network error.
	Err error
}
