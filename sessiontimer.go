package sip

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/message"
)

// SessionTimerOptions configure session timers (RFC 4028): the session is
// refreshed by a re-INVITE or UPDATE every half interval by the side
// chosen as refresher, and the other side hangs up (EndSessionExpired)
// when no refresh came in time. The zero value works: timers on, 1800 s
// asked for, 90 s the smallest accepted.
type SessionTimerOptions struct {
	// Disabled turns session timers off: no Supported: timer, no
	// Session-Expires; a peer's Session-Expires is ignored.
	Disabled bool
	// Expires is the session interval asked for (an INVITE's
	// Session-Expires) or the largest one accepted (as callee, the
	// interval the caller asks for is lowered to it). Default 1800 s.
	Expires time.Duration
	// MinSE is the smallest interval accepted (Min-SE): a request asking
	// for less is answered 422. Default 90 s, RFC 4028's floor; lower
	// values are for tests and closed networks.
	MinSE time.Duration
	// Refresher is who refreshes: "uac" (the caller), "uas" (the
	// callee), or "" (as caller: let the callee choose; as callee: "uac"
	// when the caller supports session timers, else "uas").
	Refresher string
}

const (
	defaultSessionExpires = 1800 * time.Second
	defaultMinSE          = 90 * time.Second
	max422Retries         = 3
)

func (o SessionTimerOptions) check() error {
	switch o.Refresher {
	case "", "uac", "uas":
	default:
		return fmt.Errorf("%w: session timer refresher %q (want uac, uas or empty)", ErrBadOptions, o.Refresher)
	}
	if o.Expires < 0 || o.MinSE < 0 {
		return fmt.Errorf("%w: negative session timer interval", ErrBadOptions)
	}
	return nil
}

func (o SessionTimerOptions) norm() SessionTimerOptions {
	if o.MinSE <= 0 {
		o.MinSE = defaultMinSE
	}
	if o.MinSE < time.Second {
		o.MinSE = time.Second
	}
	if o.Expires <= 0 {
		o.Expires = defaultSessionExpires
	}
	if o.Expires < o.MinSE {
		o.Expires = o.MinSE
	}
	return o
}

// sessionTimer is a call's session timer. Owned by the event loop.
type sessionTimer struct {
	opts      SessionTimerOptions
	on        bool
	interval  time.Duration
	weRefresh bool
	minSE     time.Duration // the Min-SE our refreshes carry
	refreshT  *timerEntry
	expireT   *timerEntry
	busy      bool // a refresh of ours is in progress
	retries   int  // 422 answers to the current refresh
}

func secs(d time.Duration) string { return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10) }

// setSessionExpires puts Session-Expires and Min-SE in a request.
func setSessionExpires(h *message.Header, interval time.Duration, refresher string, minSE time.Duration) {
	v := secs(interval)
	if refresher != "" {
		v += ";refresher=" + refresher
	}
	h.Set("Session-Expires", v)
	h.Set("Min-SE", secs(minSE))
}

// parseSE returns a Session-Expires value and refresher.
func parseSE(h *message.Header) (d time.Duration, refresher string, ok bool) {
	se, present, err := h.SessionExpires()
	if !present || err != nil {
		return 0, "", false
	}
	n, err := strconv.ParseUint(se.Value, 10, 32)
	if err != nil || n == 0 {
		return 0, "", false
	}
	r, _ := se.Params.Get("refresher")
	return time.Duration(n) * time.Second, strings.ToLower(r), true
}

// fromResponse takes the Session-Expires of a 2xx to a request of ours
// (INVITE, re-INVITE or UPDATE): we were its UAC (RFC 4028 §7.2). A 2xx
// without one turns the timer off.
func (t *sessionTimer) fromResponse(resp *message.Response) {
	d, who, ok := parseSE(&resp.Header)
	if !ok {
		t.on = false
		return
	}
	t.on, t.interval = true, d
	t.weRefresh = who != "uas"
	if t.minSE == 0 {
		t.minSE = t.opts.MinSE
	}
}

// tooSmall checks a request's Session-Expires against our Min-SE and
// answers 422 when it asks for less (RFC 4028 §8.1). Runs on the loop.
func (ua *UserAgent) tooSmall(tx *transaction.Server, req *message.Request, o SessionTimerOptions) bool {
	if o.Disabled {
		return false
	}
	o = o.norm()
	d, _, ok := parseSE(&req.Header)
	if !ok || d >= o.MinSE {
		return false
	}
	ua.reply(tx, 422, "", func(r *message.Response) { r.Header.Add("Min-SE", secs(o.MinSE)) })
	return true
}

