package sip

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/message"
)

// SubscriptionState is the state of a subscription (RFC 6665), on the
// subscriber's side (Subscriber) as on the notifier's
// (IncomingSubscription), as SIP.js's.
type SubscriptionState int

// Subscription states.
const (
	// SubscriptionInitial: nothing sent (Subscriber) or not answered yet
	// (IncomingSubscription).
	SubscriptionInitial SubscriptionState = iota
	// SubscriptionNotifyWait: the SUBSCRIBE is sent; no NOTIFY has come
	// yet. Subscriber only.
	SubscriptionNotifyWait
	// SubscriptionPending: the notifier has not authorized the
	// subscription yet (Subscription-State: pending).
	SubscriptionPending
	// SubscriptionActive: the subscription is authorized
	// (Subscription-State: active).
	SubscriptionActive
	// SubscriptionTerminated: the subscription has ended, for good.
	SubscriptionTerminated
)

// String returns the state's name, e.g. "Active".
func (s SubscriptionState) String() string {
	switch s {
	case SubscriptionInitial:
		return "Initial"
	case SubscriptionNotifyWait:
		return "NotifyWait"
	case SubscriptionPending:
		return "Pending"
	case SubscriptionActive:
		return "Active"
	case SubscriptionTerminated:
		return "Terminated"
	}
	return "Unknown"
}

// defaultSubscriptionExpires is the subscription lifetime asked for, and
// granted to a SUBSCRIBE without Expires, in seconds.
const defaultSubscriptionExpires = 3600

// SubscriberOptions configures a Subscriber. The zero value works.
type SubscriberOptions struct {
	// Expires is the subscription lifetime asked for, in seconds.
	// Default 3600.
	Expires uint32
	// RefreshFraction is the part of the granted lifetime after which the
	// subscription is refreshed. Default 0.9. As for a Registerer, at
	// least 5 s (or half the lifetime, if shorter) are always left.
	RefreshFraction float64
	// Accept lists the body types the subscriber understands, sent in
	// Accept. Empty: no Accept header (the event package's default
	// type).
	Accept []string
	// ExtraHeaders are added to every SUBSCRIBE, as "Name: value".
	ExtraHeaders []string
	// ContentType and Body are the body of the SUBSCRIBE and its
	// refreshes (e.g. an event filter); none when Body is empty.
	ContentType string
	Body        []byte
}

// SubscribeOptions are the options of one Subscribe call.
type SubscribeOptions struct {
	// ExtraHeaders are added to this SUBSCRIBE, as "Name: value".
	ExtraHeaders []string
}

// Subscriber subscribes to an event package of a target (RFC 6665), as
// SIP.js's Subscriber: it sends SUBSCRIBE, receives the NOTIFYs of the
// subscription, refreshes it before it expires and ends it with
// Unsubscribe.
//
// The subscription is a dialog: it is created by the 2xx to the SUBSCRIBE
// or by a NOTIFY that overtakes it. The subscription ends (state
// SubscriptionTerminated) on a NOTIFY with Subscription-State terminated,
// on Unsubscribe, on a rejected SUBSCRIBE, on a refresh refused with a
// code that ends the dialog usage (481 and the like, RFC 6665 §4.1.2.2),
// when it expires without a successful refresh, and when no NOTIFY
// arrives within 64*T1 after the 2xx (RFC 6665 §4.1.2.4). A terminated
// Subscriber stays terminated: subscribe again with a new one.
type Subscriber struct {
	ua     *UserAgent
	target message.URI
	event  message.ValueParams
	opts   SubscriberOptions

	st       stateBox[SubscriptionState]
	notifyMu sync.Mutex
	onNotify func(*Notification)
	done     chan struct{} // closed when terminated
	unsubErr atomic.Pointer[error]

	// Owned by the event loop.
	callID        string
	fromTag       string
	cseq          uint32 // of the last out-of-dialog SUBSCRIBE
	expires       uint32 // asked for; a 423 may raise it
	d             *dialog.Dialog
	notified      bool // a NOTIFY has arrived
	unsubscribing bool // Unsubscribe called
	unsubSent     bool // the SUBSCRIBE with Expires 0 is out
	refresh       *timerEntry
	expiry        *timerEntry
	wait          *timerEntry // for a NOTIFY (after the 2xx or an unsubscription)
}

