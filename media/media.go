// Package media defines the session-description handler through which a
// SIP session negotiates its media (SIP.js's SessionDescriptionHandler):
// the UserAgent asks it for a local offer or answer and hands it the
// remote one; what flows after that — WebRTC, plain RTP, nothing — is the
// handler's business. Applications bring their own handler, or use
// media/webrtc (pion/webrtc) or a plain-RTP one.
package media

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// Errors a Handler returns.
var (
	// ErrUnsupportedContent reports a body type the handler cannot read
	// (the session answers 415 or ends).
	ErrUnsupportedContent = errors.New("media: unsupported session description type")
	// ErrNotAcceptable reports an offer with nothing the handler can take
	// (the session answers 488).
	ErrNotAcceptable = errors.New("media: offer not acceptable")
	// ErrClosed reports use of a closed handler.
	ErrClosed = errors.New("media: handler closed")
	// ErrNotSupported reports an operation the handler does not offer
	// (e.g. DTMF).
	ErrNotSupported = errors.New("media: not supported")
	// ErrMediaTimeout reports media that stopped: nothing (no RTP, no
	// RTCP) came from the peer for the handler's media timeout while it
	// expected something. A FailureNotifier reports it.
	ErrMediaTimeout = errors.New("media: no media received")
	// ErrICEFailed reports a WebRTC media path whose ICE connectivity
	// failed (RFC 8445 state "failed"). A FailureNotifier reports it.
	ErrICEFailed = errors.New("media: ICE failed")
)

// Description is a session description with its content type, e.g.
// "application/sdp".
type Description struct {
	ContentType string
	Body        []byte
}

// Constraints say which media a session wants, as SIP.js's
// constraints: {audio, video}.
type Constraints struct {
	Audio bool
	Video bool
}

// Options are passed with each description request.
type Options struct {
	// Constraints select the media. The zero value means audio only.
	Constraints Constraints
	// Hold asks for a description that puts the media on hold
	// (a=sendonly, or inactive when the peer holds too).
	Hold bool
	// ICERestart asks an offer to restart the media path: new ICE
	// credentials and candidates for WebRTC (RFC 8445 §9), the current
	// local address for plain RTP. The UserAgent sets it when it
	// re-INVITEs a call after its connection to the server changed.
	ICERestart bool
	// GatheringTimeout bounds how long ICE candidate gathering (or any
	// other preparation) may take before the description is returned
	// with what is there. Zero: the handler's default.
	GatheringTimeout time.Duration
	// Codecs, when not empty, orders and restricts the codecs of this
	// description (a per-call preference over the handler's configured
	// order): encoding names as SDP writes them, compared without regard
	// to case ("PCMU", "PCMA", "G722", "opus", "VP8"). Codecs not listed
	// are left out; names the handler does not know are ignored; when
	// nothing of a media kind remains, the handler's own list stands for
	// that kind. RFC 4733 telephone-event is not a codec here: the
	// handler's DTMF settings decide it.
	Codecs []string
}

// CodecOrder returns the codec names ordered and restricted by prefer:
// those of names that prefer lists, in prefer's order (compared without
// regard to case), or names unchanged when prefer keeps none of them.
// Handlers use it to apply Options.Codecs to their configured list.
func CodecOrder(names, prefer []string) []string {
	if len(prefer) == 0 {
		return names
	}
	var out []string
	for _, p := range prefer {
		for _, n := range names {
			if strings.EqualFold(n, p) && !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, n) }) {
				out = append(out, n)
			}
		}
	}
	if len(out) == 0 {
		return names
	}
	return out
}

// Handler negotiates the media of one session. The UserAgent calls its
// methods from one goroutine at a time, never on its event loop, so a
// handler may block (gathering candidates, opening devices) within the
// context it is given.
type Handler interface {
	// GetDescription returns the local description: an offer when no
	// remote description has been set since the last exchange completed,
	// otherwise the answer to it.
	GetDescription(ctx context.Context, opts Options) (Description, error)
	// SetDescription applies the remote offer or answer. It returns an
	// error wrapping ErrUnsupportedContent or ErrNotAcceptable when it
	// cannot.
	SetDescription(ctx context.Context, d Description, opts Options) error
	// HasDescription reports whether the handler reads contentType.
	HasDescription(contentType string) bool
	// SendDTMF sends tones ("0"–"9", "*", "#", "A"–"D") out of band in
	// the media (RFC 4733); handlers without it return ErrNotSupported.
	SendDTMF(tones string, duration time.Duration) error
	// Close releases the media. It is called once, when the session ends.
	Close() error
}

// AnswerReplacer is implemented by handlers that can put another answer
// to their last offer in force: that of another early dialog of a forked
// INVITE (RFC 3261 §13.2.2.4; several answers to one offer), or the 2xx's
// answer when it differs from the early one applied. The UserAgent uses it
// when the handler has it; without it, the first answer stays.
type AnswerReplacer interface {
	// ReplaceAnswer applies d as the answer to the offer last made, in
	// place of the answer applied. It returns an error wrapping
	// ErrNotAcceptable when d cannot be used; the media then stay as they
	// were.
	ReplaceAnswer(ctx context.Context, d Description, opts Options) error
}

// FailureNotifier is implemented by handlers that can tell when the media
// of their session died: the peer stopped sending (ErrMediaTimeout), or
// the WebRTC path failed (ErrICEFailed). The UserAgent registers a
// function when it makes the handler and ends the call, with a BYE and
// its own end cause, when it is called.
type FailureNotifier interface {
	// OnFailure sets the function called when the media fail, with an
	// error wrapping ErrMediaTimeout, ErrICEFailed or another cause. The
	// handler calls it at most once, from a goroutine of its own, never
	// with one of its locks held, and never after Close returns.
	OnFailure(f func(err error))
}

// Factory makes the Handler of a new session. info tells which side the
// UserAgent is on; the factory may keep it to label its media.
type Factory func(info SessionInfo) (Handler, error)

// SessionInfo describes the session a handler is made for.
type SessionInfo struct {
	// ID identifies the session (its Call-ID and tags, once known).
	ID string
	// Incoming is true for a call the UserAgent answers.
	Incoming bool
}
