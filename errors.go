package sip

import (
	"context"
	"errors"
	"fmt"

	"github.com/sipua/sip/message"
)

// Sentinel errors. Every error the package returns wraps one of them or a
// *ResponseError, so callers test with errors.Is and errors.As.
var (
	// ErrNotStarted reports a call that needs a started UserAgent.
	ErrNotStarted = errors.New("sip: user agent not started")
	// ErrStopped reports a call on a UserAgent that has been stopped.
	ErrStopped = errors.New("sip: user agent stopped")
	// ErrTransportClosed reports that the connection to the server is
	// gone, or that a message could not be sent.
	ErrTransportClosed = errors.New("sip: transport closed")
	// ErrTimeout reports that no final response arrived in time (RFC
	// 3261 Timer B or F).
	ErrTimeout = errors.New("sip: request timed out")
	// ErrAuthFailed reports that the server refused the credentials:
	// the request was challenged again after it was answered once.
	ErrAuthFailed = errors.New("sip: authentication failed")
	// ErrCanceled reports an operation canceled by the application.
	ErrCanceled = errors.New("sip: canceled")
	// ErrInvalidState reports a call that the object's state does not
	// allow (e.g. Unregister before Register).
	ErrInvalidState = errors.New("sip: invalid state")
	// ErrBadOptions reports options that cannot work (an unparsable URI,
	// an unknown transport scheme).
	ErrBadOptions = errors.New("sip: bad options")
	// ErrMedia reports a failure of the call's media handler (an offer or
	// answer it refused, a gathering that did not finish in
	// UserAgentOptions.MediaHandlerTimeout); a call it ends has EndMediaFailure.
	ErrMedia = errors.New("sip: media failure")
)

// ResponseError reports a request that ended with a final non-2xx
// response.
type ResponseError struct {
	// StatusCode and Reason are the response's status.
	StatusCode int
	Reason     string
	// Response is the final response.
	Response *message.Response
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("sip: request failed: %d %s", e.StatusCode, e.Reason)
}

// canceled returns the error for an operation that ctx ended: it wraps
// ErrCanceled and ctx.Err(), so errors.Is finds both ErrCanceled and
// context.Canceled or context.DeadlineExceeded.
func canceled(ctx context.Context) error {
	return fmt.Errorf("%w: %w", ErrCanceled, ctx.Err())
}

func responseError(resp *message.Response) error {
	return &ResponseError{StatusCode: resp.StatusCode, Reason: resp.Reason, Response: resp}
}