// NewSubscriber returns a Subscriber of event (an event package such as
// "presence", "dialog" or "message-summary", with an optional ";id=…"
// parameter) of target, a SIP URI. It sends nothing until Subscribe.
func NewSubscriber(ua *UserAgent, target, event string, opts SubscriberOptions) (*Subscriber, error) {
	u, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	ev, err := parseEvent(event)
	if err != nil {
		return nil, err
	}
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return nil, err
	}
	if opts.Expires == 0 {
		opts.Expires = defaultSubscriptionExpires
	}
	if opts.RefreshFraction <= 0 || opts.RefreshFraction >= 1 {
		opts.RefreshFraction = 0.9
	}
	if len(opts.Body) > 0 && opts.ContentType == "" {
		return nil, fmt.Errorf("%w: a SUBSCRIBE body needs a ContentType", ErrBadOptions)
	}
	return &Subscriber{
		ua: ua, target: u, event: ev, opts: opts,
		done:    make(chan struct{}),
		callID:  message.NewCallID(),
		fromTag: message.NewTag(),
		cseq:    uint32(time.Now().UnixNano()%100000) + 1,
		expires: opts.Expires,
	}, nil
}

func parseEvent(event string) (message.ValueParams, error) {
	ev, err := message.ParseValueParams(event)
	if err != nil || strings.ContainsAny(ev.Value, " \t,") {
		return message.ValueParams{}, fmt.Errorf("%w: event %q", ErrBadOptions, event)
	}
	return ev, nil
}

// State returns the current state.
func (s *Subscriber) State() SubscriptionState { return s.st.get() }

// OnStateChange adds a state listener and returns a function removing it.
// Listeners run on the UserAgent's callback goroutine, in order.
func (s *Subscriber) OnStateChange(f func(SubscriptionState)) (remove func()) { return s.st.listen(f) }

// OnNotify sets the function that receives the NOTIFYs of the
// subscription (replacing an earlier one; set it before Subscribe). It
// runs on the UserAgent's callback goroutine and answers the NOTIFY with
// Accept or Reject; if it returns without answering, the NOTIFY is
// accepted with 200. Nil: every NOTIFY is accepted at once.
//
// The Subscriber has already taken the NOTIFY's Subscription-State into
// account when the function runs (state listeners are called first).
func (s *Subscriber) OnNotify(f func(*Notification)) {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	s.onNotify = f
}

func (s *Subscriber) notifyHandler() func(*Notification) {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.onNotify
}

func (s *Subscriber) setState(st SubscriptionState) {
	s.st.set(st, SubscriptionTerminated, &s.ua.cbq)
}

// Subscribe sends the SUBSCRIBE and waits for its final response: nil
// for a 2xx (the state is then SubscriptionNotifyWait until the first
// NOTIFY, unless that came first), a *ResponseError for a rejection (the
// subscription is then terminated), an error wrapping ErrTimeout,
// ErrAuthFailed or ErrTransportClosed otherwise. A 423 Interval Too Brief
// is retried once with the notifier's Min-Expires.
//
// On a subscription that is established (pending or active), Subscribe
// refreshes it at once. It fails with ErrInvalidState on a terminated
// subscription or while the first SUBSCRIBE is unanswered.
func (s *Subscriber) Subscribe(ctx context.Context, opts SubscribeOptions) error {
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return err
	}
	errc := make(chan error, 1)
	done := func(err error) { errc <- err }
	if err := s.ua.call(ctx, func() {
		switch st := s.State(); {
		case st == SubscriptionInitial:
			s.setState(SubscriptionNotifyWait)
			s.sendInitial(opts.ExtraHeaders, false, done)
		case st == SubscriptionTerminated:
			done(fmt.Errorf("%w: subscription terminated", ErrInvalidState))
		case s.unsubscribing:
			done(fmt.Errorf("%w: subscription ending", ErrInvalidState))
		case s.d == nil:
			done(fmt.Errorf("%w: subscription in progress", ErrInvalidState))
		default:
			s.sendRefresh(opts.ExtraHeaders, done)
		}
	}); err != nil {
		return err
	}
	return s.ua.await(ctx, errc)
}

