package sip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
)

// UpdateOptions are the options of Session.Update.
type UpdateOptions struct {
	// Offer sends a new offer, the media handler's description for
	// Media, and applies the answer (RFC 3311 §5.1). Without it the
	// UPDATE has no body: it refreshes the session (timer) and the
	// remote target only.
	Offer bool
	// Media are the media options of the offer.
	Media media.Options
	// ExtraHeaders are added to the UPDATE, as "Name: value".
	ExtraHeaders []string
	// GlareRetries is how many times an UPDATE refused with 491 (the
	// peer's offer crossed ours) is sent again, after the RFC 3261 §14.1
	// delay (2.1–4 s for the caller, 0–2 s for the callee). Zero:
	// DefaultGlareRetries; negative: the 491 is returned at once.
	GlareRetries int
}

// Update sends UPDATE (RFC 3311) in the call's dialog, early or confirmed,
// and waits for its final response: nil for a 2xx (the answer, if any, is
// then applied), a *ResponseError otherwise. A 491 (the peer's own offer
// crossed ours) is retried after the glare delay, opts.GlareRetries times;
// past them the error wraps ErrGlare and the 491. It fails with ErrInvalidState
// when the peer did not list UPDATE in its Allow, when there is no dialog
// yet, or, with Offer, while another offer/answer exchange is pending.
func (s *Session) Update(ctx context.Context, opts UpdateOptions) error {
	return s.retryGlare(ctx, opts.GlareRetries, func() error { return s.updateOnce(ctx, opts) })
}

// updateOnce sends one UPDATE and waits for its outcome.
func (s *Session) updateOnce(ctx context.Context, opts UpdateOptions) error {
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return err
	}
	var offer *media.Description
	if opts.Offer {
		if s.handler == nil {
			return fmt.Errorf("%w: no media handler for an offer", ErrInvalidState)
		}
		var busy error
		if err := s.ua.call(ctx, func() { busy = s.canUpdate(true) }); err != nil {
			return err
		}
		if busy != nil {
			return busy
		}
		d, err := s.handler.GetDescription(ctx, opts.Media)
		if err != nil {
			return fmt.Errorf("sip: offer: %w", err)
		}
		offer = &d
	}
	_, err := s.sendInDialog(ctx, dialogRequest{
		method: "UPDATE", offer: offer, mopts: opts.Media, extra: opts.ExtraHeaders,
		open: func() (*dialog.Dialog, error) {
			if err := s.canUpdate(offer != nil); err != nil {
				return nil, err
			}
			return s.updateDialog(), nil
		},
		pending: func(on bool) {
			if offer != nil {
				s.oa.set(oaUpdateOut, on)
			}
		},
		accepted: func(d *dialog.Dialog, resp *message.Response) { d.RefreshTarget(resp) },
	})
	return err
}

// updateDialog returns the dialog an UPDATE goes in: the confirmed one,
// else the early one (the latest reliable provisional response's, as
// caller; ours, as callee). Runs on the loop.
func (s *Session) updateDialog() *dialog.Dialog {
	switch {
	case s.d != nil:
		return s.d
	case s.incoming:
		return s.x.uasEarly
	case s.x.lastEarly != nil:
		return s.x.lastEarly.d
	}
	return nil
}

// canUpdate checks that an UPDATE may go now. Runs on the loop.
func (s *Session) canUpdate(withOffer bool) error {
	if s.ended || s.updateDialog() == nil {
		return fmt.Errorf("%w: UPDATE needs an early or established dialog (%v)", ErrInvalidState, s.State())
	}
	if !s.x.peerAllows("UPDATE") {
		return fmt.Errorf("%w: the peer does not allow UPDATE", ErrInvalidState)
	}
	if withOffer {
		if ours, theirs := s.offerPending(); ours || theirs {
			return fmt.Errorf("%w: an offer/answer exchange is in progress", ErrInvalidState)
		}
	}
	return nil
}

// offerPending reports whether an offer of ours waits for its answer, or
// one of the peer's for ours (RFC 3311 §5.2). Runs on the loop.
func (s *Session) offerPending() (ours, theirs bool) {
	ours, theirs = s.oa.pending()
	if s.d == nil && !s.oa.initialDone && s.invite != nil && len(s.invite.Body) > 0 {
		if s.incoming {
			theirs = true
		} else {
			ours = true
		}
	}
	return ours, theirs
}

// onUpdate answers an UPDATE (RFC 3311 §5.2): an offer is answered
// through the media handler (491 when our own offer is pending, 500 with
// Retry-After while we answer one), no body gets 200 (a session refresh).
// Runs on the loop.
func (s *Session) onUpdate(tx *transaction.Server, req *message.Request, d *dialog.Dialog) {
	s.x.notePeerAllow(&req.Header)
	to := s.x.timer.opts
	if to == (SessionTimerOptions{}) {
		to = s.ua.opts.SessionTimers
	}
	if s.d == d && s.ua.tooSmall(tx, req, to) {
		return
	}
	if s.handler == nil && isOffer(req) {
		s.ua.reply(tx, 488, "", nil) // NoMedia: no answer to give
		return
	}
	if len(req.Body) == 0 || s.handler == nil {
		s.replyUpdate(tx, req, d, nil)
		return
	}
	if ours, theirs := s.offerPending(); ours {
		s.ua.reply(tx, 491, "", nil)
		return
	} else if theirs {
		s.ua.reply(tx, 500, "", func(r *message.Response) {
			r.Header.Add("Retry-After", strconv.Itoa(rand.IntN(11)))
		})
		return
	}
	s.oa.begin(oaUpdateIn)
	h, mo := s.handler, s.mopts
	off := media.Description{ContentType: req.Header.MediaType(), Body: req.Body}
	s.cbq.push(func() {
		ctx, cancel := s.mediaContext()
		defer cancel()
		code := 200
		var ans media.Description
		if err := h.SetDescription(ctx, off, mo); err != nil {
			code = 488
		} else if ans, err = h.GetDescription(ctx, mo); err != nil {
			code = 500
		}
		s.ua.post(func() {
			s.oa.end(oaUpdateIn)
			if s.ended {
				s.ua.reply(tx, 481, "", nil)
				return
			}
			if code != 200 {
				s.ua.reply(tx, code, "", nil)
				return
			}
			s.replyUpdate(tx, req, d, &ans)
		})
	})
}

// replyUpdate sends the 200 to an UPDATE, with the answer if any.
func (s *Session) replyUpdate(tx *transaction.Server, req *message.Request, d *dialog.Dialog, ans *media.Description) {
	resp := s.ua.newResponse(req, 200, "")
	resp.Header.Add("Contact", s.ua.contactString())
	if ans != nil {
		resp.Header.Add("Content-Type", ans.ContentType)
		resp.Body = ans.Body
		s.noteLocal(ans.ContentType, ans.Body)
	}
	if s.d == d {
		s.timerAnswerInDialog(req, resp)
	}
	if err := s.ua.respond(tx, resp); err != nil {
		s.ua.log.Debug("sip: UPDATE response not sent", "err", err)
	}
}
