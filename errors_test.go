package sip

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/message"
)

// The String methods of the package's enums describe any value, declared
// or not, without panicking.
func TestStringOfUnknownValues(t *testing.T) {
	assert.Equal(t, "EndCause(99)", EndCause(99).String())
	assert.Equal(t, "EndCause(-1)", EndCause(-1).String())
	assert.Equal(t, "none", EndNone.String())
	assert.Equal(t, "connection lost", EndConnectionLost.String())
	// Every declared cause has its name: the last one is named too.
	assert.Len(t, endCauseNames, int(EndNoAnswer)+1)
	for _, s := range []interface{ String() string }{
		EndCause(1 << 20), SessionState(99), RegistererState(99), SubscriptionState(99),
		PublisherState(99), MediaState(99), UserAgentState(99), EarlyMediaPolicy(99),
		EndReason{Cause: EndCause(42)},
	} {
		assert.NotPanics(t, func() { _ = s.String() })
	}
}

// A blocking call whose context ends before the event loop takes it
// returns an error that wraps ErrCanceled and the context's error.
func TestContextErrorsWrapErrCanceled(t *testing.T) {
	ua := startUA(t, "alice", UserAgentDelegate{})
	// Hold the loop, so that the calls below are not served before
	// their contexts end.
	started, release := make(chan struct{}), make(chan struct{})
	ua.post(func() { close(started); <-release })
	<-started
	defer close(release)

	req, err := message.ParseRequest([]byte("MESSAGE sip:alice@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-ctx\r\nFrom: <sip:b@127.0.0.1>;tag=1\r\n" +
		"To: <sip:alice@127.0.0.1>\r\nCall-ID: ctx\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"))
	require.NoError(t, err)
	// A transaction of its own: the Respond queued below runs once the
	// loop is let go, after the test has its answer.
	tx, _ := transaction.NewServer(req, false, transaction.Config{}, time.Now(), nil)
	ir := &IncomingRequest{Request: req, ua: ua, tx: tx}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = ir.Respond(ctx, ir.NewResponse(200, ""))
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCanceled)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	inv := &Invitation{Session: &Session{ua: ua}, Request: req}
	err = inv.Reject(ctx2, 486, "")
	assert.ErrorIs(t, err, ErrCanceled)
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, errors.Is(err, ErrStopped))
}