// Unsubscribe ends the subscription: it sends SUBSCRIBE with Expires: 0
// and waits for the notifier's final NOTIFY (Subscription-State:
// terminated), or 64*T1 for it, then the Subscriber is terminated. It
// returns nil once terminated, or the error of the unsubscribing
// SUBSCRIBE (a *ResponseError …; a 481 counts as success: the
// subscription was gone). A Subscriber that has sent nothing is terminated
// at once; on a terminated one Unsubscribe does nothing. If ctx ends
// first, Unsubscribe returns an error wrapping ErrCanceled and the
// unsubscription goes on.
func (s *Subscriber) Unsubscribe(ctx context.Context) error {
	if err := s.ua.call(ctx, func() {
		switch {
		case s.State() == SubscriptionTerminated:
		case s.State() == SubscriptionInitial:
			s.terminate()
		case s.d == nil:
			// The first SUBSCRIBE is unanswered: unsubscribe once the
			// dialog exists (or never, if it fails).
			s.unsubscribing = true
		default:
			s.sendUnsubscribe()
		}
	}); err != nil {
		return err
	}
	select {
	case <-s.done:
		if e := s.unsubErr.Load(); e != nil {
			return *e
		}
		return nil
	case <-ctx.Done():
		return canceled(ctx)
	case <-s.ua.quit:
		return ErrStopped
	}
}

// addHeaders adds what every SUBSCRIBE carries.
func (s *Subscriber) addHeaders(req *message.Request, expires uint32, extra []string, body bool) {
	h := &req.Header
	h.Add("Event", s.event.String())
	h.Add("Expires", strconv.FormatUint(uint64(expires), 10))
	h.Add("Contact", s.ua.contactAddress().String())
	if len(s.opts.Accept) > 0 {
		h.Add("Accept", strings.Join(s.opts.Accept, ", "))
	}
	addExtraHeaders(h, s.opts.ExtraHeaders)
	addExtraHeaders(h, extra)
	if body && len(s.opts.Body) > 0 {
		h.Add("Content-Type", s.opts.ContentType)
		req.Body = s.opts.Body
	}
}

func addExtraHeaders(h *message.Header, extra []string) {
	for _, x := range extra {
		n, v, _ := strings.Cut(x, ":")
		h.Add(strings.TrimSpace(n), strings.TrimSpace(v))
	}
}

// sendInitial sends the out-of-dialog SUBSCRIBE (on the loop) and reports
// its outcome to done.
func (s *Subscriber) sendInitial(extra []string, retried423 bool, done func(error)) {
	from := message.Address{DisplayName: s.ua.opts.DisplayName, URI: s.ua.aor, Params: message.Params("tag=" + s.fromTag)}
	to := message.Address{URI: s.target}
	to.URI.Params, to.URI.Headers = "", ""
	req := message.NewRequest("SUBSCRIBE", s.target, from, to)
	req.Header.Set("Call-ID", s.callID)
	s.cseq++
	req.Header.Set("CSeq", message.CSeq{Seq: s.cseq, Method: "SUBSCRIBE"}.String())
	s.addHeaders(req, s.expires, extra, true)

	o := &outgoing{req: req}
	o.rebuild = nextCSeq(&s.cseq)
	o.onResponse = func(resp *message.Response) {
		if resp.StatusCode < 200 || o.ended {
			return
		}
		o.ended = true
		s.onInitialResponse(o.req, resp, extra, retried423, done)
	}
	o.onError = func(err error) {
		s.terminate()
		done(err)
	}
	// A NOTIFY may overtake the 2xx: it is ours while no dialog exists.
	s.ua.claims[s] = s.claim
	if err := s.ua.send(o); err != nil {
		s.terminate()
		done(err)
	}
}

func (s *Subscriber) onInitialResponse(req *message.Request, resp *message.Response, extra []string, retried423 bool, done func(error)) {
	switch {
	case s.State() == SubscriptionTerminated:
		// Ended meanwhile (a terminating NOTIFY came first).
		if resp.StatusCode >= 300 {
			done(responseError(resp))
			return
		}
		done(nil)
	case resp.StatusCode < 300:
		if s.d == nil {
			// A 2xx that cannot make a dialog (no Contact) leaves the
			// claim in place: the NOTIFY will make it.
			if d, err := dialog.NewUAC(req, resp); err == nil {
				s.addDialog(d)
			} else {
				s.ua.log.Debug("sip: 2xx to SUBSCRIBE makes no dialog; waiting for the NOTIFY", "err", err)
			}
		}
		granted := s.expires
		if e, ok, err := resp.Header.Expires(); ok && err == nil {
			granted = e
		}
		if granted > 0 {
			s.setLifetime(granted)
		}
		if !s.notified {
			s.ua.timers.stop(s.wait)
			s.wait = s.ua.after(64*s.ua.t1(), func() {
				s.ua.log.Debug("sip: no NOTIFY after the 2xx to SUBSCRIBE", "call-id", s.callID)
				s.terminate()
			})
		}
		done(nil)
		if s.unsubscribing && s.d != nil {
			s.sendUnsubscribe()
		}
	case resp.StatusCode == 423 && !retried423:
		if min, ok, _ := resp.Header.MinExpires(); ok && min > s.expires {
			s.expires = min
			s.sendInitial(extra, true, done)
			return
		}
		s.terminate()
		done(responseError(resp))
	default:
		s.terminate()
		done(responseError(resp))
	}
}

