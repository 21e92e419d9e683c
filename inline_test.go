package sip

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSlowCallbackOnReader: the UDP reader runs the callbacks of the
// calls it handled in place; one that blocks (OnInvite of the first call)
// does not hold the others: within the transport's Relief another reader
// takes the socket over, and the next calls go through from start to end
// while the first still waits. Then the first completes too.
func TestSlowCallbackOnReader(t *testing.T) {
	release := make(chan struct{})
	var first atomic.Bool
	ua, call := rawUAS(t, false, nil, func(o *UserAgentOptions) {
		o.Delegate.OnInvite = func(inv *Invitation) {
			if first.CompareAndSwap(false, true) {
				<-release
			}
			if err := inv.Accept(context.Background(), AcceptOptions{}); err != nil {
				t.Error(err)
			}
		}
	})
	defer stopUA(ua)
	other, err := rawCaller(t, ua, false)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { call(0); close(done) }()
	require.Eventually(t, first.Load, 5*time.Second, time.Millisecond)
	start := time.Now()
	for i := range 5 {
		other(i)
	}
	assert.Less(t, time.Since(start), 2*time.Second, "calls went through while a callback blocked")
	select {
	case <-done:
		t.Fatal("the blocked call completed")
	default:
	}
	assert.Positive(t, ua.core.inline.ran.Load(), "callbacks ran on the reader")
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the first call did not complete")
	}
}
