package rtp

import "github.com/sipua/sip/media/audio"

// RFC 4733 sending parameters (media/audio's).
const (
	dtmfDefault     = audio.DTMFDefaultDuration
	dtmfMinDuration = audio.DTMFMinDuration
	dtmfMaxDuration = audio.DTMFMaxDuration
	dtmfGap         = audio.DTMFGap
	dtmfPause       = audio.DTMFPause
)

// tone is a queued DTMF tone: an RFC 4733 event code and its length in
// samples, or a pause.
type tone struct {
	code    byte
	pause   bool
	samples int
}
