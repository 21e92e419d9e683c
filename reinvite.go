package sip

import (
	"context"
	"errors"
	"fmt"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
)

// ReinviteOptions are the options of Session.Reinvite.
type ReinviteOptions struct {
	// Media are the media options of the new offer (Hold puts the call on
	// hold).
	Media media.Options
	// ExtraHeaders are added to the re-INVITE, as "Name: value".
	ExtraHeaders []string
	// GlareRetries bounds how many times a re-INVITE refused with 491
	// Request Pending (the peer's own re-INVITE crossed it) is sent again
	// after the RFC 3261 §14.1 delay. Zero: DefaultGlareRetries;
	// negative: no retry.
	GlareRetries int
}

// Reinvite modifies an established call (RFC 3261 §14): a re-INVITE with a
// new offer, then the answer applied. Once it succeeds, the constraints
// of opts.Media (e.g. video added) are the session's: Hold, Unhold and
// the answers to the peer's re-INVITEs keep them. It returns nil on a 2xx, a
// *ResponseError otherwise. When the peer's own re-INVITE crossed ours
// (491), it is sent again after a random delay (RFC 3261 §14.1: 2.1–4 s
// when this side made the call, 0–2 s otherwise), up to
// opts.GlareRetries times; if glare persists the error wraps ErrGlare and
// the last 491's *ResponseError. A failed re-INVITE leaves the session as
// it was. While another offer/answer exchange is under way (a re-INVITE
// or an UPDATE offer, ours or the peer's) it fails with ErrInvalidState:
// one exchange at a time (RFC 3264 §4).
func (s *Session) Reinvite(ctx context.Context, opts ReinviteOptions) error {
	if err := checkExtraHeaders(opts.ExtraHeaders); err != nil {
		return err
	}
	return s.retryGlare(ctx, opts.GlareRetries, func() error { return s.reinviteOnce(ctx, opts, false) })
}

// reinviteOnce sends one re-INVITE and applies its answer. recovering
// marks the re-INVITE that moves a call to a new connection: a 408 then
// does not end the call (its caller decides).
func (s *Session) reinviteOnce(ctx context.Context, opts ReinviteOptions, recovering bool) error {
	if st := s.State(); st != SessionEstablished {
		return fmt.Errorf("%w: re-INVITE needs an established call (%v)", ErrInvalidState, st)
	}
	var offer *media.Description
	if s.handler != nil {
		d, err := s.handler.GetDescription(ctx, opts.Media)
		if err != nil {
			return fmt.Errorf("sip: offer: %w", err)
		}
		offer = &d
	}
	_, err := s.sendInDialog(ctx, dialogRequest{
		method: "INVITE", offer: offer, mopts: opts.Media, extra: opts.ExtraHeaders, recovering: recovering,
		open: func() (*dialog.Dialog, error) {
			if s.d == nil || s.ended || s.State() != SessionEstablished {
				return nil, fmt.Errorf("%w: re-INVITE needs an established call (%v)", ErrInvalidState, s.State())
			}
			if s.oa.busy() {
				return nil, fmt.Errorf("%w: an offer/answer exchange is in progress", ErrInvalidState)
			}
			return s.d, nil
		},
		headers: func(req *message.Request) {
			req.Header.Add("Allow", "ACK, BYE, CANCEL, INVITE, OPTIONS, INFO, MESSAGE, PRACK, UPDATE")
		},
		pending: func(on bool) { s.oa.set(oaReinviteOut, on) },
		accepted: func(*dialog.Dialog, *message.Response) {
			// The media kinds now in force (e.g. video added) are those
			// of later offers and answers too.
			s.mopts.Constraints = opts.Media.Constraints
		},
	})
	if err != nil {
		var re *ResponseError
		if offer != nil && errors.As(err, &re) {
			s.ua.log.Debug("sip: re-INVITE refused", "code", re.StatusCode)
		}
		return err
	}
	s.mu.Lock()
	s.held = opts.Media.Hold
	s.mu.Unlock()
	return nil
}

// Hold puts the call on hold: a re-INVITE offering sendonly media (RFC
// 3264 §8.4). The hold state changes only when the peer accepts.
func (s *Session) Hold(ctx context.Context) error {
	mo, err := s.mediaOptions(ctx)
	if err != nil {
		return err
	}
	mo.Hold = true
	return s.Reinvite(ctx, ReinviteOptions{Media: mo})
}

// mediaOptions returns the session's media options (read on the loop,
// which changes them).
func (s *Session) mediaOptions(ctx context.Context) (media.Options, error) {
	var mo media.Options
	if err := s.ua.call(ctx, func() { mo = s.mopts }); err != nil {
		return mo, err
	}
	return mo, nil
}

// Unhold takes the call off hold.
func (s *Session) Unhold(ctx context.Context) error {
	mo, err := s.mediaOptions(ctx)
	if err != nil {
		return err
	}
	mo.Hold = false
	return s.Reinvite(ctx, ReinviteOptions{Media: mo})
}

// OnHold reports whether this side has put the call on hold.
func (s *Session) OnHold() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// onReinvite answers a re-INVITE from the peer. Runs on the loop.
func (s *Session) onReinvite(tx *transaction.Server, req *message.Request) {
	if s.oa.busy() || s.ackWait != nil {
		// Crossing re-INVITEs (RFC 3261 §14.2), our 2xx unacknowledged,
		// or an UPDATE's offer/answer in progress (RFC 3311 §5.2).
		s.ua.reply(tx, 491, "", nil)
		return
	}
	if s.ua.tooSmall(tx, req, s.x.timer.opts) {
		return // 422 (RFC 4028 §8.1)
	}
	if s.handler == nil && isOffer(req) {
		s.ua.reply(tx, 488, "", nil) // NoMedia: no answer to give
		return
	}
	s.oa.begin(oaReinviteIn)
	h, mo := s.handler, s.mopts
	answer := func(desc *media.Description, code int) {
		s.ua.post(func() {
			s.oa.end(oaReinviteIn)
			if s.ended {
				return
			}
			if code != 200 {
				s.ua.reply(tx, code, "", nil)
				return
			}
			resp := s.ua.newResponse(req, 200, "")
			resp.Header.Add("Contact", s.ua.contactString())
			if desc != nil {
				resp.Header.Add("Content-Type", desc.ContentType)
				resp.Body = desc.Body
				s.noteLocal(desc.ContentType, desc.Body)
			}
			s.timerAnswerInDialog(req, resp)
			if err := s.ua.respond(tx, resp); err != nil {
				return
			}
			s.ist = tx
			s.waitAck(resp)
		})
	}
	if h == nil {
		answer(nil, 200)
		return
	}
	s.cbq.push(func() {
		ctx, cancel := s.mediaContext()
		defer cancel()
		if len(req.Body) > 0 {
			off := media.Description{ContentType: req.Header.MediaType(), Body: req.Body}
			if err := h.SetDescription(ctx, off, mo); err != nil {
				answer(nil, 488)
				return
			}
		}
		d, err := h.GetDescription(ctx, mo)
		if err != nil {
			answer(nil, 500)
			return
		}
		answer(&d, 200)
	})
}
