package sip

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sipua/sip/transport"
)

// DefaultCallRecoveryTimeout is how long an established call waits for
// its connection to the server to come back and for its re-INVITE to be
// answered, when UserAgentOptions.CallRecoveryTimeout is zero.
const DefaultCallRecoveryTimeout = 30 * time.Second

// callRetryDelay is the pause between two recovery re-INVITEs that failed
// for a reason that may pass (408, 480, 503, no connection yet …).
const callRetryDelay = time.Second

// MediaState says whether a call's media path is usable, as far as the
// UserAgent can tell from its connection to the server.
type MediaState int

// Media states.
const (
	// MediaActive: the call is as it was set up.
	MediaActive MediaState = iota
	// MediaInterrupted: the connection to the server dropped during the
	// call. The UserAgent reconnects, registers again and re-INVITEs the
	// peer with its new Contact (and, for WebRTC, an ICE restart); until
	// then the peer cannot reach this side and media may not flow.
	MediaInterrupted
	// MediaRestored: the re-INVITE after a reconnection was answered:
	// signalling reaches this side again and the media were renegotiated.
	MediaRestored
)

func (m MediaState) String() string {
	switch m {
	case MediaActive:
		return "active"
	case MediaInterrupted:
		return "interrupted"
	case MediaRestored:
		return "restored"
	}
	return "unknown"
}

// recoveryState is a session's part in surviving a lost connection.
type recoveryState struct {
	media stateBox[MediaState]
	// Owned by the loop.
	interrupted bool
	running     bool // a recovery goroutine runs
	deadline    time.Time
	timer       *timerEntry
}

// MediaState returns the call's media state (see OnMediaStateChange).
func (s *Session) MediaState() MediaState { return s.rec.media.get() }

// OnMediaStateChange adds a listener for media interruptions (the
// connection to the server dropped during the call) and restorations (the
// call was moved to the new connection), and returns a function removing
// it. Listeners run on the UserAgent's callback goroutine, in order.
func (s *Session) OnMediaStateChange(f func(MediaState)) (remove func()) {
	return s.rec.media.listen(f)
}

func (s *Session) setMediaState(m MediaState) { s.rec.media.set(m, -1, &s.cbq) }

func (ua *UserAgent) recoveryTimeout() time.Duration {
	if d := ua.opts.CallRecoveryTimeout; d != 0 {
		return d
	}
	return DefaultCallRecoveryTimeout
}

// onFlowLost marks the registrations made on the lost connection
// Unregistered (the registrar cannot reach this side through it any more;
// they are renewed on the next connection) and the established calls
// interrupted. Runs on the loop.
func (ua *UserAgent) onFlowLost(err error) {
	for r := range ua.registerers {
		if r.State() == Registered {
			r.setState(Unregistered)
		}
	}
	if ua.opts.CallRecoveryTimeout < 0 {
		return
	}
	gaveUp := errors.Is(err, transport.ErrGaveUp)
	for s := range ua.sessions {
		if s.ended || s.d == nil || s.State() != SessionEstablished {
			continue
		}
		if gaveUp {
			s.endLost(fmt.Errorf("%w: %w", ErrTransportClosed, err), 0)
			continue
		}
		if s.ackWait != nil {
			// Our 2xx to a re-INVITE awaits its ACK, which cannot come
			// (nor can our retransmissions go) over the lost connection:
			// the recovery re-INVITE supersedes that exchange.
			s.ua.timers.stop(s.ackTimer)
			s.ackWait = nil
		}
		if s.rec.interrupted {
			continue
		}
		s.rec.interrupted = true
		s.rec.deadline = time.Now().Add(ua.recoveryTimeout())
		s.rec.timer = ua.afterAt(s.rec.deadline, func() {
			if s.rec.interrupted && !s.ended {
				s.endLost(fmt.Errorf("%w: call not recovered within %v", ErrTimeout, ua.recoveryTimeout()), 0)
			}
		})
		s.setMediaState(MediaInterrupted)
	}
}

// onFlowRestored starts moving the interrupted calls to the new
// connection, once the registrations on it are done (each call's peer may
// need to reach us by the new registration). Runs on the loop.
func (ua *UserAgent) onFlowRestored() {
	for s := range ua.sessions {
		if !s.rec.interrupted || s.rec.running || s.ended {
			continue
		}
		s.rec.running = true
		ua.recoveries.Add(1)
		go func() {
			defer ua.recoveries.Done()
			s.recover()
		}()
	}
}

// endLost ends a call that could not be moved to a new connection: BYE
// when there is a connection to send it on, then EndConnectionLost.
// Runs on the loop.
func (s *Session) endLost(err error, code int) {
	if s.ended {
		return
	}
	s.ua.timers.stop(s.rec.timer)
	s.rec.interrupted = false
	if code != 481 && s.d != nil && s.ua.connected.Load() {
		s.sendBye(nil)
	}
	s.terminate(EndReason{Cause: EndConnectionLost, StatusCode: code, Err: err})
}

// recover re-INVITEs the peer with the new Contact and an ICE restart
// until it answers, the peer refuses, or the recovery deadline passes.
// Runs on a goroutine of its own.
func (s *Session) recover() {
	var deadline time.Time
	var mo = s.mopts
	_ = s.ua.call(context.Background(), func() { deadline = s.rec.deadline })
	s.mu.Lock()
	mo.Hold = s.held
	s.mu.Unlock()
	mo.ICERestart = true
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for {
		err := s.retryGlare(ctx, 0, func() error { return s.reinviteOnce(ctx, ReinviteOptions{Media: mo}, true) })
		var re *ResponseError
		switch {
		case err == nil:
			s.ua.post(func() {
				s.rec.running = false
				if s.ended {
					return
				}
				s.rec.interrupted = false
				s.ua.timers.stop(s.rec.timer)
				s.setMediaState(MediaRestored)
			})
			return
		case errors.Is(err, ErrStopped):
			return
		case errors.As(err, &re) && !retryableRecovery(re.StatusCode):
			s.ua.post(func() {
				s.rec.running = false
				s.endLost(fmt.Errorf("sip: re-INVITE after reconnection refused: %w", err), re.StatusCode)
			})
			return
		}
		s.ua.log.Debug("sip: call recovery re-INVITE failed; trying again", "err", err)
		t := time.NewTimer(callRetryDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		case <-s.doneChan():
			t.Stop()
		case <-s.ua.quit:
			t.Stop()
			return
		}
		if ctx.Err() != nil || s.isDone() {
			s.ua.post(func() {
				s.rec.running = false
				s.endLost(fmt.Errorf("%w: call not recovered: %w", ErrTimeout, err), 0)
			})
			return
		}
	}
}

func (s *Session) isDone() bool {
	select {
	case <-s.doneChan():
		return true
	default:
		return false
	}
}

// retryableRecovery reports the final responses to a recovery re-INVITE
// that may pass: the peer or the proxy in between is itself reconnecting
// or busy.
func retryableRecovery(code int) bool {
	switch code {
	case 408, 477, 480, 491, 500, 502, 503, 504: // 477: Kamailio could not send to the next hop
		return true
	}
	return false
}
