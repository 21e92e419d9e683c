package webrtc

import (
	"fmt"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/sipua/sip/media"
)

// DefaultDisconnectedTimeout is how long ICE may stay disconnected before
// the media are reported failed, when Config.DisconnectedTimeout is zero.
const DefaultDisconnectedTimeout = 15 * time.Second

var _ media.FailureNotifier = (*Handler)(nil)

// OnFailure sets the function called, once, when the media die: ICE
// connectivity failed (no candidate pair works: the peer is gone, a path
// is blocked, or no candidate could be gathered), stayed disconnected
// longer than Config.DisconnectedTimeout, or DTLS failed. The error wraps
// media.ErrICEFailed. It is called from a goroutine of the handler, never
// with its locks held and never after Close returns. The UserAgent sets
// it (media.FailureNotifier) to end the call with EndMediaFailure. f must
// not call Close itself (Close waits for it). Stats.Failure keeps the
// error.
func (h *Handler) OnFailure(f func(err error)) { h.onFail.Store(&f) }

// iceState follows the ICE connection state for failure reporting.
func (h *Handler) iceState(s pion.ICEConnectionState) {
	switch s {
	case pion.ICEConnectionStateFailed:
		h.fail(fmt.Errorf("webrtc: ICE connectivity failed: %w", media.ErrICEFailed))
	case pion.ICEConnectionStateDisconnected:
		d := h.cfg.DisconnectedTimeout
		if d == 0 {
			d = DefaultDisconnectedTimeout
		}
		if d < 0 {
			return
		}
		h.mu.Lock()
		if h.discTimer == nil && !h.closed {
			h.discTimer = time.AfterFunc(d, func() {
				h.fail(fmt.Errorf("webrtc: ICE disconnected for %v: %w", d, media.ErrICEFailed))
			})
		}
		h.mu.Unlock()
	default:
		h.mu.Lock()
		if h.discTimer != nil {
			h.discTimer.Stop()
			h.discTimer = nil
		}
		h.mu.Unlock()
	}
}

// fail records the media failure and reports it, once, unless the
// handler is closed.
func (h *Handler) fail(err error) {
	h.mu.Lock()
	if h.closed || h.failure != nil {
		h.mu.Unlock()
		return
	}
	h.failure = err
	h.wg.Add(1) // Close waits for the callback
	h.mu.Unlock()
	h.log.Warn("media failed", "err", err)
	go func() { // not on pion's goroutine, which the callback could stall
		defer h.wg.Done()
		if f := h.onFail.Load(); f != nil && *f != nil {
			(*f)(err)
		}
	}()
}
