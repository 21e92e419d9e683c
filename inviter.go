package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
)

// InviterOptions configure an Inviter.
type InviterOptions struct {
	// ExtraHeaders are added to the INVITE, as "Name: value".
	ExtraHeaders []string
	// Media are the media options for the offer.
	Media media.Options
	// Offerless sends the INVITE without an offer: the offer comes in the
	// 2xx and the answer goes in the ACK (RFC 3261 §13.2.1).
	Offerless bool
	// EarlyMedia applies an answer that arrives in a reliable or
	// unreliable provisional response (183 Session Progress) at once, so
	// that early media (ring-back tones, announcements) plays before the
	// call is answered. Without it, only the 2xx's answer counts.
	EarlyMedia bool
	// Rel100 says whether reliable provisional responses (RFC 3262,
	// PRACK) are supported (default), required, or not used.
	Rel100 Rel100
	// SessionTimers, if set, replace the UserAgent's session timer
	// options for this call (RFC 4028).
	SessionTimers *SessionTimerOptions
	// EarlyMediaPolicy chooses whose early media plays when the INVITE
	// forks and several early dialogs answer. Default EarlyMediaFirst.
	EarlyMediaPolicy EarlyMediaPolicy
	// MaxRedirects bounds how many 3xx responses are followed (RFC 3261
	// §8.1.3.4): each Contact of a 3xx is tried in q order with a new
	// INVITE. Zero: DefaultMaxRedirects; negative: a 3xx is not followed
	// and fails Invite like a rejection.
	MaxRedirects int
	// NoAnswerTimeout bounds how long the call may ring unanswered after
	// a provisional response (each one starts it again), as RFC 3261's
	// Timer C: then the INVITE is canceled, Invite fails with an error
	// wrapping ErrTimeout and the session ends with EndNoAnswer. Zero:
	// DefaultNoAnswerTimeout; negative: no bound but Invite's context.
	NoAnswerTimeout time.Duration
}

// DefaultNoAnswerTimeout is InviterOptions.NoAnswerTimeout's default (RFC
// 3261 §16.6 asks more than 3 minutes of Timer C).
const DefaultNoAnswerTimeout = 3 * time.Minute

// InviteOptions are the options of one Invite call.
type InviteOptions struct {
	// OnTrying, OnProgress, OnAccept, OnReject and OnRedirect follow the
	// INVITE (SIP.js's requestDelegate): 100, other 1xx, 2xx, 4xx–6xx and
	// 3xx responses. They run on the callback goroutine.
	OnTrying   func(*message.Response)
	OnProgress func(*message.Response)
	OnAccept   func(*message.Response)
	OnReject   func(*message.Response)
	OnRedirect func(*message.Response)
	// OnEarlyMedia is called when the early media starts playing, or
	// switches to another early dialog (see EarlyMediaPolicy), with that
	// early dialog. It runs on the callback goroutine.
	OnEarlyMedia func(EarlyDialog)
}

// Inviter makes an outgoing call (SIP.js's Inviter).
type Inviter struct {
	*Session
	target message.URI
	opts   InviterOptions

	// Owned by the event loop.
	tx           *transaction.Client
	provisional  bool   // a provisional response has arrived: CANCEL may go
	earlyApplied []byte // the early answer applied, if any
	forks        forkState
	redir        redirectState
	// onLoopProgress, if set, sees provisional responses on the loop (a
	// transferee reports them by NOTIFY in order).
	onLoopProgress func(*message.Response)
	cancelPending  bool
	cancelReason   string
	noAnswer       *timerEntry // Timer C: rings too long unanswered
	cancelGuard    *timerEntry // a CANCEL's INVITE that never ends
	noAnswerFired  bool
	result         chan error
}

// NewInviter prepares a call from ua to target (a SIP URI).
func NewInviter(ua *UserAgent, target string, opts InviterOptions) (*Inviter, error) {
	u, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return nil, err
	}
	s, err := newSession(ua, false, opts.Media)
	if err != nil {
		return nil, err
	}
	i := &Inviter{Session: s, target: u, opts: opts}
	s.owner = i
	return i, nil
}

