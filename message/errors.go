package message

import (
	"errors"
	"fmt"
)

// Sentinel errors for each class of parse or validation failure. Every error
// the package returns wraps one of them, so callers test with errors.Is, and
// StatusCode tells which SIP response a UAS should answer with.
var (
	// ErrMalformed reports a syntax error (RFC 3261 §25 grammar). 400.
	ErrMalformed = errors.New("sip: malformed message")
	// ErrIncomplete reports that a stream buffer does not yet hold a whole
	// message. Not a failure of the peer: read more bytes and try again.
	ErrIncomplete = errors.New("sip: incomplete message")
	// ErrVersion reports a SIP version other than SIP/2.0. 505.
	ErrVersion = errors.New("sip: unsupported SIP version")
	// ErrTooLarge reports a message, header section or body over a Limits
	// value. 413 for a body, 400 (header) or 513 (message) otherwise.
	ErrTooLarge = errors.New("sip: message too large")
	// ErrContentLength reports a missing, negative, repeated or oversized
	// Content-Length (larger than the datagram, or absent on a stream). 400.
	ErrContentLength = errors.New("sip: bad Content-Length")
	// ErrMissingHeader reports that a mandatory header field is absent. 400.
	ErrMissingHeader = errors.New("sip: missing mandatory header")
	// ErrDuplicateHeader reports a single-valued header field that occurs
	// more than once. 400.
	ErrDuplicateHeader = errors.New("sip: repeated single-value header")
	// ErrOutOfRange reports a numeric value outside its allowed range (CSeq,
	// Max-Forwards, status code, port, Expires). 400.
	ErrOutOfRange = errors.New("sip: value out of range")
	// ErrMethodMismatch reports a CSeq method that differs from the
	// request method. 400.
	ErrMethodMismatch = errors.New("sip: CSeq method does not match request method")
	// ErrURIScheme reports a Request-URI whose scheme the UA does not
	// support. 416.
	ErrURIScheme = errors.New("sip: unsupported URI scheme")
)

// ParseError describes a failure to parse or validate a message. It wraps
// one of the package's sentinel errors.
type ParseError struct {
	// Err is the sentinel error classifying the failure.
	Err error
	// Header names the header field at fault, or is empty.
	Header string
	// Detail says what was wrong, for logs and for the reason phrase of
	// the error response.
	Detail string
	// Status is the response code a UAS should send for this failure.
	Status int
	// Message is what could be parsed before the failure was found: the
	// start line and header fields, so a UAS can still answer 400, 413,
	// 414, 505 or 513. It is nil when the start line or header section is
	// unusable; see Parse.
	Message Message
}

func (e *ParseError) Error() string {
	s := e.Err.Error()
	if e.Header != "" {
		s += " in " + e.Header
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel error.
func (e *ParseError) Unwrap() error { return e.Err }

// StatusCode returns the SIP status code a UAS should answer with for err:
// the Status of a *ParseError in its chain, 400 for any other error from
// this package, and 500 for errors of unknown origin.
func StatusCode(err error) int {
	var pe *ParseError
	if errors.As(err, &pe) && pe.Status != 0 {
		return pe.Status
	}
	switch {
	case errors.Is(err, ErrVersion):
		return 505
	case errors.Is(err, ErrURIScheme):
		return 416
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrContentLength),
		errors.Is(err, ErrMissingHeader), errors.Is(err, ErrDuplicateHeader),
		errors.Is(err, ErrOutOfRange), errors.Is(err, ErrMethodMismatch),
		errors.Is(err, ErrTooLarge):
		return 400
	}
	return 500
}

func statusOf(sentinel error) int {
	switch sentinel {
	case ErrVersion:
		return 505
	case ErrURIScheme:
		return 416
	}
	return 400
}

// errorf builds a *ParseError for sentinel about header hdr.
// asParseErr returns the *ParseError in err's chain, or a new one
// classifying err as ErrMalformed.
func asParseErr(err error) *ParseError {
	var pe *ParseError
	if errors.As(err, &pe) {
		return pe
	}
	return errorf(ErrMalformed, "", "%v", err)
}

func errorf(sentinel error, hdr string, format string, args ...any) *ParseError {
	d := format
	if len(args) > 0 {
		d = fmt.Sprintf(format, args...)
	}
	return &ParseError{Err: sentinel, Header: hdr, Detail: d, Status: statusOf(sentinel)}
}
