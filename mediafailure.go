package sip

import (
	"errors"

	"github.com/sipua/sip/media"
)

// mediaFailed is the media.FailureNotifier callback of a session's
// handler: an established call whose media died ends with a BYE and
// EndMediaTimeout or EndMediaFailure. Called from a goroutine of the
// handler; the work runs on the event loop.
func (s *Session) mediaFailed(err error) {
	s.ua.post(func() {
		if s.ended || s.d == nil || s.State() != SessionEstablished {
			s.ua.log.Debug("sip: media failure outside an established call", "err", err)
			return
		}
		cause := EndMediaFailure
		if errors.Is(err, media.ErrMediaTimeout) {
			cause = EndMediaTimeout
		}
		s.ua.log.Info("sip: media failed, hanging up", "call", s.d.ID.CallID, "err", err)
		s.setState(SessionTerminating)
		s.sendBye(nil)
		s.terminate(EndReason{Cause: cause, Err: err})
	})
}