// Invite sends the INVITE and waits until the call is answered (nil), or
// fails: a *ResponseError for a rejection, ErrCanceled (wrapping ctx's
// error) when ctx ends first — the INVITE is then canceled —, ErrTimeout or
// ErrTransportClosed otherwise. The session's state and EndReason follow
// the same events.
func (i *Inviter) Invite(ctx context.Context, opts InviteOptions) error {
	if i.State() != SessionInitial {
		return fmt.Errorf("%w: Invite in state %v", ErrInvalidState, i.State())
	}
	req := i.ua.newRequest("INVITE", i.target, i.opts.ExtraHeaders)
	if i.handler != nil && !i.opts.Offerless {
		d, err := i.handler.GetDescription(ctx, i.opts.Media)
		if err != nil {
			return fmt.Errorf("%w: offer: %w", ErrMedia, err)
		}
		req.Header.Add("Content-Type", d.ContentType)
		req.Body = d.Body
	}
	req.Header.Add("Allow", inviteAllow)
	if err := i.extendInvite(req); err != nil {
		return err
	}
	i.result = make(chan error, 1)
	answered := make(chan *message.Response, 1)
	var sendErr error
	if err := i.ua.call(ctx, func() {
		req.Header.Add("Contact", i.ua.contactAddress().String())
		i.invite = req
		i.ua.sessions[i.Session] = struct{}{}
		i.setState(SessionEstablishing)
		sendErr = i.start(req, opts, answered)
	}); err != nil {
		return err
	}
	if sendErr != nil {
		return sendErr
	}
	select {
	case err := <-i.result:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		_ = i.ua.call(context.Background(), func() { i.cancel("") })
		return canceled(ctx)
	case <-i.ua.quit:
		return ErrStopped
	}
	// Apply the answer (or, offerless, the offer was answered in the ACK
	// already) off the event loop.
	resp := <-answered
	if err := i.applyAnswer(ctx, resp); err != nil {
		err = fmt.Errorf("%w: answer: %w", ErrMedia, err)
		if cerr := i.ua.call(context.Background(), func() { i.mediaFailed(err) }); cerr != nil {
			return errors.Join(err, cerr)
		}
		return err
	}
	return nil
}

// start sends the INVITE. Runs on the loop.
func (i *Inviter) start(req *message.Request, opts InviteOptions, answered chan<- *message.Response) error {
	o := &outgoing{req: req}
	o.onResponse = func(resp *message.Response) { i.onResponse(o, resp, opts, answered) }
	o.onError = func(err error) {
		cause := EndTransport
		if errors.Is(err, ErrTimeout) {
			cause = EndTimeout
		}
		i.terminate(EndReason{Cause: cause, Err: err})
		i.finish(err)
	}
	if err := i.ua.send(o); err != nil {
		i.terminate(EndReason{Cause: EndTransport, Err: err})
		return err
	}
	i.tx = i.ua.txOf(o)
	return nil
}

func (i *Inviter) finish(err error) {
	select {
	case i.result <- err:
	default:
	}
}

func (i *Inviter) push(f func(*message.Response), resp *message.Response) {
	if f != nil {
		i.cbq.push(func() { f(resp) })
	}
}

// onResponse follows the INVITE's responses. Runs on the loop.
func (i *Inviter) onResponse(o *outgoing, resp *message.Response, opts InviteOptions, answered chan<- *message.Response) {
	code := resp.StatusCode
	i.invite = o.req // after authentication, the INVITE that counts
	i.tx = i.ua.txOf(o)
	switch {
	case code < 200:
		// Early dialogs and media first, so that OnProgress sees them.
		i.onProvisional(resp, opts)
		if !i.onReliable(o, resp) {
			return // a reliable response repeated or out of order
		}
		if code == 100 {
			i.push(opts.OnTrying, resp)
		} else {
			i.push(opts.OnProgress, resp)
			if i.onLoopProgress != nil {
				i.onLoopProgress(resp)
			}
		}
		i.provisional = true
		if i.cancelPending {
			i.sendCancel()
		} else if code > 100 {
			i.armNoAnswer()
		}

	case code < 300:
		d, ack, created, err := i.ua.dialogs.Ack2xx(o.req, resp, i.ua.ackVia())
		if err != nil {
			i.ua.log.Debug("sip: unusable 2xx", "err", err)
			return
		}
		i.on2xx(resp)
		if i.handler != nil && i.opts.Offerless && len(resp.Body) > 0 && created && i.d == nil {
			// The offer is in the 2xx: answer in the ACK, off the loop.
			i.answerInAck(resp, ack, answered)
			return
		}
		i.ua.sendDirect(ack)
		switch {
		case i.d == nil && created && !i.ended && !i.cancelPending:
			i.confirm(d)
			i.setState(SessionEstablished)
			i.push(opts.OnAccept, resp)
			answered <- resp
			i.finish(nil)
		case created:
			// A second 2xx from a forked INVITE, or a 2xx that crossed our
			// CANCEL: acknowledged, then ended (RFC 3261 §13.2.2.4, §9.1).
			i.ua.byeDialog(d)
			if d2 := i.d; d2 == nil && i.cancelPending {
				i.terminate(EndReason{Cause: EndCanceled})
				i.finish(fmt.Errorf("%w: answered while canceling", ErrCanceled))
			}
		}
	default:
		if i.d != nil {
			return // a late failure from another fork
		}
		if code == 422 && i.retry422(o, resp) {
			return
		}
		switch {
		case code < 400:
			i.push(opts.OnRedirect, resp)
			if i.redirect(resp, opts, answered) {
				return
			}
		default:
			i.push(opts.OnReject, resp)
		}
		if i.cancelPending && code == 487 {
			i.canceled(code, responseError(resp))
			return
		}
		i.terminate(EndReason{Cause: EndRejected, StatusCode: code})
		i.finish(responseError(resp))
	}
}

