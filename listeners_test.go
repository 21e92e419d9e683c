package sip

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Listeners run in the order they were added, each state in the order it
// was set, outside every lock: a listener may read the state, add or
// remove listeners.
func TestStateBoxListenersInOrder(t *testing.T) {
	var b stateBox[int]
	var q callbackQueue
	var mu sync.Mutex
	var got []string
	seen := make(chan int)
	record := func(s string) {
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
	}
	var removeB func()
	b.listen(func(s int) {
		record("a" + itoa(s))
		_ = b.get() // no deadlock: not under the box's lock
		if s == 2 {
			removeB()
			removeB() // twice is harmless
			b.listen(func(s int) { record("late" + itoa(s)) })
		}
	})
	removeB = b.listen(func(s int) { record("b" + itoa(s)) })
	b.listen(func(s int) {
		record("c" + itoa(s))
		seen <- s
	})
	for s := 1; s <= 4; s++ {
		require.True(t, b.set(s, 99, &q))
		require.Equal(t, s, <-seen)
	}
	assert.False(t, b.set(4, 99, &q), "same state: no change")
	// Every call of state 4 is queued before c's; "late" is after c.
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 12 }, 5*time.Second, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	// State 2's calls were queued before its first listener removed b:
	// b still sees 2, and "late" starts with state 3.
	assert.Equal(t, []string{"a1", "b1", "c1", "a2", "b2", "c2", "a3", "c3", "late3", "a4", "c4", "late4"}, got)
}

// A final state is kept: later sets do nothing.
func TestStateBoxFinal(t *testing.T) {
	var b stateBox[int]
	var q callbackQueue
	calls := make(chan int, 4)
	b.listen(func(s int) { calls <- s })
	assert.True(t, b.set(9, 9, &q))
	assert.False(t, b.set(1, 9, &q))
	assert.Equal(t, 9, b.get())
	assert.Equal(t, 9, <-calls)
	select {
	case s := <-calls:
		t.Fatalf("listener called with %d after the final state", s)
	case <-time.After(50 * time.Millisecond):
	}
}

// The UserAgent's and the Registerer's listeners come from the same
// registry: in order, and removable.
func TestUserAgentStateListenersInOrder(t *testing.T) {
	ua, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1",
		Transport: TransportOptions{Listen: []string{"udp://127.0.0.1:0"}}})
	require.NoError(t, err)
	got := make(chan string, 16)
	for _, name := range []string{"1", "2", "3", "4", "5"} {
		ua.OnStateChange(func(s UserAgentState) { got <- name + s.String() })
	}
	remove := ua.OnStateChange(func(UserAgentState) { got <- "removed" })
	remove()
	require.NoError(t, ua.Start(ctx5(t)))
	for _, want := range []string{"1Started", "2Started", "3Started", "4Started", "5Started"} {
		assert.Equal(t, want, <-got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, ua.Stop(ctx))
	for _, want := range []string{"1Stopped", "2Stopped", "3Stopped", "4Stopped", "5Stopped"} {
		select {
		case g := <-got:
			assert.Equal(t, want, g)
		case <-time.After(5 * time.Second):
			t.Fatal("no Stopped")
		}
	}
}