// claim takes a NOTIFY of this subscription that arrives before any
// dialog exists (before the 2xx to the SUBSCRIBE): the NOTIFY creates the
// dialog (RFC 6665 §4.1.2.4). Once a dialog exists, NOTIFYs of other
// notifiers (a forked SUBSCRIBE) are not claimed and get 481, which
// declines those subscriptions.
func (s *Subscriber) claim(tx *transaction.Server, req *message.Request) bool {
	if req.Method != "NOTIFY" || s.d != nil || req.Header.CallID() != s.callID || req.Header.ToTag() != s.fromTag {
		return false
	}
	if !eventMatches(req, s.event) {
		s.ua.reply(tx, 489, "", nil)
		return true
	}
	d, err := dialog.NewUAS(req, s.ua.newResponse(req, 200, ""))
	if err != nil {
		s.ua.reply(tx, 400, "Bad NOTIFY", nil)
		return true
	}
	d.LocalSeq = s.cseq
	s.addDialog(d)
	s.handleNotify(tx, req)
	if s.unsubscribing && s.State() != SubscriptionTerminated {
		s.sendUnsubscribe()
	}
	return true
}

// addDialog makes d the subscription's dialog.
func (s *Subscriber) addDialog(d *dialog.Dialog) {
	delete(s.ua.claims, s)
	s.d = d
	s.ua.dialogs.Add(d)
	s.ua.usages[d.ID] = s
}

// onRequest receives the requests of the subscription's dialog.
func (s *Subscriber) onRequest(tx *transaction.Server, req *message.Request, _ *dialog.Dialog) {
	if req.Method != "NOTIFY" {
		s.ua.reply(tx, 405, "", func(r *message.Response) { r.Header.Add("Allow", "NOTIFY") })
		return
	}
	s.handleNotify(tx, req)
}

// handleNotify processes a NOTIFY of the subscription's dialog.
func (s *Subscriber) handleNotify(tx *transaction.Server, req *message.Request) {
	if !eventMatches(req, s.event) {
		s.ua.reply(tx, 489, "", nil)
		return
	}
	ss, ok, err := req.Header.SubscriptionState()
	if !ok || err != nil {
		s.ua.reply(tx, 400, "Missing or Bad Subscription-State", nil)
		return
	}
	n := &Notification{Request: req, ua: s.ua, tx: tx, s: s}
	switch strings.ToLower(ss.Value) {
	case "active":
		n.State = SubscriptionActive
	case "pending":
		n.State = SubscriptionPending
	case "terminated":
		n.State = SubscriptionTerminated
	default:
		s.ua.reply(tx, 400, "Unknown Subscription-State", nil)
		return
	}
	expires, hasExpires := uintParam(ss.Params, "expires")
	n.Expires = time.Duration(expires) * time.Second
	n.Reason, _ = ss.Params.Get("reason")
	if ra, ok := uintParam(ss.Params, "retry-after"); ok {
		n.RetryAfter = time.Duration(ra) * time.Second
	}

	s.notified = true
	if n.State == SubscriptionTerminated {
		s.terminate()
	} else if !s.unsubscribing {
		s.ua.timers.stop(s.wait)
		s.setState(n.State)
		if hasExpires && expires > 0 {
			s.setLifetime(expires)
		}
	}

	f := s.notifyHandler()
	if f == nil {
		s.ua.reply(tx, 200, "", nil)
		return
	}
	s.ua.cbq.push(func() {
		f(n)
		if !n.answered.Load() {
			if err := n.Accept(context.Background()); err != nil {
				s.ua.log.Debug("sip: default 200 to NOTIFY not sent", "err", err)
			}
		}
	})
}