// answerInAck answers an offer that came in a 2xx, then sends the ACK
// with the answer.
func (i *Inviter) answerInAck(resp *message.Response, ack *message.Request, answered chan<- *message.Response) {
	h, mo := i.handler, i.opts.Media
	i.cbq.push(func() {
		ctx, cancel := i.mediaContext()
		defer cancel()
		off := media.Description{ContentType: resp.Header.MediaType(), Body: resp.Body}
		var ans media.Description
		err := h.SetDescription(ctx, off, mo)
		if err == nil {
			ans, err = h.GetDescription(ctx, mo)
		}
		i.ua.post(func() {
			if err == nil {
				ack.Header.Set("Content-Type", ans.ContentType)
				ack.Body = ans.Body
			}
			i.ua.sendDirect(ack)
			dd := i.ua.dialogs.MatchResponse(resp)
			if dd == nil || i.ended {
				return
			}
			i.confirm(dd)
			if err != nil {
				i.sendBye(nil)
				err = fmt.Errorf("%w: offer in 2xx: %w", ErrMedia, err)
				i.terminate(EndReason{Cause: EndMediaFailure, Err: err})
				i.finish(err)
				return
			}
			i.setState(SessionEstablished)
			answered <- resp
			i.finish(nil)
		})
	})
}

// Cancel cancels the INVITE before it is answered (CANCEL, RFC 3261 §9);
// reason, if not empty, goes in a Reason header (e.g. `SIP;cause=200;text="Call completed elsewhere"`).
// Invite then returns an error wrapping ErrCanceled.
func (i *Inviter) Cancel(ctx context.Context, reason string) error {
	var err error
	if cerr := i.ua.call(ctx, func() {
		if i.ended || i.d != nil {
			err = fmt.Errorf("%w: nothing to cancel (%v)", ErrInvalidState, i.State())
			return
		}
		i.cancel(reason)
	}); cerr != nil {
		return cerr
	}
	return err
}

// cancel runs on the loop.
func (i *Inviter) cancel(reason string) {
	if i.ended || i.d != nil || i.cancelPending {
		return
	}
	i.cancelPending = true
	i.cancelReason = reason
	i.setState(SessionTerminating)
	i.ua.timers.stop(i.noAnswer)
	// A peer that answers neither the CANCEL nor the INVITE: the INVITE
	// is given up after 64*T1 (RFC 3261 §9.1).
	t1 := i.ua.opts.Timers.T1
	if t1 <= 0 {
		t1 = 500 * time.Millisecond
	}
	i.cancelGuard = i.ua.after(64*t1, func() {
		if !i.ended && i.d == nil {
			i.canceled(0, errors.New("sip: no final response to the canceled INVITE"))
		}
	})
	if i.provisional {
		i.sendCancel()
	}
	// Otherwise the CANCEL goes with the first provisional response
	// (RFC 3261 §9.1); without one, Timer B ends the INVITE.
}

// armNoAnswer (re)starts Timer C. Runs on the loop.
func (i *Inviter) armNoAnswer() {
	d := i.opts.NoAnswerTimeout
	if d < 0 {
		return
	}
	if d == 0 {
		d = DefaultNoAnswerTimeout
	}
	i.ua.timers.stop(i.noAnswer)
	i.noAnswer = i.ua.after(d, func() {
		if i.ended || i.d != nil || i.cancelPending {
			return
		}
		i.noAnswerFired = true
		i.cancel("")
	})
}

// canceled ends a canceled INVITE: by us, or by Timer C. Runs on the loop.
func (i *Inviter) canceled(code int, err error) {
	if i.noAnswerFired {
		i.terminate(EndReason{Cause: EndNoAnswer, StatusCode: code, Err: ErrTimeout})
		i.finish(fmt.Errorf("%w: no answer within %v: %w", ErrTimeout, i.noAnswerTimeout(), err))
		return
	}
	i.terminate(EndReason{Cause: EndCanceled, StatusCode: code})
	i.finish(fmt.Errorf("%w: %w", ErrCanceled, err))
}

func (i *Inviter) noAnswerTimeout() time.Duration {
	if d := i.opts.NoAnswerTimeout; d > 0 {
		return d
	}
	return DefaultNoAnswerTimeout
}

// stopTimers stops the Inviter's timers when the session ends.
func (i *Inviter) stopTimers() {
	i.ua.timers.stop(i.noAnswer)
	i.ua.timers.stop(i.cancelGuard)
}

func (i *Inviter) sendCancel() {
	if i.tx == nil || i.tx.State() == transaction.Terminated {
		return
	}
	c := transaction.NewCancel(i.invite)
	if r := strings.TrimSpace(i.cancelReason); r != "" {
		c.Header.Add("Reason", r)
	}
	if ua := i.ua.opts.UserAgentString; ua != "-" {
		c.Header.Add("User-Agent", ua)
	}
	_, _ = i.ua.layer.Request(c, i.tx.Dest(), i.tx.Reliable(), time.Now())
}
