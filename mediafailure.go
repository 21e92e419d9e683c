package sip

// handlerFailed is the media.FailureNotifier callback of a session's
// handler: an established call whose media died ends with a BYE and
// EndMediaTimeout or EndMediaFailure (see mediaFailed). Called from a
// goroutine of the handler; the work runs on the event loop.
func (s *Session) handlerFailed(err error) {
	s.ua.post(func() {
		if s.ended || s.d == nil || s.State() != SessionEstablished {
			s.ua.log.Debug("sip: media failure outside an established call", "err", err)
			return
		}
		s.ua.log.Info("sip: media failed, hanging up", "call", s.d.ID.CallID, "err", err)
		s.mediaFailed(err)
	})
}
