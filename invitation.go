package sip

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// Invitation is an incoming call (SIP.js's Invitation), given to
// UserAgentDelegate.OnInvite.
type Invitation struct {
	*Session
	// Request is the INVITE.
	Request *message.Request
	// Flow is where it came from.
	Flow transport.Flow
	// Replaces is the call this one replaces (an INVITE with a Replaces
	// header, RFC 3891: attended transfer, call pickup), or nil. When the
	// invitation is accepted, the replaced call is ended with BYE.
	Replaces *Session

	toTag string
	early *media.Description // the answer sent early, repeated in the 200
	// progressed is set once Progress is called: until then no reliable
	// provisional response or early offer/answer exists, and Accept needs
	// no look at the loop's state before its one call to the loop.
	progressed atomic.Bool
	// Owned by the event loop.
	answered bool // a final response was sent
}

// ProgressOptions are the options of Progress.
type ProgressOptions struct {
	// StatusCode is 180 (default) or 183 (session progress).
	StatusCode int
	// Reason is the reason phrase; "" for the standard one.
	Reason string
	// ExtraHeaders are added to the response, as "Name: value".
	ExtraHeaders []string
	// EarlyMedia answers the INVITE's offer in this provisional response
	// (183 by default then), so that media flows before the call is
	// answered (RFC 3960's gateway model); Accept repeats the same answer.
	EarlyMedia bool
	// Media are the media options of the early answer.
	Media media.Options
	// Reliable sends the response reliably (RFC 3262): it is repeated
	// until the caller acknowledges it with PRACK, and Progress first
	// waits for the PRACK of an earlier reliable response. The caller
	// must support 100rel; when its INVITE requires it, every Progress is
	// reliable.
	Reliable bool
}

// AcceptOptions are the options of Accept.
type AcceptOptions struct {
	// Media are the media options for the answer (or offer, when the
	// INVITE had none), e.g. Constraints{Audio: true}.
	Media media.Options
	// ExtraHeaders are added to the 200, as "Name: value".
	ExtraHeaders []string
	// SessionTimers, if set, replace the UserAgent's session timer
	// options for this call (RFC 4028).
	SessionTimers *SessionTimerOptions
}

// onInvite is the UAS core's handling of a new INVITE. Runs on the loop.
func (ua *UserAgent) onInvite(tx *transaction.Server, req *message.Request, src any, f func(*Invitation)) {
	// RFC 3891: an INVITE that replaces one of our calls (attended
	// transfer, call pickup) must name a dialog we have.
	var replaced *Session
	if r, ok, err := req.Header.Replaces(); ok {
		if err != nil {
			ua.reply(tx, 400, "Bad Replaces", nil)
			return
		}
		id := dialog.ID{CallID: r.CallID, LocalTag: r.ToTag, RemoteTag: r.FromTag}
		old, _ := ua.usages[id].(*Session)
		if old == nil || old.ua != ua || old.ended || (r.EarlyOnly && old.State() == SessionEstablished) {
			ua.reply(tx, 481, "", nil)
			return
		}
		replaced = old
	}
	if ua.tooSmall(tx, req, ua.opts.SessionTimers) {
		return // 422: the session interval asked for is too small
	}
	// The Invitation and its Session in one allocation: they live as
	// long as each other (the Session's owner is the Invitation).
	both := new(struct {
		inv Invitation
		s   Session
	})
	s := &both.s
	if err := s.init(ua, true, media.Options{}); err != nil {
		ua.reply(tx, 500, "", nil)
		return
	}
	inv := &both.inv
	*inv = Invitation{Session: s, Request: req, toTag: message.NewTag(), Replaces: replaced}
	s.owner = inv
	if flow, ok := src.(transport.Flow); ok {
		inv.Flow = flow
	}
	if inv.handler != nil && len(req.Body) > 0 && !inv.handler.HasDescription(req.Header.MediaType()) {
		ua.reply(tx, 415, "", func(r *message.Response) { r.Header.Add("Accept", "application/sdp") })
		return
	}
	if inv.handler == nil && isOffer(req) {
		ua.reply(tx, 488, "", nil) // NoMedia: no answer to give (RFC 3264)
		return
	}
	s.invite = req
	s.ist = tx
	ua.sessions[s] = struct{}{}
	ua.invitations[tx] = inv
	s.setState(SessionEstablishing)
	inv.cbq.push(func() { f(inv) })
}

