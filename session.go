package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
)

// SessionState is the state of a Session, as SIP.js's.
type SessionState int

// Session states.
const (
	SessionInitial SessionState = iota
	SessionEstablishing
	SessionEstablished
	SessionTerminating
	SessionTerminated
)

func (s SessionState) String() string {
	switch s {
	case SessionInitial:
		return "Initial"
	case SessionEstablishing:
		return "Establishing"
	case SessionEstablished:
		return "Established"
	case SessionTerminating:
		return "Terminating"
	case SessionTerminated:
		return "Terminated"
	}
	return "Unknown"
}

// EndCause says why a session ended.
type EndCause int

// End causes.
const (
	// EndNone: the session has not ended.
	EndNone EndCause = iota
	// EndLocalBye: this side hung up.
	EndLocalBye
	// EndRemoteBye: the peer hung up.
	EndRemoteBye
	// EndCanceled: this side canceled its INVITE.
	EndCanceled
	// EndRemoteCancel: the caller canceled before the call was answered.
	EndRemoteCancel
	// EndRejected: the INVITE got a final non-2xx response (StatusCode
	// tells which); on the UAS side, the application rejected it.
	EndRejected
	// EndTimeout: no final response came (Timer B).
	EndTimeout
	// EndNoAck: the 2xx was never acknowledged; a BYE was sent.
	EndNoAck
	// EndTransport: a message could not be sent.
	EndTransport
	// EndStopped: the UserAgent stopped before the call could end
	// otherwise: Stop's context ended while its BYE or CANCEL waited for
	// an answer, or while its 2xx waited for the ACK.
	EndStopped
	// EndReplaced: another call took this one's place (RFC 3891).
	EndReplaced
	// EndNoPrack: our reliable provisional response was never
	// acknowledged (RFC 3262 §3); the INVITE was answered 504.
	EndNoPrack
	// EndSessionExpired: the session timer ran out (RFC 4028 §10): no
	// refresh came in time, or our refresh failed; a BYE was sent.
	EndSessionExpired
	// EndConnectionLost: the connection to the server dropped and the
	// call could not be moved to a new one (no reconnection within
	// UserAgentOptions.CallRecoveryTimeout, or the peer refused the
	// re-INVITE: StatusCode tells which).
	EndConnectionLost
	// EndMediaTimeout: no media came from the peer for the media
	// handler's timeout (media.ErrMediaTimeout); a BYE was sent.
	EndMediaTimeout
	// EndMediaFailure: the media handler failed: it reported that the
	// media path failed (media.ErrICEFailed, …) or one of its calls
	// failed or overran UserAgentOptions.MediaHandlerTimeout (Err wraps ErrMedia
	// and tells); the call was hung up (BYE) or canceled.
	EndMediaFailure
	// EndNoAnswer: the call rang unanswered longer than
	// InviterOptions.NoAnswerTimeout; it was canceled.
	EndNoAnswer
)

// endCauseNames are the EndCause strings, by value.
var endCauseNames = [...]string{"none", "local BYE", "remote BYE", "canceled", "remote CANCEL", "rejected",
	"timeout", "no ACK", "transport failure", "user agent stopped", "replaced", "no PRACK", "session expired",
	"connection lost", "media timeout", "media failure", "no answer"}

// String describes the cause; a value outside the declared ones gives
// "EndCause(n)".
func (c EndCause) String() string {
	if c < 0 || int(c) >= len(endCauseNames) {
		return fmt.Sprintf("EndCause(%d)", int(c))
	}
	return endCauseNames[c]
}

// EndReason tells why and how a session ended.
type EndReason struct {
	Cause EndCause
	// StatusCode is the final status of a rejected INVITE.
	StatusCode int
	// Err is the error behind a timeout or transport failure.
	Err error
}

func (r EndReason) String() string {
	if r.StatusCode != 0 {
		return fmt.Sprintf("%s (%d)", r.Cause, r.StatusCode)
	}
	return r.Cause.String()
}

