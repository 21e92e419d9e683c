package transaction

import (
	"errors"
	"time"

	"github.com/sipua/sip/message"
)

// Errors reported to the transaction user.
var (
	// ErrTimeout reports that a transaction timed out: Timer B or F on a
	// client (no final response), Timer H on an INVITE server (no ACK).
	ErrTimeout = errors.New("transaction: timeout")
	// ErrTransport reports that the transport failed to send a message of
	// the transaction (RFC 3261 §8.1.3.1, §17.1.4).
	ErrTransport = errors.New("transaction: transport error")
	// ErrTerminated reports an input given to a transaction that has
	// ended.
	ErrTerminated = errors.New("transaction: terminated")
)

// Config holds the protocol timers. The zero value of a field selects the
// RFC 3261 default.
type Config struct {
	// T1 is the round-trip time estimate. Default 500 ms.
	T1 time.Duration
	// T2 is the longest retransmit interval for non-INVITE requests and
	// INVITE responses. Default 4 s.
	T2 time.Duration
	// T4 is the longest time a message stays in the network. Default 5 s.
	T4 time.Duration
	// TryingDelay is how long an INVITE server transaction waits for the
	// transaction user's first response before it sends 100 Trying
	// itself (RFC 3261 §17.2.1). Default 200 ms.
	TryingDelay time.Duration
}

func (c Config) norm() Config {
	if c.T1 <= 0 {
		c.T1 = 500 * time.Millisecond
	}
	if c.T2 <= 0 {
		c.T2 = 4 * time.Second
	}
	if c.T4 <= 0 {
		c.T4 = 5 * time.Second
	}
	if c.TryingDelay <= 0 {
		c.TryingDelay = 200 * time.Millisecond
	}
	return c
}

// State is the state of a transaction.
type State uint8

// Transaction states (RFC 3261 Figures 5 to 8, RFC 6026 Figures 3 and 5).
const (
	Calling State = iota + 1
	Trying
	Proceeding
	Completed
	Confirmed
	Accepted
	Terminated
)

func (s State) String() string {
	switch s {
	case Calling:
		return "Calling"
	case Trying:
		return "Trying"
	case Proceeding:
		return "Proceeding"
	case Completed:
		return "Completed"
	case Confirmed:
		return "Confirmed"
	case Accepted:
		return "Accepted"
	case Terminated:
		return "Terminated"
	}
	return "Unknown"
}

// ActionKind says what an Action asks the driver to do.
type ActionKind uint8

// Action kinds.
const (
	// Send: send Msg over the transport to the transaction's peer.
	Send ActionKind = iota + 1
	// PassUp: deliver Msg to the transaction user (a response for a
	// client transaction; the request, or an ACK to a 2xx, for a server
	// transaction).
	PassUp
	// Fail: tell the transaction user that the transaction failed with
	// Err (ErrTimeout or an error wrapping ErrTransport).
	Fail
	// Terminate: the transaction has ended and can be forgotten.
	Terminate
)

func (k ActionKind) String() string {
	switch k {
	case Send:
		return "Send"
	case PassUp:
		return "PassUp"
	case Fail:
		return "Fail"
	case Terminate:
		return "Terminate"
	}
	return "Unknown"
}

// Action is one output of a transaction machine.
type Action struct {
	Kind ActionKind
	Msg  message.Message
	Err  error
}

// deadline is one timer of a machine; the zero time means not running.
type deadline struct{ at time.Time }

func (t *deadline) set(now time.Time, d time.Duration) { t.at = now.Add(d) }
func (t *deadline) stop()                              { t.at = time.Time{} }
func (t *deadline) due(now time.Time) bool             { return !t.at.IsZero() && !now.Before(t.at) }

// timer is a deadline that keeps its interval, for a timer that doubles
// or is named in an error; the zero time means not running.
type timer struct {
	at       time.Time
	interval time.Duration
}

func (t *timer) set(now time.Time, d time.Duration) {
	t.at = now.Add(d)
	t.interval = d
}

func (t *timer) stop() { t.at = time.Time{} }

func (t *timer) due(now time.Time) bool { return !t.at.IsZero() && !now.Before(t.at) }

func earliest(ts ...time.Time) time.Time {
	var min time.Time
	for _, t := range ts {
		if !t.IsZero() && (min.IsZero() || t.Before(min)) {
			min = t
		}
	}
	return min
}
