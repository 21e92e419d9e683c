package sip

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sipua/sip/message"
)

// SessionDelegate receives the in-dialog requests of a session. Every
// field is optional; the callbacks run on the UserAgent's callback
// goroutine and answer the request (if they return without answering, it
// is accepted with 200).
type SessionDelegate struct {
	// OnInfo receives INFO (RFC 6086). Nil: 200 for DTMF bodies (which
	// also reach OnDTMF), 415 for others.
	OnInfo func(r *IncomingRequest)
	// OnMessage receives MESSAGE inside the dialog. Nil: 405.
	OnMessage func(r *IncomingRequest)
	// OnDTMF receives tones sent by SIP INFO (application/dtmf-relay or
	// application/dtmf).
	OnDTMF func(tone rune, duration time.Duration)
	// OnRefer receives a REFER (transfer request). The callback accepts
	// it (Referral.Accept calls the target) or rejects it. Nil: 603.
	OnRefer func(r *Referral)
}

// sessionDelegates holds the delegate of a session under a lock, since
// it is set from the application and read on the loop.
type sessionDelegates struct {
	mu sync.Mutex
	d  SessionDelegate
}

// SetDelegate sets the session's delegate for in-dialog requests.
func (s *Session) SetDelegate(d SessionDelegate) {
	s.del.mu.Lock()
	s.del.d = d
	s.del.mu.Unlock()
}

func (s *Session) delegate() SessionDelegate {
	s.del.mu.Lock()
	defer s.del.mu.Unlock()
	return s.del.d
}

// onInfoOrMessage handles INFO and MESSAGE in the dialog. Runs on the loop.
func (s *Session) onInfoOrMessage(txr func(code int, edit func(*message.Response)), deliver func(func(*IncomingRequest)), req *message.Request) {
	d := s.delegate()
	if req.Method == "MESSAGE" {
		if d.OnMessage == nil {
			txr(405, func(r *message.Response) { r.Header.Add("Allow", "ACK, BYE, CANCEL, INVITE, INFO") })
			return
		}
		deliver(d.OnMessage)
		return
	}
	tone, dur, isDTMF := parseDTMFInfo(req)
	if isDTMF && d.OnDTMF != nil {
		f := d.OnDTMF
		s.cbq.push(func() { f(tone, dur) })
	}
	switch {
	case d.OnInfo != nil:
		deliver(d.OnInfo)
	case isDTMF || len(req.Body) == 0:
		txr(200, nil)
	default:
		txr(415, func(r *message.Response) { r.Header.Add("Accept", "application/dtmf-relay, application/dtmf") })
	}
}

// parseDTMFInfo reads a DTMF INFO body: application/dtmf-relay
// ("Signal=5\r\nDuration=160") or application/dtmf ("5").
func parseDTMFInfo(req *message.Request) (tone rune, d time.Duration, ok bool) {
	body := strings.TrimSpace(string(req.Body))
	switch req.Header.MediaType() {
	case "application/dtmf":
		if len(body) == 1 {
			return rune(body[0]), 0, true
		}
	case "application/dtmf-relay":
		for _, line := range strings.Split(body, "\n") {
			k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "signal":
				if v = strings.TrimSpace(v); len(v) == 1 {
					tone, ok = rune(v[0]), true
				}
			case "duration":
				var ms int
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &ms); err == nil {
					d = time.Duration(ms) * time.Millisecond
				}
			}
		}
	}
	return tone, d, ok
}

// Info sends INFO in the dialog (RFC 6086) and waits for its final
// response: nil for a 2xx, a *ResponseError otherwise.
func (s *Session) Info(ctx context.Context, contentType string, body []byte) error {
	return s.inDialog(ctx, "INFO", contentType, body)
}

// Message sends MESSAGE in the dialog and waits for its final response.
func (s *Session) Message(ctx context.Context, contentType string, body []byte) error {
	return s.inDialog(ctx, "MESSAGE", contentType, body)
}

// DTMFMethod chooses how SendDTMF sends tones.
type DTMFMethod int

// DTMF methods.
const (
	// DTMFRTP sends RFC 4733 telephone-events in the media, through the
	// media handler.
	DTMFRTP DTMFMethod = iota
	// DTMFInfo sends each tone as a SIP INFO, application/dtmf-relay.
	DTMFInfo
)

// SendDTMF sends tones ("0"–"9", "*", "#", "A"–"D") by method, each lasting
// duration (default 100 ms).
func (s *Session) SendDTMF(ctx context.Context, tones string, duration time.Duration, method DTMFMethod) error {
	if duration <= 0 {
		duration = 100 * time.Millisecond
	}
	if method == DTMFRTP {
		if s.handler == nil {
			return fmt.Errorf("%w: no media handler for RFC 4733 DTMF", ErrInvalidState)
		}
		return s.handler.SendDTMF(tones, duration)
	}
	for _, t := range tones {
		if !strings.ContainsRune("0123456789*#ABCDabcd", t) {
			return fmt.Errorf("%w: DTMF tone %q", ErrBadOptions, t)
		}
		body := fmt.Sprintf("Signal=%c\r\nDuration=%d\r\n", t, duration.Milliseconds())
		if err := s.Info(ctx, "application/dtmf-relay", []byte(body)); err != nil {
			return err
		}
	}
	return nil
}

// inDialog sends a non-INVITE request in the session's dialog.
func (s *Session) inDialog(ctx context.Context, method, contentType string, body []byte) error {
	errc := make(chan error, 1)
	if err := s.ua.call(ctx, func() {
		if s.d == nil || s.ended {
			errc <- fmt.Errorf("%w: %s needs an established call (%v)", ErrInvalidState, method, s.State())
			return
		}
		req, err := s.d.NewRequest(method)
		if err != nil {
			errc <- err
			return
		}
		if len(body) > 0 {
			req.Header.Add("Content-Type", contentType)
			req.Body = body
		}
		o := &outgoing{req: req}
		o.rebuild = nextCSeq(&s.d.LocalSeq)
		o.onResponse = func(resp *message.Response) {
			if resp.StatusCode < 200 || o.ended {
				return
			}
			o.ended = true
			if resp.StatusCode >= 300 {
				errc <- responseError(resp)
				if resp.StatusCode == 481 || resp.StatusCode == 408 {
					// RFC 5057: the dialog is gone.
					s.terminate(EndReason{Cause: EndRemoteBye, StatusCode: resp.StatusCode})
				}
				return
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