// Session is what an Inviter and an Invitation share: the call's state,
// its dialog and media, BYE. All methods are safe for concurrent use.
type Session struct {
	ua      *UserAgent
	st      stateBox[SessionState]
	handler media.Handler
	mopts   media.Options

	mu     sync.Mutex
	reason EndReason
	id     dialog.ID

	// done closes when the session ends. Made on first use (doneChan,
	// under mu): most calls end with no one waiting on it.
	done chan struct{}

	owner any           // the *Inviter or *Invitation embedding the session
	cbq   callbackQueue // the call's callback lane
	del   sessionDelegates
	rec   recoveryState // surviving a lost connection (reconnect.go)

	// Owned by the event loop.
	d        *dialog.Dialog
	invite   *message.Request
	ist      *transaction.Server // UAS: the INVITE server transaction
	ackWait  *dialog.AckWait
	ackTimer *timerEntry // &ackEntry while armed once
	// ackEntry is the timer of ackWait, ackTick (s.onAckTick, made once)
	// its function: re-arming it allocates nothing.
	ackEntry timerEntry
	ackTick  func()
	// byeAfterAck is a BYE asked for before our 2xx was acknowledged.
	byeAfterAck func()
	// oa is the call's offer/answer state.
	oa            offerAnswer
	referNotify   func(code int, final bool)
	notifyQueue   []*message.Request
	afterNotifies []func() // BYEs waiting for the NOTIFYs
	x             callExt  // PRACK, UPDATE, session timers
	obs           obsTimes // for UserAgentOptions.Observer

	// The flags, side by side: one word, not four (a Session is
	// allocated per call and held for its length).
	incoming   bool
	ended      bool // owned by the event loop
	held       bool // guarded by mu
	notifyBusy bool // owned by the event loop
}

func newSession(ua *UserAgent, incoming bool, mopts media.Options) (*Session, error) {
	s := new(Session)
	if err := s.init(ua, incoming, mopts); err != nil {
		return nil, err
	}
	return s, nil
}

// init sets up a new Session in place (an Invitation allocates its
// Session with it).
func (s *Session) init(ua *UserAgent, incoming bool, mopts media.Options) error {
	*s = Session{ua: ua, incoming: incoming, mopts: mopts}
	s.cbq.set = &ua.lanes
	if f := ua.opts.MediaFactory; f != nil {
		h, err := f(media.SessionInfo{Incoming: incoming})
		if err != nil {
			return fmt.Errorf("sip: media handler: %w", err)
		}
		s.handler = h
		if fn, ok := h.(media.FailureNotifier); ok {
			fn.OnFailure(s.handlerFailed)
		}
	}
	return nil
}

// State returns the current state.
func (s *Session) State() SessionState { return s.st.get() }

// OnStateChange adds a state listener and returns a function removing it.
// Listeners run on the session's callback lane, in order with its other
// callbacks.
func (s *Session) OnStateChange(f func(SessionState)) (remove func()) { return s.st.listen(f) }

// EndReason tells why the session ended (Cause EndNone while it runs).
func (s *Session) EndReason() EndReason {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// DialogID returns the dialog's Call-ID and tags once the call is
// answered (zero before).
func (s *Session) DialogID() (callID, localTag, remoteTag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id.CallID, s.id.LocalTag, s.id.RemoteTag
}

// MediaHandler returns the session's media handler (nil without a
// UserAgentOptions.MediaFactory).
func (s *Session) MediaHandler() media.Handler { return s.handler }

// Done is closed when the session has terminated.
func (s *Session) Done() <-chan struct{} { return s.doneChan() }

// doneChan returns the channel that closes when the session ends.
func (s *Session) doneChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
	}
	return s.done
}

// closedDone is the done channel of a session that ended before anyone
// asked for it: closed once here, never written again.
var closedDone = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (s *Session) setState(st SessionState) {
	s.st.set(st, SessionTerminated, &s.cbq)
	s.obsSession(st)
}

// terminate ends the session. Runs on the loop.
func (s *Session) terminate(r EndReason) {
	if s.ended {
		return
	}
	s.ended = true
	s.mu.Lock()
	s.reason = r
	s.mu.Unlock()
	s.ua.timers.stop(s.ackTimer)
	if i, ok := s.owner.(*Inviter); ok {
		i.stopTimers()
	}
	s.extStop()
	if s.d != nil {
		s.d.Terminate()
		s.ua.dialogs.Remove(s.d.ID)
		if s.ua.usages[s.d.ID] == usage(s) {
			delete(s.ua.usages, s.d.ID)
		}
	}
	delete(s.ua.sessions, s)
	if h := s.handler; h != nil {
		log := s.ua.log
		s.cbq.push(func() {
			if err := h.Close(); err != nil {
				log.Debug("sip: media handler close", "err", err)
			}
		})
	}
	s.setState(SessionTerminated)
	s.mu.Lock()
	if s.done == nil {
		s.done = closedDone
	} else {
		close(s.done)
	}
	s.mu.Unlock()
}

// mediaContext bounds one call of the media handler.
func (s *Session) mediaContext() (context.Context, context.CancelFunc) {
	d := s.ua.opts.MediaHandlerTimeout
	if d <= 0 {
		d = DefaultMediaHandlerTimeout
	}
	return context.WithTimeout(context.Background(), d)
}

// applyRemote hands a description from the peer to the media handler, on
// the session's lane with a bounded context; a failure ends the call.
// Runs on the loop.
func (s *Session) applyRemote(d media.Description, mo media.Options, what string) {
	h := s.handler
	s.cbq.push(func() {
		ctx, cancel := s.mediaContext()
		err := h.SetDescription(ctx, d, mo)
		cancel()
		if err != nil {
			err = fmt.Errorf("%w: %s: %w", ErrMedia, what, err)
			s.ua.post(func() { s.mediaFailed(err) })
		}
	})
}

