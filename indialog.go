package sip

import (
	"context"
	"fmt"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
)

// dialogRequest is one request sent in the call's dialog whose final
// response is awaited and whose answer is applied: a re-INVITE or an
// UPDATE (see Session.sendInDialog).
type dialogRequest struct {
	method string
	// offer is the offer the request carries, nil for none; mopts are the
	// media options the answer is applied with.
	offer *media.Description
	mopts media.Options
	extra []string
	// recovering marks the re-INVITE that moves a call to a new
	// connection: a 408 then does not end the call.
	recovering bool
	// open checks, on the loop, that the request may go now and returns
	// the dialog it goes in.
	open func() (*dialog.Dialog, error)
	// headers adds the method's own headers (on the loop), after Contact.
	headers func(req *message.Request)
	// pending marks (true) and clears (false) the exchange as in progress,
	// on the loop.
	pending func(on bool)
	// accepted runs on the loop at the first 2xx, before the offer is
	// noted and the session timer refreshed.
	accepted func(d *dialog.Dialog, resp *message.Response)
}

// sendInDialog sends r in the call's dialog, waits for its final
// response and, for a 2xx answering r's offer, gives the answer to the
// media handler. It returns the 2xx, or a *ResponseError for a final
// rejection (a 481, or a 408 unless recovering, ends the call), the
// transaction's error, or ctx's error wrapped in ErrCanceled.
//
// A 2xx to an INVITE is acknowledged, and so is each retransmission of it
// (our ACK was lost): the outgoing request stays open for them.
func (s *Session) sendInDialog(ctx context.Context, r dialogRequest) (*message.Response, error) {
	type result struct {
		resp *message.Response
		err  error
	}
	invite := r.method == "INVITE"
	done := make(chan result, 1)
	if err := s.ua.call(ctx, func() {
		d, err := r.open()
		if err != nil {
			done <- result{nil, err}
			return
		}
		req, err := d.NewRequest(r.method)
		if err != nil {
			done <- result{nil, err}
			return
		}
		req.Header.Add("Contact", s.ua.contactString())
		if r.headers != nil {
			r.headers(req)
		}
		if s.d != nil {
			s.refreshHeaders(req)
		}
		addExtra(&req.Header, r.extra)
		if r.offer != nil {
			req.Header.Add("Content-Type", r.offer.ContentType)
			req.Body = r.offer.Body
		}
		r.pending(true)
		o := &outgoing{req: req}
		o.rebuild = nextCSeq(&d.LocalSeq)
		finished := false // the outcome is given
		finish := func(res result) {
			if finished {
				return
			}
			finished = true
			r.pending(false)
			done <- res
		}
		o.onResponse = func(resp *message.Response) {
			switch {
			case resp.StatusCode < 200:
				return
			case resp.StatusCode < 300 && invite:
				_, ack, _, err := s.ua.dialogs.Ack2xx(o.req, resp, s.ua.ackVia())
				if err == nil {
					s.ua.sendDirect(ack)
				}
				if finished {
					return
				}
			default:
				if o.ended || finished {
					return
				}
				o.ended = true
			}
			if code := resp.StatusCode; code >= 300 {
				finish(result{resp, responseError(resp)})
				if (code == 481 || (code == 408 && !r.recovering)) && s.d == d {
					s.terminate(EndReason{Cause: EndRemoteBye, StatusCode: code})
				}
				return
			}
			if r.accepted != nil {
				r.accepted(d, resp)
			}
			if r.offer != nil {
				s.noteLocal(r.offer.ContentType, r.offer.Body)
			}
			if s.d == d {
				s.refreshed(resp)
			}
			finish(result{resp, nil})
		}
		o.onError = func(err error) { finish(result{nil, err}) }
		if err := s.ua.send(o); err != nil {
			finish(result{nil, err})
		}
	}); err != nil {
		return nil, err
	}
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		return nil, canceled(ctx)
	case <-s.ua.quit:
		return nil, ErrStopped
	}
	if res.err != nil {
		return nil, res.err
	}
	if r.offer != nil && s.handler != nil && len(res.resp.Body) > 0 {
		d := media.Description{ContentType: res.resp.Header.MediaType(), Body: res.resp.Body}
		if err := s.handler.SetDescription(ctx, d, r.mopts); err != nil {
			return nil, fmt.Errorf("sip: answer: %w", err)
		}
	}
	return res.resp, nil
}