func uintParam(p message.Params, name string) (uint32, bool) {
	v, ok := p.Get(name)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}

// eventMatches reports whether req's Event names the package and id of
// ev (RFC 6665 §8.2.1: both compared, the package case-insensitively).
func eventMatches(req *message.Request, ev message.ValueParams) bool {
	got, ok, err := req.Header.Event()
	if !ok || err != nil || !strings.EqualFold(got.Value, ev.Value) {
		return false
	}
	a, _ := got.Params.Get("id")
	b, _ := ev.Params.Get("id")
	return a == b
}

// refreshDelay is when a lifetime is refreshed: after fraction of it, but
// leaving at least 5 s (or half the lifetime when shorter), as
// Registerer.scheduleRefresh does.
func refreshDelay(lifetime time.Duration, fraction float64) time.Duration {
	margin := time.Duration(float64(lifetime) * (1 - fraction)).Round(time.Millisecond)
	if m := min(5*time.Second, lifetime/2); margin < m {
		margin = m
	}
	return lifetime - margin
}

// setLifetime schedules the refresh and the expiry of a subscription
// that lasts sec seconds from now.
func (s *Subscriber) setLifetime(sec uint32) {
	lifetime := time.Duration(sec) * time.Second
	s.ua.timers.stop(s.expiry)
	s.ua.timers.stop(s.refresh)
	s.expiry = s.ua.after(lifetime, func() {
		s.ua.log.Debug("sip: subscription expired", "call-id", s.callID)
		s.terminate()
	})
	if s.unsubscribing {
		return
	}
	s.refresh = s.ua.after(refreshDelay(lifetime, s.opts.RefreshFraction), func() {
		if s.d != nil && !s.unsubscribing {
			s.sendRefresh(nil, func(error) {})
		}
	})
}

// newInDialog builds an in-dialog SUBSCRIBE whose CSeq follows the
// dialog's again when authentication makes it send again.
func (s *Subscriber) newInDialog(expires uint32, extra []string, body bool) (*outgoing, error) {
	req, err := s.d.NewRequest("SUBSCRIBE")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	s.addHeaders(req, expires, extra, body)
	o := &outgoing{req: req}
	o.rebuild = nextCSeq(&s.d.LocalSeq)
	return o, nil
}

// endsUsage reports whether a response to a refreshing SUBSCRIBE ends the
// subscription (RFC 6665 §4.1.2.2, RFC 5057 §5.1); after any other
// failure the subscription lasts until it expires.
func endsUsage(code int) bool {
	switch code {
	case 404, 405, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 604:
		return true
	}
	return false
}

// sendRefresh sends an in-dialog SUBSCRIBE that refreshes the
// subscription (on the loop).
func (s *Subscriber) sendRefresh(extra []string, done func(error)) {
	o, err := s.newInDialog(s.expires, extra, true)
	if err != nil {
		done(err)
		return
	}
	o.onResponse = func(resp *message.Response) {
		if resp.StatusCode < 200 || o.ended {
			return
		}
		o.ended = true
		switch {
		case s.State() == SubscriptionTerminated:
			done(fmt.Errorf("%w: subscription terminated", ErrInvalidState))
		case resp.StatusCode < 300:
			if s.d != nil {
				s.d.RefreshTarget(resp)
			}
			granted := s.expires
			if e, ok, err := resp.Header.Expires(); ok && err == nil {
				granted = e
			}
			if granted > 0 {
				s.setLifetime(granted)
			}
			done(nil)
		default:
			if endsUsage(resp.StatusCode) {
				s.terminate()
			}
			done(responseError(resp))
		}
	}
	o.onError = done
	if err := s.ua.send(o); err != nil {
		done(err)
	}
}

// sendUnsubscribe sends SUBSCRIBE with Expires: 0 (on the loop); the
// subscription ends with the notifier's terminating NOTIFY, or 64*T1
// later.
func (s *Subscriber) sendUnsubscribe() {
	s.unsubscribing = true
	if s.unsubSent {
		return
	}
	s.unsubSent = true
	s.ua.timers.stop(s.refresh)
	fail := func(err error) {
		s.unsubErr.Store(&err)
		s.terminate()
	}
	o, err := s.newInDialog(0, nil, false)
	if err != nil {
		fail(err)
		return
	}
	o.onResponse = func(resp *message.Response) {
		if resp.StatusCode < 200 || o.ended {
			return
		}
		o.ended = true
		switch {
		case resp.StatusCode < 300:
			// Now the NOTIFY with Subscription-State: terminated.
		case resp.StatusCode == 481:
			s.terminate()
		default:
			fail(responseError(resp))
		}
	}
	o.onError = fail
	s.ua.timers.stop(s.wait)
	s.wait = s.ua.after(64*s.ua.t1(), s.terminate)
	if err := s.ua.send(o); err != nil {
		fail(err)
	}
}