// mediaFailed ends the call whose media handler failed: BYE once
// confirmed (after the ACK of our 2xx, RFC 3261 §15), CANCEL before.
// Runs on the loop.
func (s *Session) mediaFailed(err error) {
	if s.ended {
		return
	}
	s.ua.log.Debug("sip: media failure ends the call", "err", err)
	r := EndReason{Cause: EndMediaFailure, Err: err}
	if errors.Is(err, media.ErrMediaTimeout) {
		r.Cause = EndMediaTimeout
	}
	switch {
	case s.d != nil && s.ackWait != nil:
		s.setState(SessionTerminating)
		s.byeAfterAck = func() {
			s.sendBye(nil)
			s.terminate(r)
		}
		return
	case s.d != nil:
		s.sendBye(nil)
	default:
		if i, ok := s.owner.(*Inviter); ok {
			i.cancel("")
			i.finish(err)
		}
	}
	s.terminate(r)
}

// stopped ends a session that outlived Stop's graceful part (no answer
// to its BYE or CANCEL in time, a 2xx never acknowledged …). Runs on the
// loop.
func (s *Session) stopped() {
	if i, ok := s.owner.(*Inviter); ok && i.result != nil {
		i.finish(ErrStopped)
	}
	if inv, ok := s.owner.(*Invitation); ok && inv.ist != nil {
		delete(s.ua.invitations, inv.ist)
	}
	s.terminate(EndReason{Cause: EndStopped, Err: ErrStopped})
}

// confirm takes the dialog of the established call. Runs on the loop.
func (s *Session) confirm(d *dialog.Dialog) {
	s.d = d
	s.ua.usages[d.ID] = s
	s.mu.Lock()
	s.id = d.ID
	s.mu.Unlock()
	s.afterConfirm(d)
}

// onRequest receives the in-dialog requests of the call.
func (s *Session) onRequest(tx *transaction.Server, req *message.Request, d *dialog.Dialog) {
	switch req.Method {
	case "BYE":
		s.ua.reply(tx, 200, "", nil)
		s.terminate(EndReason{Cause: EndRemoteBye})
	case "INVITE":
		s.onReinvite(tx, req)
	case "UPDATE":
		s.onUpdate(tx, req, d)
	case "PRACK":
		s.onPrack(tx, req)
	case "REFER":
		s.onRefer(tx, req)
	case "NOTIFY":
		if ev, _, _ := req.Header.Event(); strings.EqualFold(ev.Value, "refer") {
			s.onReferNotify(tx, req)
			return
		}
		s.ua.reply(tx, 489, "", nil)
	case "INFO", "MESSAGE":
		s.onInfoOrMessage(
			func(code int, edit func(*message.Response)) { s.ua.reply(tx, code, "", edit) },
			func(f func(*IncomingRequest)) { s.ua.deliverOn(&s.cbq, tx, req, tx.Source(), f) },
			req)
	default:
		s.ua.reply(tx, 405, "", func(r *message.Response) { r.Header.Add("Allow", "ACK, BYE, CANCEL, INVITE, INFO, MESSAGE") })
	}
}

// onAck receives the ACK to our 2xx. Runs on the loop.
func (s *Session) onAck(ack *message.Request) {
	if s.ackWait == nil || !s.ackWait.Ack(ack) {
		return
	}
	s.ua.timers.stop(s.ackTimer)
	s.ackWait = nil
	// The 2xx is acknowledged: nothing more goes through the INVITE
	// server transaction, which ends by itself (Timer L). Not keeping it
	// lets an established call hold neither it nor its 2xx.
	s.ist = nil
	if len(ack.Body) > 0 && s.handler != nil {
		// Offerless INVITE: the answer comes in the ACK.
		d := media.Description{ContentType: ack.Header.MediaType(), Body: ack.Body}
		mo := s.mopts
		s.applyRemote(d, mo, "answer in ACK")
	}
	if s.State() == SessionEstablishing {
		s.setState(SessionEstablished)
	}
	if bye := s.byeAfterAck; bye != nil {
		s.byeAfterAck = nil
		bye()
	}
}

// waitAck retransmits our 2xx until the ACK (RFC 3261 §13.3.1.4).
func (s *Session) waitAck(resp *message.Response) {
	t := Timers(s.ua.opts.Timers)
	s.ackWait = dialog.NewAckWait(resp, dialog.Timers{T1: t.T1, T2: t.T2}, time.Now())
	s.armAck()
}

