package sip

import (
	"time"
)

// Observer receives the events a metrics package counts (see metrics/prom):
// calls starting, being answered and ending, transactions and their
// retransmissions, the server connection coming and going, registration
// state. Set it in UserAgentOptions.Observer; every field may be nil. A nil
// Observer (the default) costs one pointer comparison per event.
//
// The functions run as part of the UserAgent's event loop (Registration
// also on the goroutine of a Registerer method), not on a callback lane:
// on the loop's goroutine, or on the goroutine that does the loop's work
// in its place when the loop is idle (a transport reader, a goroutine in
// an exported method). They may run concurrently with each other: they
// must return quickly (update a counter), must not block and must not
// call the UserAgent's blocking methods, as the loop waits for them.
// They are never called with a lock held that they could take.
type Observer struct {
	// CallStarted reports a call entering SessionEstablishing: our INVITE
	// is sent, or an INVITE arrived.
	CallStarted func(CallEvent)
	// CallAnswered reports a call reaching SessionEstablished; Setup is
	// the time since CallStarted.
	CallAnswered func(CallEvent)
	// CallEnded reports a call's end; Reason says why, Duration how long it
	// lasted since it was answered (zero if it never was), Setup is set
	// as in CallAnswered.
	CallEnded func(CallEvent)
	// TransactionEnded reports that a client or server transaction has
	// ended.
	TransactionEnded func(TransactionEvent)
	// Retransmission reports a request or response sent again by a
	// transaction's timer (RFC 3261 §17: Timers A, E, G).
	Retransmission func(TransactionEvent)
	// Connection reports the connection to the server (TransportOptions.
	// Server) coming up or going down.
	Connection func(ConnectionEvent)
	// Registration reports a Registerer's state change.
	Registration func(RegistrationEvent)
}

// CallEvent describes a call for an Observer.
type CallEvent struct {
	// Session is the call; do not call its blocking methods from the
	// Observer.
	Session *Session
	// Incoming is true for an Invitation, false for an Inviter.
	Incoming bool
	// Setup is the time from the INVITE to the answer (set once answered).
	Setup time.Duration
	// Duration is how long the call was established (CallEnded only).
	Duration time.Duration
	// Reason is why the call ended (CallEnded only).
	Reason EndReason
}

// TransactionEvent describes a transaction for an Observer.
type TransactionEvent struct {
	// Method is the request's method.
	Method string
	// Client is true for a transaction we started.
	Client bool
}

// ConnectionEvent describes a change of the server connection.
type ConnectionEvent struct {
	// Server is the address connected to (or lost).
	Server string
	// Up is true when the connection is up, false when it went down.
	Up bool
	// Reconnect is true when a connection came up after an earlier one
	// was lost.
	Reconnect bool
	// Err is why the connection went down.
	Err error
}

// RegistrationEvent describes a Registerer's state change.
type RegistrationEvent struct {
	// Registerer is the registerer; AOR its address of record.
	Registerer *Registerer
	AOR        string
	// State is the new state.
	State RegistererState
}

// obsTimes are a session's timestamps for the Observer; zero without one.
type obsTimes struct {
	started, answered time.Time
}

// obsSession reports a session's state change to the Observer. Runs on
// the loop. Small enough to be inlined: without an Observer it costs a
// nil check.
func (s *Session) obsSession(st SessionState) {
	if o := s.ua.opts.Observer; o != nil {
		s.obsReport(o, st)
	}
}

func (s *Session) obsReport(o *Observer, st SessionState) {
	now := time.Now()
	ev := CallEvent{Session: s, Incoming: s.incoming}
	switch st {
	case SessionEstablishing:
		if !s.obs.started.IsZero() {
			return
		}
		s.obs.started = now
		if o.CallStarted != nil {
			o.CallStarted(ev)
		}
	case SessionEstablished:
		if !s.obs.answered.IsZero() {
			return
		}
		s.obs.answered = now
		if !s.obs.started.IsZero() {
			ev.Setup = now.Sub(s.obs.started)
		}
		if o.CallAnswered != nil {
			o.CallAnswered(ev)
		}
	case SessionTerminated:
		if s.obs.started.IsZero() {
			return // never started: nothing was counted
		}
		if !s.obs.answered.IsZero() {
			ev.Setup = s.obs.answered.Sub(s.obs.started)
			ev.Duration = now.Sub(s.obs.answered)
		}
		ev.Reason = s.EndReason()
		if o.CallEnded != nil {
			o.CallEnded(ev)
		}
	}
}

// obsRegistration reports a Registerer's new state.
func (r *Registerer) obsRegistration(s RegistererState) {
	o := r.ua.opts.Observer
	if o == nil || o.Registration == nil {
		return
	}
	o.Registration(RegistrationEvent{Registerer: r, AOR: r.ua.aor.String(), State: s})
}