// terminate ends the subscription and frees its dialog and timers (on
// the loop).
func (s *Subscriber) terminate() {
	if s.State() == SubscriptionTerminated {
		return
	}
	s.ua.timers.stop(s.refresh)
	s.ua.timers.stop(s.expiry)
	s.ua.timers.stop(s.wait)
	delete(s.ua.claims, s)
	if s.d != nil {
		s.ua.dialogs.Remove(s.d.ID)
		if s.ua.usages[s.d.ID] == usage(s) {
			delete(s.ua.usages, s.d.ID)
		}
		s.d.Terminate()
	}
	s.setState(SubscriptionTerminated)
	close(s.done)
}

// hasSubscribers reports whether a Subscriber of ua is under way, so that
// NOTIFY is allowed. Runs on the loop.
func (ua *UserAgent) hasSubscribers() bool {
	for k := range ua.claims {
		if s, ok := k.(*Subscriber); ok && s.ua == ua {
			return true
		}
	}
	for _, u := range ua.usages {
		if s, ok := u.(*Subscriber); ok && s.ua == ua {
			return true
		}
	}
	return false
}

// t1 is the UserAgent's RFC 3261 T1.
func (ua *UserAgent) t1() time.Duration {
	if t := ua.opts.Timers.T1; t > 0 {
		return t
	}
	return 500 * time.Millisecond
}

// Notification is a NOTIFY of a subscription, given to the function set
// with Subscriber.OnNotify. That function answers it with Accept or
// Reject; if it returns without doing so, the NOTIFY is accepted with 200.
type Notification struct {
	// Request is the NOTIFY as received.
	Request *message.Request
	// State is its Subscription-State: SubscriptionActive,
	// SubscriptionPending or SubscriptionTerminated.
	State SubscriptionState
	// Expires is the remaining lifetime the notifier gave (the expires
	// parameter), 0 when absent.
	Expires time.Duration
	// Reason is the reason parameter of a terminated state (RFC 6665
	// §4.1.3: deactivated, probation, rejected, timeout, giveup,
	// noresource, invariant), "" when absent.
	Reason string
	// RetryAfter is the retry-after parameter, 0 when absent: when to
	// subscribe again after probation or giveup.
	RetryAfter time.Duration

	ua       *UserAgent
	tx       *transaction.Server
	s        *Subscriber
	answered atomic.Bool
}

// Body returns the NOTIFY's body (the event state).
func (n *Notification) Body() []byte { return n.Request.Body }

// ContentType returns the NOTIFY's Content-Type, "" without a body.
func (n *Notification) ContentType() string { return n.Request.Header.ContentType() }

// Accept answers 200 OK. It returns once the response is handed to the
// transaction, or with ctx's error wrapped in ErrCanceled.
func (n *Notification) Accept(ctx context.Context) error { return n.answer(ctx, 200, "") }

// Reject answers with code, a final status of 300 or more, and reason (""
// for the standard phrase). The notifier then removes the subscription
// (RFC 6665 §4.2.2), so the Subscriber terminates it too.
func (n *Notification) Reject(ctx context.Context, code int, reason string) error {
	if code < 300 || code > 699 {
		return fmt.Errorf("%w: reject with %d", ErrBadOptions, code)
	}
	return n.answer(ctx, code, reason)
}

func (n *Notification) answer(ctx context.Context, code int, reason string) error {
	if !n.answered.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: already answered", ErrInvalidState)
	}
	resp := n.ua.newResponse(n.Request, code, reason)
	var err error
	if cerr := n.ua.call(ctx, func() {
		err = n.ua.respond(n.tx, resp)
		if code >= 300 {
			n.s.terminate()
		}
	}); cerr != nil {
		return cerr
	}
	return err
}

// account is the UserAgent the Subscriber belongs to.
func (s *Subscriber) account() *UserAgent { return s.ua }