// onCancel ends a ringing call the caller canceled (RFC 3261 §9.2).
// Runs on the loop.
func (ua *UserAgent) onCancel(tx *transaction.Server, req *message.Request) {
	ist, found := ua.layer.MatchCancel(req)
	if !found {
		ua.reply(tx, 481, "", nil)
		return
	}
	// The CANCEL matched a transaction: 200, whatever happens to the
	// INVITE. Once a final response went out, it changes nothing.
	ua.reply(tx, 200, "", nil)
	if ist == nil {
		return // answered with a 2xx long ago: the Layer retired it
	}
	inv := ua.invitations[ist]
	if inv == nil || inv.answered || inv.ended {
		return
	}
	inv.answered = true
	ua.reply(ist, 487, "", func(r *message.Response) { inv.tagged(r) })
	delete(ua.invitations, ist)
	inv.terminate(EndReason{Cause: EndRemoteCancel})
}

// tagged puts the call's To tag on a response.
func (inv *Invitation) tagged(r *message.Response) {
	to, err := r.Header.To()
	if err == nil && to.Tag() == "" {
		to.Params = to.Params.Set("tag", inv.toTag)
		r.Header.Set("To", to.String())
	}
}

// contactString is contactAddress().String(), on the loop. Without a
// server connection the Contact depends only on what is fixed once the
// loop runs (the first Listen address, the options), so it is formatted
// once.
func (ua *UserAgent) contactString() string {
	if ua.up != nil || len(ua.listenAddrs) == 0 {
		return ua.contactAddress().String()
	}
	if ua.contactStr == "" {
		ua.contactStr = ua.contactAddress().String()
	}
	return ua.contactStr
}

func addExtra(h *message.Header, extra []string) {
	for _, x := range extra {
		n, v, _ := strings.Cut(x, ":")
		h.Add(strings.TrimSpace(n), strings.TrimSpace(v))
	}
}

// Progress sends a provisional response: 180 Ringing by default.
func (inv *Invitation) Progress(ctx context.Context, opts ProgressOptions) error {
	code := opts.StatusCode
	if code == 0 {
		code = 180
		if opts.EarlyMedia {
			code = 183
		}
	}
	if code <= 100 || code >= 200 {
		return fmt.Errorf("%w: progress status %d", ErrBadOptions, code)
	}
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return err
	}
	inv.progressed.Store(true)
	reliable, offer, rerr := inv.relPrepare(ctx, opts)
	if rerr != nil {
		return rerr
	}
	var early *media.Description
	if opts.EarlyMedia && inv.handler != nil && len(inv.Request.Body) > 0 && inv.early == nil {
		d, err := inv.answer(ctx, opts.Media)
		if err != nil {
			return err
		}
		early = &d
	}
	var err error
	if cerr := inv.ua.call(ctx, func() {
		if inv.answered || inv.ended {
			err = fmt.Errorf("%w: already answered", ErrInvalidState)
			return
		}
		resp := inv.ua.newResponseTag(inv.Request, code, opts.Reason, inv.toTag)
		inv.tagged(resp)
		resp.Header.Add("Contact", inv.ua.contactString())
		addExtra(&resp.Header, opts.ExtraHeaders)
		if early != nil {
			inv.early = early
			resp.Header.Add("Content-Type", early.ContentType)
			resp.Body = early.Body
		}
		if reliable {
			err = inv.sendReliable(resp, offer)
			return
		}
		err = inv.ua.respond(inv.ist, resp)
	}); cerr != nil {
		return cerr
	}
	return err
}

// Reject refuses the call with code (default 480) and reason. It returns
// once the response is handed to the transaction, or with ctx's error
// wrapped in ErrCanceled.
func (inv *Invitation) Reject(ctx context.Context, code int, reason string) error {
	if code == 0 {
		code = 480
	}
	if code < 300 || code > 699 {
		return fmt.Errorf("%w: reject status %d", ErrBadOptions, code)
	}
	var err error
	if cerr := inv.ua.call(ctx, func() {
		if inv.answered || inv.ended {
			err = fmt.Errorf("%w: already answered", ErrInvalidState)
			return
		}
		inv.answered = true
		resp := inv.ua.newResponseTag(inv.Request, code, reason, inv.toTag)
		inv.tagged(resp)
		err = inv.ua.respond(inv.ist, resp)
		delete(inv.ua.invitations, inv.ist)
		inv.terminate(EndReason{Cause: EndRejected, StatusCode: code})
	}); cerr != nil {
		return cerr
	}
	return err
}

