package sip

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/message"
)

// ReferOptions are the options of Session.Refer.
type ReferOptions struct {
	// OnAccept and OnReject receive the final response to the REFER
	// (SIP.js's requestDelegate), on the callback goroutine.
	OnAccept func(*message.Response)
	OnReject func(*message.Response)
	// OnNotify receives the progress of the transfer: the status code of
	// each NOTIFY's sipfrag (100, 180, 200, 486 …), and whether it was
	// the last one.
	OnNotify func(code int, final bool)
	// ExtraHeaders are added to the REFER, as "Name: value".
	ExtraHeaders []string
}

// Refer asks the peer to call target (blind transfer, RFC 3515) and waits
// for its answer to the REFER: nil when accepted (202 or 200), a
// *ResponseError when refused. Progress then arrives through
// opts.OnNotify; the application usually hangs up when it reports 200.
func (s *Session) Refer(ctx context.Context, target string, opts ReferOptions) error {
	u, err := parseTarget(target)
	if err != nil {
		return err
	}
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return err
	}
	errc := make(chan error, 1)
	if err := s.ua.call(ctx, func() {
		if s.d == nil || s.ended {
			errc <- fmt.Errorf("%w: REFER needs an established call (%v)", ErrInvalidState, s.State())
			return
		}
		req, err := s.d.NewRequest("REFER")
		if err != nil {
			errc <- err
			return
		}
		req.Header.Add("Refer-To", "<"+u.String()+">")
		req.Header.Add("Referred-By", "<"+s.ua.aor.String()+">")
		req.Header.Add("Contact", s.ua.contactAddress().String())
		addExtra(&req.Header, opts.ExtraHeaders)
		s.referNotify = opts.OnNotify
		o := &outgoing{req: req}
		o.rebuild = nextCSeq(&s.d.LocalSeq)
		o.onResponse = func(resp *message.Response) {
			if resp.StatusCode < 200 || o.ended {
				return
			}
			o.ended = true
			if resp.StatusCode >= 300 {
				if f := opts.OnReject; f != nil {
					s.cbq.push(func() { f(resp) })
				}
				errc <- responseError(resp)
				return
			}
			if f := opts.OnAccept; f != nil {
				s.cbq.push(func() { f(resp) })
			}
			errc <- nil
		}
		o.onError = func(err error) { errc <- err }
		if err := s.ua.send(o); err != nil {
			errc <- err
		}
	}); err != nil {
		return err
	}
	return s.ua.await(ctx, errc)
}

// ReferReplacing asks the peer of s to call the party of other, replacing
// other's call (attended transfer, RFC 3891 and RFC 5589): the REFER's
// Refer-To names other's remote target with a Replaces header, so the
// party of other takes the new call in place of its call with us. Both
// of this side's calls are usually hung up once OnNotify reports 200.
func (s *Session) ReferReplacing(ctx context.Context, other *Session, opts ReferOptions) error {
	var target string
	if err := s.ua.call(ctx, func() {
		if other.d == nil || other.ended {
			return
		}
		u := other.d.RemoteTarget()
		// The Replaces names the dialog as the receiver of the INVITE
		// sees it: its local tag is our remote tag.
		id := other.d.ID
		rep := message.Replaces{CallID: id.CallID, ToTag: id.RemoteTag, FromTag: id.LocalTag}
		u.Headers = "Replaces=" + escapeHeaderValue(rep.String())
		target = u.String()
	}); err != nil {
		return err
	}
	if target == "" {
		return fmt.Errorf("%w: the other call is not established", ErrInvalidState)
	}
	return s.Refer(ctx, target, opts)
}

