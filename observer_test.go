package sip

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/media"
)

// obsLog records what an Observer is told.
type obsLog struct {
	mu     sync.Mutex
	events []string
	calls  []CallEvent
	txs    []TransactionEvent
}

func (l *obsLog) add(s string, c *CallEvent, tx *TransactionEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, s)
	if c != nil {
		l.calls = append(l.calls, *c)
	}
	if tx != nil {
		l.txs = append(l.txs, *tx)
	}
}

func (l *obsLog) observer() *Observer {
	return &Observer{
		CallStarted:      func(e CallEvent) { l.add("started", &e, nil) },
		CallAnswered:     func(e CallEvent) { l.add("answered", &e, nil) },
		CallEnded:        func(e CallEvent) { l.add("ended", &e, nil) },
		TransactionEnded: func(e TransactionEvent) { l.add("tx", nil, &e) },
		// Retransmissions are counted in events only: txs holds the
		// transactions that ended.
		Retransmission: func(e TransactionEvent) { l.add("retransmission", nil, nil) },
	}
}

func (l *obsLog) snapshot() ([]string, []CallEvent, []TransactionEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...), append([]CallEvent(nil), l.calls...), append([]TransactionEvent(nil), l.txs...)
}

// TestObserverCall: the Observer of the caller sees the call start, be
// answered with its setup time, and end with its reason and duration; it
// sees the INVITE and BYE client transactions end.
func TestObserverCall(t *testing.T) {
	bob, _ := callUA(t, "bob", func(inv *Invitation) {
		time.Sleep(20 * time.Millisecond) // a measurable setup time
		assert.NoError(t, inv.Accept(ctx5(t), AcceptOptions{Media: media.Options{Constraints: media.Constraints{Audio: true}}}))
	})
	var log obsLog
	hs := &TestMediaFactory{SDP: testSDP}
	alice, err := NewUserAgent(UserAgentOptions{
		URI:          "sip:alice@127.0.0.1",
		Transport:    TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
		MediaFactory: hs.New,
		Observer:     log.observer(),
		// Short timers: the transactions end (Timers M and K) quickly.
		Timers: Timers{T1: 10 * time.Millisecond, T2: 40 * time.Millisecond, T4: 50 * time.Millisecond},
	})
	require.NoError(t, err)
	require.NoError(t, alice.Start(ctx5(t)))
	t.Cleanup(func() { assert.NoError(t, alice.Stop(context.Background())) })

	call, err := NewInviter(alice, addr(bob), InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx5(t), InviteOptions{}))
	waitState(t, call.Session, SessionEstablished)
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, call.Bye(ctx5(t)))
	require.Eventually(t, func() bool {
		_, _, txs := log.snapshot()
		return len(txs) >= 2
	}, 5*time.Second, 10*time.Millisecond, "the INVITE and BYE transactions end (Timer K/D on UDP)")

	events, calls, txs := log.snapshot()
	require.Len(t, calls, 3, "%v", events)
	var callEvents []string
	retrans := 0
	for _, e := range events {
		switch e {
		case "started", "answered", "ended":
			callEvents = append(callEvents, e)
		case "retransmission":
			retrans++
		}
	}
	assert.Equal(t, []string{"started", "answered", "ended"}, callEvents)
	// T1 is 10 ms and bob answers after 20: Timer A sent the INVITE again.
	assert.Positive(t, retrans, "%v", events)
	assert.False(t, calls[0].Incoming)
	assert.Same(t, call.Session, calls[1].Session)
	assert.GreaterOrEqual(t, calls[1].Setup, 20*time.Millisecond)
	assert.Equal(t, calls[1].Setup, calls[2].Setup)
	assert.GreaterOrEqual(t, calls[2].Duration, 10*time.Millisecond)
	assert.Equal(t, EndLocalBye, calls[2].Reason.Cause)
	methods := map[string]bool{}
	for _, tx := range txs {
		assert.True(t, tx.Client)
		methods[tx.Method] = true
	}
	assert.Equal(t, map[string]bool{"INVITE": true, "BYE": true}, methods)
}

// TestObserverNilCostsNothing: without an Observer the hooks allocate
// nothing.
func TestObserverNilCostsNothing(t *testing.T) {
	ua, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1"})
	require.NoError(t, err)
	s := &Session{ua: ua}
	allocs := testing.AllocsPerRun(1000, func() {
		s.obsSession(SessionEstablishing)
		s.obsSession(SessionEstablished)
		s.obsSession(SessionTerminated)
	})
	assert.Zero(t, allocs)
	assert.True(t, s.obs.started.IsZero(), "no timestamps are taken")
}

// BenchmarkObserverNil measures the hooks of a call without an Observer.
func BenchmarkObserverNil(b *testing.B) {
	ua, err := NewUserAgent(UserAgentOptions{URI: "sip:alice@127.0.0.1"})
	require.NoError(b, err)
	s := &Session{ua: ua}
	b.ReportAllocs()
	for b.Loop() {
		s.obsSession(SessionEstablishing)
		s.obsSession(SessionEstablished)
		s.obsSession(SessionTerminated)
	}
}