func (s *Session) armAck() {
	if s.ackWait == nil {
		return
	}
	if s.ackTick == nil {
		s.ackTick = s.onAckTick
	}
	s.ua.timers.stop(s.ackTimer) // the entry cannot be in the heap twice
	s.ackEntry = timerEntry{at: s.ackWait.Deadline(), f: s.ackTick}
	s.ackTimer = &s.ackEntry
	s.ua.timers.push(s.ackTimer)
}

// onAckTick is the ackWait timer: the 2xx again, or the end of the call
// when no ACK came.
func (s *Session) onAckTick() {
	if s.ackWait == nil {
		return
	}
	resend, timedOut := s.ackWait.Tick(time.Now())
	if resend != nil && s.ist != nil {
		// Through the INVITE server transaction, which passes 2xx
		// retransmissions on in its Accepted state (RFC 6026).
		if err := s.ua.respond(s.ist, resend); err != nil {
			// The next tick sends it again; the ACK timeout ends
			// the call if none gets through.
			s.ua.log.Debug("sip: 2xx retransmission not sent", "err", err)
		}
	}
	if timedOut {
		s.ackWait = nil
		if bye := s.byeAfterAck; bye != nil {
			s.byeAfterAck = nil
			bye()
		} else {
			s.sendBye(nil)
		}
		s.terminate(EndReason{Cause: EndNoAck})
		return
	}
	s.armAck()
}

// Bye hangs up an established call and waits for the answer to the BYE
// (any answer ends the call).
func (s *Session) Bye(ctx context.Context) error {
	errc := make(chan error, 1)
	if err := s.ua.call(ctx, func() {
		if s.d == nil || s.ended || s.State() == SessionTerminating {
			errc <- fmt.Errorf("%w: no established call (%v)", ErrInvalidState, s.State())
			return
		}
		s.setState(SessionTerminating)
		bye := func() {
			s.sendBye(func(err error) {
				s.terminate(EndReason{Cause: EndLocalBye})
				// In the same loop turn: an application that stops the
				// UserAgent once Done is closed finds errc filled.
				errc <- err
			})
		}
		if s.ackWait != nil {
			// Our 2xx is not acknowledged yet: the BYE waits for the
			// ACK or its timeout (RFC 3261 §15).
			s.byeAfterAck = bye
			return
		}
		bye()
	}); err != nil {
		return err
	}
	return s.ua.await(ctx, errc)
}

// Dispose ends the session whatever its state, as SIP.js's dispose():
// BYE when established, CANCEL for an unanswered outgoing call, 480 for
// an unanswered incoming one. It waits for the session to terminate or for
// ctx.
func (s *Session) Dispose(ctx context.Context) error {
	var err error
	switch o := s.owner.(type) {
	case *Inviter:
		if s.State() == SessionEstablishing {
			err = o.Cancel(ctx, "")
		}
	case *Invitation:
		var unanswered bool
		_ = s.ua.call(ctx, func() { unanswered = !o.answered && !o.ended })
		if unanswered {
			err = o.Reject(ctx, 480, "")
		}
	}
	if st := s.State(); st == SessionEstablished || (st == SessionEstablishing && s.isConfirmed()) {
		err = s.Bye(ctx)
	}
	select {
	case <-s.doneChan():
	case <-ctx.Done():
		if err == nil {
			err = canceled(ctx)
		}
	case <-s.ua.quit:
	}
	return err
}

// isConfirmed reports whether the session has its dialog (an accepted
// incoming call waiting for its ACK, for instance).
func (s *Session) isConfirmed() bool {
	var ok bool
	_ = s.ua.call(context.Background(), func() { ok = s.d != nil && !s.ended })
	return ok
}

// sendBye sends BYE in the dialog; done (if any) gets the outcome. A
// NOTIFY of a transfer still in progress is answered first, so that the
// BYE cannot overtake it (through a proxy the NOTIFY would then get 481
// and the transferor would never learn the outcome); its transaction
// bounds the wait.
func (s *Session) sendBye(done func(error)) {
	if s.notifyBusy || len(s.notifyQueue) > 0 {
		s.afterNotifies = append(s.afterNotifies, func() { s.sendBye(done) })
		return
	}
	bye, err := s.d.NewRequest("BYE")
	if err != nil {
		if done != nil {
			done(err)
		}
		return
	}
	o := &outgoing{req: bye}
	o.rebuild = nextCSeq(&s.d.LocalSeq)
	o.onResponse = func(resp *message.Response) {
		if resp.StatusCode < 200 || o.ended {
			return
		}
		o.ended = true
		if done != nil {
			if resp.StatusCode >= 300 {
				done(responseError(resp))
			} else {
				done(nil)
			}
		}
	}
	o.onError = func(err error) {
		if done != nil {
			done(err)
		}
	}
	if err := s.ua.send(o); err != nil && done != nil {
		done(err)
	}
}

// account is the UserAgent the Session belongs to.
func (s *Session) account() *UserAgent { return s.ua }