// escapeHeaderValue %-escapes a value for a URI headers component.
func escapeHeaderValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte("-_.!~*'()[]/?:+$", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// onReferNotify handles a NOTIFY of the refer event package in the
// dialog (the transferee's progress). Runs on the loop.
func (s *Session) onReferNotify(tx *transaction.Server, req *message.Request) {
	code := sipfragCode(req.Body)
	ss, _, _ := req.Header.SubscriptionState()
	final := ss.Value == "terminated"
	s.ua.reply(tx, 200, "", nil)
	if f := s.referNotify; f != nil && code > 0 {
		s.cbq.push(func() { f(code, final) })
	}
}

// sipfragCode reads the status code of a message/sipfrag status line.
func sipfragCode(body []byte) int {
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	f := strings.Fields(line)
	if len(f) >= 2 && strings.HasPrefix(strings.ToUpper(f[0]), "SIP/") {
		if n, err := strconv.Atoi(f[1]); err == nil {
			return n
		}
	}
	return 0
}

// Referral is a REFER received in a call (the peer asks this side to call
// someone else), given to SessionDelegate.OnRefer.
type Referral struct {
	// Request is the REFER.
	Request *message.Request
	// ReferTo is the target to call.
	ReferTo message.Address
	// ReferredBy is the Referred-By address, if any.
	ReferredBy string

	s  *Session
	tx *transaction.Server
}

// Reject refuses the transfer with code (default 603). It returns once
// the response is handed to the transaction, or with ctx's error wrapped
// in ErrCanceled.
func (r *Referral) Reject(ctx context.Context, code int, reason string) error {
	if code == 0 {
		code = 603
	}
	return r.s.ua.call(ctx, func() { r.s.ua.reply(r.tx, code, reason, nil) })
}

// Accept accepts the transfer (202), calls the Refer-To target with a new
// Inviter, and reports the call's progress to the transferor by NOTIFY
// (message/sipfrag, RFC 3515). It returns the new call once it is
// answered, or the error that ended it.
func (r *Referral) Accept(ctx context.Context, opts InviterOptions) (*Inviter, error) {
	if err := r.s.ua.call(ctx, func() {
		r.s.ua.reply(r.tx, 202, "", nil)
		r.s.sendReferNotify(100, "Trying", false)
	}); err != nil {
		return nil, err
	}
	if rb := r.ReferredBy; rb != "" {
		opts.ExtraHeaders = append(opts.ExtraHeaders, "Referred-By: "+rb)
	}
	// Headers in the Refer-To URI (e.g. Replaces, for an attended
	// transfer) go into the INVITE (RFC 3261 §19.1.5).
	target := r.ReferTo.URI
	for _, kv := range strings.Split(target.Headers, "&") {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		if v, err := url.PathUnescape(value); err == nil {
			opts.ExtraHeaders = append(opts.ExtraHeaders, name+": "+v)
		}
	}
	target.Headers = ""
	call, err := NewInviter(r.s.ua, target.String(), opts)
	if err != nil {
		if nerr := r.s.ua.call(ctx, func() { r.s.sendReferNotify(503, "Service Unavailable", true) }); nerr != nil {
			r.s.ua.log.Debug("sip: final NOTIFY of a REFER not sent", "err", nerr)
		}
		return nil, err
	}
	call.onLoopProgress = func(resp *message.Response) { r.s.sendReferNotify(resp.StatusCode, resp.Reason, false) }
	err = call.Invite(ctx, InviteOptions{})
	code, reason := 200, "OK"
	if err != nil {
		code, reason = 487, "Request Terminated"
		if re := (*ResponseError)(nil); errors.As(err, &re) {
			code, reason = re.StatusCode, re.Reason
		}
	}
	if nerr := r.s.ua.call(context.Background(), func() { r.s.sendReferNotify(code, reason, true) }); nerr != nil {
		r.s.ua.log.Debug("sip: final NOTIFY of a REFER not sent", "err", nerr)
	}
	if err != nil {
		return nil, err
	}
	return call, nil
}

// sendReferNotify reports transfer progress in the referring dialog.
// Runs on the loop.
func (s *Session) sendReferNotify(code int, reason string, final bool) {
	if s.d == nil || s.ended {
		return
	}
	n, err := s.d.NewRequest("NOTIFY")
	if err != nil {
		return
	}
	n.Header.Add("Event", "refer")
	if final {
		n.Header.Add("Subscription-State", "terminated;reason=noresource")
	} else {
		n.Header.Add("Subscription-State", "active;expires=60")
	}
	n.Header.Add("Contact", s.ua.contactAddress().String())
	n.Header.Add("Content-Type", "message/sipfrag;version=2.0")
	n.Body = []byte("SIP/2.0 " + strconv.Itoa(code) + " " + reason + "\r\n")
	s.notifyQueue = append(s.notifyQueue, n)
	s.nextNotify()
}

// nextNotify sends the next queued NOTIFY once the previous one is
// answered: NOTIFYs of one subscription go one at a time (RFC 6665
// §4.2.2), so they arrive in order. Runs on the loop.
func (s *Session) nextNotify() {
	if s.notifyBusy {
		return
	}
	if len(s.notifyQueue) == 0 {
		fs := s.afterNotifies
		s.afterNotifies = nil
		for _, f := range fs {
			f()
		}
		return
	}
	n := s.notifyQueue[0]
	s.notifyQueue = s.notifyQueue[1:]
	s.notifyBusy = true
	done := func() {
		s.notifyBusy = false
		s.nextNotify()
	}
	o := &outgoing{req: n}
	o.onResponse = func(resp *message.Response) {
		if resp.StatusCode >= 200 && !o.ended {
			o.ended = true
			done()
		}
	}
	o.onError = func(error) { done() }
	if err := s.ua.send(o); err != nil {
		done()
	}
}

// onRefer handles a REFER in the dialog. Runs on the loop.
func (s *Session) onRefer(tx *transaction.Server, req *message.Request) {
	f := s.delegate().OnRefer
	if f == nil {
		s.ua.reply(tx, 603, "", nil)
		return
	}
	to, err := req.Header.ReferTo()
	if err != nil {
		s.ua.reply(tx, 400, "Bad Refer-To", nil)
		return
	}
	r := &Referral{Request: req, ReferTo: to, s: s, tx: tx}
	if rb, ok := req.Header.Lookup("Referred-By"); ok {
		r.ReferredBy = rb
	}
	s.cbq.push(func() { f(r) })
}
