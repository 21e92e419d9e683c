package sip

import (
	"testing"

	"github.com/sipua/sip/media"
)

// TestCallHops checks how often a call that sipp's UAC makes (INVITE,
// 200, ACK, BYE, 200) leaves the event loop for a callback lane: once for
// OnInvite (which accepts), and otherwise only for what the application
// asked to see. The ACK, the BYE and its 200 and the state changes
// nobody listens to stay on the loop.
func TestCallHops(t *testing.T) {
	const calls = 20
	for _, tc := range []struct {
		name     string
		listener bool
		mf       media.Factory
		min, max int64 // lane runs per call (callbacks pushed while the lane still runs share its run)
	}{
		// OnInvite only.
		{"no media, no listener", false, nil, 1, 1},
		// OnInvite, and the media handler's Close at the end (it may
		// block: never on the loop).
		{"media, no listener", false, func(media.SessionInfo) (media.Handler, error) { return benchAnswer{}, nil }, 1, 2},
		// OnInvite, Established, Terminated (Close rides along when the
		// lane is still busy).
		{"media and listener", true, func(media.SessionInfo) (media.Handler, error) { return benchAnswer{}, nil }, 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ua, call := rawUAS(t, tc.listener, tc.mf)
			for i := range calls {
				call(i)
			}
			stopUA(ua)
			runs := ua.lanes.runs.Load()
			if runs < tc.min*calls || runs > tc.max*calls {
				t.Errorf("%d lane runs for %d calls, want %d to %d per call", runs, calls, tc.min, tc.max)
			}
		})
	}
}
