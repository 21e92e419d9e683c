package sip

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// The notifier side of RFC 6665, as JsSIP's Notifier (SIP.js has none):
// UserAgentDelegate.OnSubscribe receives each out-of-dialog SUBSCRIBE as
// an IncomingSubscription, which the application accepts or rejects and
// then feeds with Notify and ends with Terminate. A UserAgent without
// OnSubscribe answers SUBSCRIBE with 405 Method Not Allowed (or gives it
// to OnRequest) and leaves SUBSCRIBE out of Allow: it supports no event
// package at all, which is what 405 says; 489 Bad Event is for a notifier
// that supports SUBSCRIBE but not the package asked for, and is the
// application's answer through IncomingSubscription.Reject.

// AcceptSubscriptionOptions are the options of IncomingSubscription.Accept.
type AcceptSubscriptionOptions struct {
	// Expires caps the subscription lifetime, in seconds: the granted
	// lifetime is the one asked for (3600 when the SUBSCRIBE has no
	// Expires), shortened to Expires when that is lower; refreshes are
	// capped the same way. 0: no cap.
	Expires uint32
	// State is the state granted: SubscriptionActive (the default) or
	// SubscriptionPending (not authorized yet; RFC 6665 §4.2.1.1).
	State SubscriptionState
	// ContentType and Body are the current event state, sent in the
	// NOTIFY that follows the 200 at once (RFC 6665 §4.2.1.2) and in the
	// NOTIFYs that answer refreshes until Notify gives another.
	ContentType string
	Body        []byte
	// ExtraHeaders are added to the 200, as "Name: value".
	ExtraHeaders []string
}

// IncomingSubscription is an out-of-dialog SUBSCRIBE given to
// UserAgentDelegate.OnSubscribe, and then the subscription it creates on
// the notifier's side. The callback answers it with Accept or Reject; if
// it returns without doing so, the subscription is accepted as pending
// (Accept with State SubscriptionPending), to be made active later with
// Notify or ended with Terminate.
//
// Once accepted, the subscription answers the subscriber's refreshes
// itself (200 with the granted Expires and a NOTIFY with the current
// state), and ends with a NOTIFY "terminated;reason=timeout" when the
// subscriber unsubscribes (Expires: 0) or lets it expire. NOTIFYs are sent
// one at a time, each after the previous one is answered (RFC 6665
// §4.2.2); a NOTIFY that fails (non-2xx, timeout) ends the subscription.
type IncomingSubscription struct {
	// Request is the SUBSCRIBE as received.
	Request *message.Request
	// Flow is the connection or socket it came on.
	Flow transport.Flow

	ua        *UserAgent
	tx        *transaction.Server
	event     message.ValueParams
	requested uint32
	answered  atomic.Bool
	// stopped: Stop answered the SUBSCRIBE before the application did.
	stopped atomic.Bool
	st      stateBox[SubscriptionState]

	// Owned by the event loop.
	d           *dialog.Dialog
	registered  bool
	maxExpires  uint32
	expiresAt   time.Time
	expiry      *timerEntry
	contentType string
	body        []byte
	queue       []*notifyJob
	busy        bool
	ended       bool
}

// notifyJob is a NOTIFY waiting for its turn.
type notifyJob struct {
	state       SubscriptionState
	reason      string
	contentType string
	body        []byte
	done        func(error)
}

// onSubscribe receives an out-of-dialog SUBSCRIBE for the OnSubscribe
// delegate (on the loop).
func (ua *UserAgent) onSubscribe(tx *transaction.Server, req *message.Request, src any, f func(*IncomingSubscription)) {
	ev, ok, err := req.Header.Event()
	if !ok || err != nil {
		ua.reply(tx, 400, "Missing or Bad Event", nil)
		return
	}
	requested := uint32(defaultSubscriptionExpires)
	if e, ok, err := req.Header.Expires(); err != nil {
		ua.reply(tx, 400, "Bad Expires", nil)
		return
	} else if ok {
		requested = e
	}
	// Check now that the SUBSCRIBE can make a dialog (one Contact …), so
	// that Accept cannot fail on it.
	if _, err := dialog.NewUAS(req, ua.newResponse(req, 200, "")); err != nil {
		ua.reply(tx, 400, "Bad Contact", nil)
		return
	}
	s := &IncomingSubscription{Request: req, ua: ua, tx: tx, event: ev, requested: requested}
	if flow, ok := src.(transport.Flow); ok {
		s.Flow = flow
	}
	ua.unanswered[s] = struct{}{}
	ua.cbq.push(func() {
		f(s)
		if !s.answered.Load() {
			if err := s.Accept(context.Background(), AcceptSubscriptionOptions{State: SubscriptionPending}); err != nil {
				ua.log.Debug("sip: default 202 to SUBSCRIBE not sent", "err", err)
			}
		}
	})
}