// timerSupported reports whether req's sender supports session timers
// (RFC 4028 §7): only read when the answer depends on it, as reading
// Supported and Require costs allocations on every INVITE.
func timerSupported(req *message.Request) bool {
	return req.Header.HasToken("Supported", "timer") || req.Header.HasToken("Require", "timer")
}

// answer negotiates the session timer of a request we answer with resp
// (INVITE, re-INVITE or UPDATE; we are the UAS of the transaction, RFC
// 4028 §9) and puts the outcome in resp. Without a Session-Expires in the
// request there is no session timer, unless one runs already: it goes
// on.
func (t *sessionTimer) answer(req *message.Request, resp *message.Response) {
	d, who, ok := parseSE(&req.Header)
	if !ok && t.on && !t.opts.Disabled {
		supports := timerSupported(req)
		// A refresh without Session-Expires from a peer whose session has
		// a timer: we keep it and say so (RFC 4028 §9), refreshing
		// ourselves unless the peer supports timers and refreshes.
		who = "uas"
		if supports && !t.weRefresh {
			who = "uac"
		}
		t.weRefresh = who == "uas"
		resp.Header.Set("Session-Expires", secs(t.interval)+";refresher="+who)
		if supports {
			resp.Header.Add("Require", "timer")
		}
		return
	}
	if t.opts.Disabled || !ok {
		t.on = false
		return
	}
	supports := timerSupported(req)
	floor := t.opts.MinSE
	if m, present, err := req.Header.MinSE(); present && err == nil && time.Duration(m)*time.Second > floor {
		floor = time.Duration(m) * time.Second
	}
	interval := min(d, t.opts.Expires)
	interval = min(max(interval, floor), d)
	switch {
	case !supports:
		who = "uas"
	case who == "uac" || who == "uas":
	case t.opts.Refresher != "":
		who = t.opts.Refresher
	default:
		who = "uac"
	}
	t.on, t.interval, t.weRefresh, t.minSE = true, interval, who == "uas", floor
	resp.Header.Set("Session-Expires", secs(interval)+";refresher="+who)
	if supports {
		resp.Header.Add("Require", "timer")
	}
}

// timerStart (re)starts the session timer after a successful (re)fresh.
// Runs on the loop.
func (s *Session) timerStart() {
	t := &s.x.timer
	s.timerStop()
	if !t.on || s.ended || s.d == nil {
		return
	}
	if t.weRefresh {
		// The refresher hangs up when its refresh fails (see
		// timerRefresh), or, at the latest, when the session expires.
		t.refreshT = s.ua.after(t.interval/2, s.timerRefresh)
		t.expireT = s.ua.after(t.interval, s.timerExpired)
		return
	}
	grace := min(32*time.Second, t.interval/3)
	t.expireT = s.ua.after(t.interval-grace, s.timerExpired)
}

func (s *Session) timerStop() {
	t := &s.x.timer
	s.ua.timers.stop(t.refreshT)
	s.ua.timers.stop(t.expireT)
	t.refreshT, t.expireT = nil, nil
}

// timerExpired: no refresh came in time; the session ends with BYE
// (RFC 4028 §10).
func (s *Session) timerExpired() {
	if s.ended || s.d == nil {
		return
	}
	s.ua.log.Debug("sip: session expired", "call", s.d.ID.CallID)
	s.setState(SessionTerminating)
	s.sendBye(nil)
	s.terminate(EndReason{Cause: EndSessionExpired})
}

// refreshHeaders adds the session timer headers to a refresh request we
// send (a re-INVITE or UPDATE), when a timer runs.
func (s *Session) refreshHeaders(req *message.Request) {
	t := &s.x.timer
	if !t.on {
		return
	}
	who := "uas"
	if t.weRefresh {
		who = "uac"
	}
	req.Header.Add("Supported", "timer")
	setSessionExpires(&req.Header, t.interval, who, max(t.minSE, t.opts.MinSE))
}

