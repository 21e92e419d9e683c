package sip

import (
	"runtime"
	"sync"
	"testing"
	"unsafe"
	"weak"
)

// TestFinishedCallsKeepNoRequests: once a call has ended (BYE answered),
// its INVITE and the buffer it was read into are no longer reachable,
// although the INVITE's server transaction lingers for 64·T1 (Timer L)
// and the merged-request map keeps its key as long: a finished call holds
// a few hundred bytes, not its messages (the BYE's side is checked by
// internal/transaction's TestFinishedServerKeepsNoRequest).
func TestFinishedCallsKeepNoRequests(t *testing.T) {
	const calls = 20
	var mu sync.Mutex
	var reqs []weak.Pointer[byte]
	ua, call := rawUAS(t, true, nil, func(o *UserAgentOptions) {
		accept := o.Delegate.OnInvite
		o.Delegate.OnInvite = func(inv *Invitation) {
			req := inv.Request
			mu.Lock()
			reqs = append(reqs, weak.Make(unsafe.StringData(req.Header.CallID())))
			mu.Unlock()
			accept(inv)
		}
	})
	defer stopUA(ua)
	for i := range calls {
		call(i)
	}
	runtime.GC()
	runtime.GC()
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) < calls {
		t.Fatalf("%d requests seen for %d calls", len(reqs), calls)
	}
	alive := 0
	for _, w := range reqs {
		if w.Value() != nil {
			alive++
		}
	}
	if alive > 0 {
		t.Errorf("%d of %d requests of finished calls still reachable", alive, len(reqs))
	}
}