// Event returns the event package asked for, e.g. "presence" (the Event
// header without its parameters; see Request for the id).
func (s *IncomingSubscription) Event() string { return s.event.Value }

// Expires returns the lifetime asked for (3600 s when the SUBSCRIBE has
// no Expires). 0 asks for a fetch: one NOTIFY with the current state and
// no subscription (RFC 6665 §4.4.3).
func (s *IncomingSubscription) Expires() time.Duration {
	return time.Duration(s.requested) * time.Second
}

// Body returns the SUBSCRIBE's body (a filter, for some packages).
func (s *IncomingSubscription) Body() []byte { return s.Request.Body }

// State returns the current state: SubscriptionInitial until answered,
// then SubscriptionPending or SubscriptionActive, and at the end
// SubscriptionTerminated.
func (s *IncomingSubscription) State() SubscriptionState { return s.st.get() }

// OnStateChange adds a state listener and returns a function removing it.
// Listeners run on the UserAgent's callback goroutine, in order.
func (s *IncomingSubscription) OnStateChange(f func(SubscriptionState)) (remove func()) {
	return s.st.listen(f)
}

func (s *IncomingSubscription) setState(st SubscriptionState) {
	s.st.set(st, SubscriptionTerminated, &s.ua.cbq)
}

// Accept answers 200 OK (with Expires and Contact), creating the
// subscription's dialog, and sends at once the NOTIFY with the state and
// the body of opts (RFC 6665 §4.2.1.2). It returns when both are sent;
// the NOTIFY's fate shows in the state (a failed NOTIFY terminates the
// subscription). A SUBSCRIBE with Expires: 0 (a fetch) gets its NOTIFY
// with "terminated;reason=timeout" and no subscription remains.
//
// Accept fails with ErrInvalidState when the SUBSCRIBE was answered
// already, ErrBadOptions for a State other than pending or active.
func (s *IncomingSubscription) Accept(ctx context.Context, opts AcceptSubscriptionOptions) error {
	if opts.State == SubscriptionInitial {
		opts.State = SubscriptionActive
	}
	if opts.State != SubscriptionActive && opts.State != SubscriptionPending {
		return fmt.Errorf("%w: accept as %s", ErrBadOptions, opts.State)
	}
	if len(opts.Body) > 0 && opts.ContentType == "" {
		return fmt.Errorf("%w: a body needs a ContentType", ErrBadOptions)
	}
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return err
	}
	if !s.answered.CompareAndSwap(false, true) {
		return s.answeredErr()
	}
	var err error
	if cerr := s.ua.call(ctx, func() { err = s.accept(opts) }); cerr != nil {
		return cerr
	}
	return err
}

// answeredErr is Accept's and Reject's error on a SUBSCRIBE answered
// already: ErrStopped when Stop answered it.
func (s *IncomingSubscription) answeredErr() error {
	if s.stopped.Load() {
		return fmt.Errorf("%w: the SUBSCRIBE was answered 503 at Stop", ErrStopped)
	}
	return fmt.Errorf("%w: already answered", ErrInvalidState)
}

