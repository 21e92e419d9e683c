package transport

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by the package wrap one of them (or an
// error of the net, crypto/tls or message packages), so callers test with
// errors.Is.
var (
	// ErrClosed reports an operation on a Transport, Upstream or
	// connection that has been closed.
	ErrClosed = errors.New("transport: closed")
	// ErrDeadPeer reports a connection closed because the peer did not
	// answer a keepalive ping within Keepalive.Timeout.
	ErrDeadPeer = errors.New("transport: peer did not answer keepalive (dead peer)")
	// ErrSubprotocol reports a WebSocket server that did not agree to the
	// "sip" subprotocol (RFC 7118 §4.1). See SubprotocolError.
	ErrSubprotocol = errors.New("transport: WebSocket server did not accept the sip subprotocol")
	// ErrNoConnection reports that a Target names a connection (ConnID)
	// that no longer exists, or that a response cannot be delivered
	// because its connection is gone and a new one cannot be opened to
	// the peer (a WebSocket client).
	ErrNoConnection = errors.New("transport: no connection to the target")
	// ErrUnsupported reports a transport, URI scheme or address this
	// package cannot send to (e.g. SCTP, a tel URI).
	ErrUnsupported = errors.New("transport: unsupported transport or address")
	// ErrResolve reports that a URI resolved to no usable target.
	ErrResolve = errors.New("transport: cannot resolve destination")
	// ErrTooManyConns reports a connection refused because the server side
	// already has Config.MaxConns connections.
	ErrTooManyConns = errors.New("transport: too many connections")
	// ErrReadTimeout reports a connection closed because a message was not
	// received whole within Config.ReadTimeout (slowloris protection), or
	// because it was idle longer than Config.IdleTimeout.
	ErrReadTimeout = errors.New("transport: read timeout")
	// ErrMessageTooLarge reports a message over the size limits, to send
	// or received; a received one closes its stream connection.
	ErrMessageTooLarge = errors.New("transport: message too large")
	// ErrGaveUp reports that an Upstream stopped reconnecting after
	// Backoff.MaxAttempts failed attempts, or at once when every server
	// failed for good (see Permanent: a certificate that does not
	// verify). It wraps the last attempt's error.
	ErrGaveUp = errors.New("transport: gave up reconnecting")
)

// SubprotocolError is returned when a WebSocket handshake succeeds but the
// server selects a subprotocol other than "sip" (or none). It wraps
// ErrSubprotocol.
type SubprotocolError struct {
	// URL is the WebSocket URL dialled.
	URL string
	// Got is the subprotocol the server selected, "" for none.
	Got string
}

// Error describes the refused subprotocol.
func (e *SubprotocolError) Error() string {
	return fmt.Sprintf("transport: WebSocket server %s selected subprotocol %q, want \"sip\"", e.URL, e.Got)
}

// Unwrap returns ErrSubprotocol.
func (e *SubprotocolError) Unwrap() error { return ErrSubprotocol }