// Accept answers the call with 200 OK, carrying the media answer (or an
// offer, when the INVITE had none). It returns once the 200 is sent; the
// session is Established when the ACK arrives. Without an ACK in 64*T1
// the call ends with BYE (EndNoAck).
func (inv *Invitation) Accept(ctx context.Context, opts AcceptOptions) error {
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return err
	}
	if opts.SessionTimers != nil {
		if err := opts.SessionTimers.check(); err != nil {
			return err
		}
	}
	inv.mopts = opts.Media
	// Without a Progress before, nothing reliable or early is under way:
	// the 200 is built and sent in one turn of the loop, which checks
	// that this still holds (a Progress from another goroutine may have
	// come in between; then Accept starts again the long way).
	fast := !inv.progressed.Load()
	for {
		again, err := inv.accept(ctx, opts, fast)
		if !again {
			return err
		}
		fast = false
	}
}

// accept is Accept; fast skips the wait for a reliable provisional
// response and the look at the early offer/answer, which a Progress
// before may have started. again reports that fast did not hold.
func (inv *Invitation) accept(ctx context.Context, opts AcceptOptions, fast bool) (again bool, err error) {
	var noSDP bool
	if !fast {
		var rerr error
		if noSDP, rerr = inv.relBeforeAccept(ctx); rerr != nil {
			return false, rerr
		}
	}
	var desc media.Description
	switch {
	case noSDP:
	case inv.early != nil:
		desc = *inv.early // the early answer stands (RFC 3261 §13.3.1.4)
	case inv.handler != nil:
		d, err := inv.answer(ctx, opts.Media)
		if err != nil {
			return false, err
		}
		desc = d
	}
	a := &acceptOnLoop{inv: inv, opts: opts, desc: desc, fast: fast}
	if cerr := inv.ua.callRunner(ctx, a); cerr != nil {
		return false, cerr
	}
	return a.again, a.err
}

// acceptOnLoop is the part of Accept that runs on the loop, with its
// inputs and results: one allocation (see loopRunner).
type acceptOnLoop struct {
	inv   *Invitation
	opts  AcceptOptions
	desc  media.Description
	fast  bool
	again bool
	err   error
}

func (a *acceptOnLoop) runOnLoop() {
	inv := a.inv
	if inv.answered || inv.ended {
		a.err = fmt.Errorf("%w: already answered", ErrInvalidState)
		return
	}
	if a.fast && (inv.x.rel != nil || inv.oa.initialDone || inv.oa.cur == oaReliableOut || inv.early != nil) {
		a.again = true
		return
	}
	inv.answered = true
	resp := inv.ua.newResponseTag(inv.Request, 200, "", inv.toTag)
	inv.tagged(resp)
	resp.Header.Add("Contact", inv.ua.contactString())
	resp.Header.Add("Allow", inviteAllow)
	for _, f := range inv.Request.Header.Fields() {
		if message.CanonicalName(f.Name) == "Record-Route" {
			resp.Header.Add("Record-Route", f.Value)
		}
	}
	addExtra(&resp.Header, a.opts.ExtraHeaders)
	if a.desc.Body != nil {
		resp.Header.Add("Content-Type", a.desc.ContentType)
		resp.Body = a.desc.Body
	}
	inv.accept2xx(resp, a.opts)
	d, derr := dialog.NewUAS(inv.Request, resp)
	if derr != nil {
		a.err = derr
		inv.ua.reply(inv.ist, 400, "", nil)
		inv.terminate(EndReason{Cause: EndRejected, StatusCode: 400, Err: derr})
		return
	}
	if a.err = inv.ua.respond(inv.ist, resp); a.err != nil {
		inv.terminate(EndReason{Cause: EndTransport, Err: a.err})
		return
	}
	delete(inv.ua.invitations, inv.ist)
	inv.ua.dialogs.Add(d)
	inv.confirm(d)
	inv.waitAck(resp)
	if old := inv.Replaces; old != nil && !old.ended && old.d != nil {
		old.sendBye(nil)
		old.terminate(EndReason{Cause: EndReplaced})
	}
}

// answer applies the INVITE's offer, if any, and returns the local
// description (the answer, or an offer when the INVITE had none). On
// failure the call is rejected (488, or 500).
func (inv *Invitation) answer(ctx context.Context, mo media.Options) (media.Description, error) {
	h := inv.handler
	if len(inv.Request.Body) > 0 {
		off := media.Description{ContentType: inv.Request.Header.MediaType(), Body: inv.Request.Body}
		if err := h.SetDescription(ctx, off, mo); err != nil {
			_ = inv.Reject(context.Background(), 488, "")
			return media.Description{}, fmt.Errorf("%w: offer: %w", ErrMedia, err)
		}
	}
	d, err := h.GetDescription(ctx, mo)
	if err != nil {
		_ = inv.Reject(context.Background(), 500, "")
		return media.Description{}, fmt.Errorf("%w: answer: %w", ErrMedia, err)
	}
	return d, nil
}