func (s *IncomingSubscription) accept(opts AcceptSubscriptionOptions) error {
	delete(s.ua.unanswered, s)
	granted := s.requested
	if opts.Expires > 0 && opts.Expires < granted {
		granted = opts.Expires
	}
	s.maxExpires = opts.Expires
	resp := s.ua.newResponse(s.Request, 200, "")
	resp.Header.Add("Expires", strconv.FormatUint(uint64(granted), 10))
	resp.Header.Add("Contact", s.ua.contactAddress().String())
	addExtraHeaders(&resp.Header, opts.ExtraHeaders)
	d, err := dialog.NewUAS(s.Request, resp)
	if err != nil {
		s.ua.reply(s.tx, 400, "Bad Contact", nil)
		s.end()
		return fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	if err := s.ua.respond(s.tx, resp); err != nil {
		s.end()
		return fmt.Errorf("%w: %w", ErrTransportClosed, err)
	}
	s.d = d
	s.contentType, s.body = opts.ContentType, opts.Body
	if granted == 0 {
		// A fetch: the state once, and no subscription.
		s.enqueue(SubscriptionTerminated, "timeout", true, nil)
		s.end()
		return nil
	}
	s.ua.dialogs.Add(d)
	s.ua.usages[d.ID] = s
	s.registered = true
	s.setState(opts.State)
	s.setExpiry(granted)
	s.enqueue(opts.State, "", true, nil)
	return nil
}

// Reject answers the SUBSCRIBE with code, a final status of 300 or more
// (e.g. 403, or 489 Bad Event for a package the application does not
// serve), and reason ("" for the standard phrase). It returns once the
// response is handed to the transaction, or with ctx's error wrapped in
// ErrCanceled.
func (s *IncomingSubscription) Reject(ctx context.Context, code int, reason string) error {
	if code < 300 || code > 699 {
		return fmt.Errorf("%w: reject with %d", ErrBadOptions, code)
	}
	if !s.answered.CompareAndSwap(false, true) {
		return s.answeredErr()
	}
	resp := s.ua.newResponse(s.Request, code, reason)
	var err error
	if cerr := s.ua.call(ctx, func() {
		delete(s.ua.unanswered, s)
		err = s.ua.respond(s.tx, resp)
		s.end()
	}); cerr != nil {
		return cerr
	}
	return err
}

// Notify sends a NOTIFY with the event state body, of contentType, and
// Subscription-State state (SubscriptionActive or SubscriptionPending,
// with the remaining lifetime as expires; SubscriptionTerminated sends the
// final NOTIFY and ends the subscription), and waits for its answer: nil
// for a 2xx, a *ResponseError or an error wrapping ErrTimeout otherwise,
// and the subscription is then terminated. The body is kept for the
// NOTIFYs that answer refreshes. Notify fails with ErrInvalidState before
// Accept and after the end.
func (s *IncomingSubscription) Notify(ctx context.Context, state SubscriptionState, contentType string, body []byte) error {
	switch state {
	case SubscriptionActive, SubscriptionPending, SubscriptionTerminated:
	default:
		return fmt.Errorf("%w: notify %s", ErrBadOptions, state)
	}
	if len(body) > 0 && contentType == "" {
		return fmt.Errorf("%w: a body needs a ContentType", ErrBadOptions)
	}
	errc := make(chan error, 1)
	if err := s.ua.call(ctx, func() {
		if s.d == nil || s.ended {
			errc <- fmt.Errorf("%w: subscription not active", ErrInvalidState)
			return
		}
		s.contentType, s.body = contentType, body
		s.enqueue(state, "", true, func(err error) { errc <- err })
		if state == SubscriptionTerminated {
			s.end()
		} else {
			s.setState(state)
		}
	}); err != nil {
		return err
	}
	return s.wait(ctx, errc)
}

// Terminate ends the subscription with a NOTIFY "terminated", with
// reason as its reason parameter when not "" (RFC 6665 §4.1.3:
// "deactivated", "noresource", "rejected" …), and waits for its answer.
// On a subscription that has ended it does nothing. Before Accept it fails
// with ErrInvalidState: use Reject.
func (s *IncomingSubscription) Terminate(ctx context.Context, reason string) error {
	if reason != "" && !isToken(reason) {
		return fmt.Errorf("%w: reason %q", ErrBadOptions, reason)
	}
	errc := make(chan error, 1)
	if err := s.ua.call(ctx, func() {
		switch {
		case s.ended:
			errc <- nil
		case s.d == nil:
			errc <- fmt.Errorf("%w: not accepted; use Reject", ErrInvalidState)
		default:
			s.enqueue(SubscriptionTerminated, reason, false, func(err error) { errc <- err })
			s.end()
		}
	}); err != nil {
		return err
	}
	return s.wait(ctx, errc)
}

func (s *IncomingSubscription) wait(ctx context.Context, errc chan error) error {
	return s.ua.await(ctx, errc)
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '+' || c == '!' || c == '%' || c == '*' || c == '`' || c == '\'' || c == '~') {
			return false
		}
	}
	return s != ""
}

// setExpiry (re)starts the lifetime of sec seconds (on the loop).
func (s *IncomingSubscription) setExpiry(sec uint32) {
	lifetime := time.Duration(sec) * time.Second
	s.expiresAt = time.Now().Add(lifetime)
	s.ua.timers.stop(s.expiry)
	s.expiry = s.ua.after(lifetime, func() {
		if !s.ended {
			s.enqueue(SubscriptionTerminated, "timeout", false, nil)
			s.end()
		}
	})
}