// timerRefresh sends the refresh: UPDATE when the peer allows it, else a
// re-INVITE repeating our last session description. Runs on the loop.
func (s *Session) timerRefresh() {
	t := &s.x.timer
	t.refreshT = nil
	if s.ended || s.d == nil || !t.on {
		return
	}
	if t.busy || s.oa.busy() || s.ackWait != nil {
		t.refreshT = s.ua.after(time.Second, s.timerRefresh)
		return
	}
	method := "INVITE"
	if s.x.peerAllows("UPDATE") {
		method = "UPDATE"
	}
	req, err := s.d.NewRequest(method)
	if err != nil {
		return
	}
	req.Header.Add("Contact", s.ua.contactAddress().String())
	s.refreshHeaders(req)
	if method == "INVITE" {
		req.Header.Add("Allow", inviteAllow)
		if l := s.oa.lastLocal; len(l.Body) > 0 && s.handler != nil {
			req.Header.Add("Content-Type", l.ContentType)
			req.Body = l.Body
		}
		s.oa.begin(oaReinviteOut)
	}
	t.busy = true
	o := &outgoing{req: req}
	o.rebuild = nextCSeq(&s.d.LocalSeq)
	fin := false
	done := func() {
		t.busy = false
		if method == "INVITE" {
			s.oa.end(oaReinviteOut)
		}
	}
	o.onResponse = func(resp *message.Response) {
		code := resp.StatusCode
		if code >= 200 && code < 300 && method == "INVITE" {
			if _, ack, _, err := s.ua.dialogs.Ack2xx(o.req, resp, s.ua.ackVia()); err == nil {
				s.ua.sendDirect(ack)
			}
		}
		if code < 200 || fin {
			return
		}
		fin = true // not o.ended: a repeated 2xx must still be acknowledged
		done()
		if s.ended {
			return
		}
		switch {
		case code < 300:
			t.retries = 0
			s.d.RefreshTarget(resp)
			t.fromResponse(resp)
			s.timerStart()
		case code == 422 && t.retries < max422Retries:
			t.retries++
			if m, ok, err := resp.Header.MinSE(); ok && err == nil {
				min := time.Duration(m) * time.Second
				t.minSE = max(t.minSE, min)
				t.interval = max(t.interval, min)
			}
			s.timerRefresh()
		case (code == 405 || code == 501) && method == "UPDATE":
			s.x.peerAllow = strings.ReplaceAll(strings.ToUpper(s.x.peerAllow), "UPDATE", "")
			s.timerRefresh()
		case code == 491:
			t.refreshT = s.ua.after(2*time.Second, s.timerRefresh)
		case code == 481 || code == 408:
			if code == 408 {
				s.sendBye(nil)
			}
			s.terminate(EndReason{Cause: EndSessionExpired, StatusCode: code})
		}
	}
	o.onError = func(err error) {
		done()
		if s.ended {
			return
		}
		s.sendBye(nil)
		s.terminate(EndReason{Cause: EndSessionExpired, Err: err})
	}
	if err := s.ua.send(o); err != nil {
		done()
		s.ua.log.Debug("sip: session refresh not sent", "err", err)
	}
}

// timerAnswerInDialog negotiates the session timer of a refresh request
// from the peer (re-INVITE or UPDATE) answered by resp, a 2xx, and
// restarts the timer. Runs on the loop.
func (s *Session) timerAnswerInDialog(req *message.Request, resp *message.Response) {
	s.x.notePeerAllow(&req.Header)
	if s.x.timer.opts == (SessionTimerOptions{}) {
		s.x.timer.opts = s.ua.opts.SessionTimers.norm()
	}
	s.x.timer.answer(req, resp)
	s.timerStart()
}

// refreshed takes the 2xx to a re-INVITE of ours (Session.Reinvite): it
// refreshes the session as well. Runs on the loop.
func (s *Session) refreshed(resp *message.Response) {
	if !s.x.timer.on || s.ended {
		return
	}
	s.x.timer.fromResponse(resp)
	s.timerStart()
}

// retry422 sends the INVITE again after a 422 (Session Interval Too
// Small, RFC 4028 §7.4) with the Min-SE it asks for. It returns false when
// the 422 stands (no usable Min-SE, or too many). Runs on the loop.
func (i *Inviter) retry422(o *outgoing, resp *message.Response) bool {
	t := &i.x.timer
	m, ok, err := resp.Header.MinSE()
	cur, who, had := parseSE(&o.req.Header)
	if !ok || err != nil || !had || t.opts.Disabled || t.retries >= max422Retries {
		return false
	}
	min := time.Duration(m) * time.Second
	if min <= cur {
		return false
	}
	t.retries++
	next := o.req.Clone()
	bumpCSeq(next)
	setSessionExpires(&next.Header, min, who, min)
	t.minSE = min
	o.req = next
	if err := i.ua.send(o); err != nil {
		o.fail(err)
		return true
	}
	i.tx = i.ua.txOf(o)
	i.invite = next
	return true
}