// onRequest receives the requests of the subscription's dialog: refreshes
// and the unsubscription.
func (s *IncomingSubscription) onRequest(tx *transaction.Server, req *message.Request, _ *dialog.Dialog) {
	if req.Method != "SUBSCRIBE" {
		s.ua.reply(tx, 405, "", func(r *message.Response) { r.Header.Add("Allow", "SUBSCRIBE") })
		return
	}
	if !eventMatches(req, s.event) {
		s.ua.reply(tx, 489, "", nil)
		return
	}
	exp := uint32(defaultSubscriptionExpires)
	if e, ok, err := req.Header.Expires(); err != nil {
		s.ua.reply(tx, 400, "Bad Expires", nil)
		return
	} else if ok {
		exp = e
	}
	if s.maxExpires > 0 && exp > s.maxExpires {
		exp = s.maxExpires
	}
	s.ua.reply(tx, 200, "", func(r *message.Response) {
		r.Header.Add("Expires", strconv.FormatUint(uint64(exp), 10))
		r.Header.Add("Contact", s.ua.contactAddress().String())
	})
	if exp == 0 {
		s.enqueue(SubscriptionTerminated, "timeout", true, nil)
		s.end()
		return
	}
	s.setExpiry(exp)
	s.enqueue(s.State(), "", true, nil)
}

// enqueue queues a NOTIFY; withBody sends the current body.
func (s *IncomingSubscription) enqueue(state SubscriptionState, reason string, withBody bool, done func(error)) {
	j := &notifyJob{state: state, reason: reason, done: done}
	if withBody {
		j.contentType, j.body = s.contentType, s.body
	}
	s.queue = append(s.queue, j)
	s.sendNext()
}

// subscriptionState is the Subscription-State of a NOTIFY sent now.
func (s *IncomingSubscription) subscriptionState(j *notifyJob) string {
	switch j.state {
	case SubscriptionTerminated:
		if j.reason != "" {
			return "terminated;reason=" + j.reason
		}
		return "terminated"
	case SubscriptionPending, SubscriptionActive:
		left := max(time.Until(s.expiresAt)+time.Second/2, 0) / time.Second
		v := "active"
		if j.state == SubscriptionPending {
			v = "pending"
		}
		return v + ";expires=" + strconv.FormatInt(int64(left), 10)
	}
	return "active"
}

// sendNext sends the next queued NOTIFY unless one is awaiting its
// answer (RFC 6665 §4.2.2).
func (s *IncomingSubscription) sendNext() {
	if s.busy || len(s.queue) == 0 {
		return
	}
	j := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	finish := func(err error) {
		s.busy = false
		if err != nil {
			s.end()
			for _, q := range s.queue {
				if q.done != nil {
					q.done(fmt.Errorf("%w: subscription terminated: %w", ErrInvalidState, err))
				}
			}
			s.queue = nil
		}
		if j.done != nil {
			j.done(err)
		}
		s.sendNext()
	}
	req, err := s.d.NewRequest("NOTIFY")
	if err != nil {
		finish(fmt.Errorf("%w: %w", ErrInvalidState, err))
		return
	}
	h := &req.Header
	h.Add("Event", s.event.String())
	h.Add("Subscription-State", s.subscriptionState(j))
	h.Add("Contact", s.ua.contactAddress().String())
	if len(j.body) > 0 {
		h.Add("Content-Type", j.contentType)
		req.Body = j.body
	}
	o := &outgoing{req: req}
	o.rebuild = nextCSeq(&s.d.LocalSeq)
	o.onResponse = func(resp *message.Response) {
		if resp.StatusCode < 200 || o.ended {
			return
		}
		o.ended = true
		if resp.StatusCode >= 300 {
			finish(responseError(resp))
			return
		}
		finish(nil)
	}
	o.onError = finish
	s.busy = true
	if err := s.ua.send(o); err != nil {
		finish(err)
	}
}

// end terminates the subscription and frees its dialog and timer (on the
// loop); queued NOTIFYs still go out.
func (s *IncomingSubscription) end() {
	if s.ended {
		return
	}
	s.ended = true
	s.ua.timers.stop(s.expiry)
	if s.registered {
		s.ua.dialogs.Remove(s.d.ID)
		if s.ua.usages[s.d.ID] == usage(s) {
			delete(s.ua.usages, s.d.ID)
		}
		s.registered = false
	}
	s.setState(SubscriptionTerminated)
}

// account is the UserAgent the IncomingSubscription belongs to.
func (s *IncomingSubscription) account() *UserAgent { return s.ua }
