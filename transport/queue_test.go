package transport

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

// TestTrySendNeverWaits: TrySendRequest hands messages to an open
// connection's write queue and returns at once, names the target to dial
// when there is no connection, and refuses a message once the queue of a
// peer that does not read is full; a queued write that then fails comes
// back through OnFail.
func TestTrySendNeverWaits(t *testing.T) {
	// A peer that never reads: a synchronous pipe whose far end nobody
	// reads, so the first write blocks (until WriteTimeout).
	remote := netip.MustParseAddrPort("127.0.0.1:5999")
	var far net.Conn
	dial := func(_ context.Context, _, _ string) (net.Conn, error) {
		near, f := net.Pipe()
		far = f
		return addrConn{near, remote}, nil
	}
	tr := New(Config{WriteQueue: 4, WriteTimeout: 300 * time.Millisecond, DialContext: dial, Keepalive: Keepalive{Interval: -1}})
	defer tr.Close()
	tg := Target{Proto: TCP, Addr: remote}

	_, err := tr.TrySendRequest(testRequest("OPTIONS"), tg, SendOptions{})
	var pe *PendingError
	require.ErrorAs(t, err, &pe, "no connection yet")
	assert.ErrorIs(t, err, ErrPending)
	assert.Equal(t, tg, pe.Target)

	f, err := tr.Dial(ctxT(t), tg)
	require.NoError(t, err)
	defer far.Close()

	var failed atomic.Int32
	var failErr atomic.Value
	onFail := func(err error) { failed.Add(1); failErr.Store(err) }
	var full error
	var slowest time.Duration
	sent := 0
	for range 100 {
		t0 := time.Now()
		got, err := tr.TrySendRequest(testRequest("MESSAGE"), tg, SendOptions{OnFail: onFail})
		slowest = max(slowest, time.Since(t0))
		if err != nil {
			full = err
			break
		}
		sent++
		assert.Equal(t, f, got)
	}
	t.Logf("%d queued before the queue was full; slowest TrySendRequest %v", sent, slowest)
	require.ErrorIs(t, full, ErrQueueFull, "a peer that does not read fills the queue")
	// WriteQueue 4 waiting, plus the batch the writer took (at most 4),
	// depending on when the writer ran.
	assert.LessOrEqual(t, sent, 8, "WriteQueue 4, plus the batch being written")
	assert.GreaterOrEqual(t, sent, 4)
	assert.Less(t, slowest, 50*time.Millisecond, "TrySendRequest waited")

	// The blocked write times out: it and the messages queued behind it
	// fail, each through OnFail, and the connection is closed.
	require.Eventually(t, func() bool { return int(failed.Load()) == sent }, 3*time.Second, 5*time.Millisecond)
	var ne net.Error
	err = failErr.Load().(error)
	assert.True(t, errors.As(err, &ne) || errors.Is(err, ErrNoConnection), "%v", err)
	_, err = tr.TrySendRequest(testRequest("OPTIONS"), f.Target(), SendOptions{})
	assert.ErrorIs(t, err, ErrNoConnection)
}

// addrConn gives a net.Pipe end TCP addresses.
type addrConn struct {
	net.Conn
	remote netip.AddrPort
}

func (c addrConn) LocalAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:40000"))
}
func (c addrConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }

// TestResolveNow resolves numeric URIs at once and names the host that
// needs DNS otherwise.
func TestResolveNow(t *testing.T) {
	tr := New(Config{})
	defer tr.Close()
	u, err := message.ParseURI("sip:bob@192.0.2.7:5070;transport=tcp")
	require.NoError(t, err)
	ts, err := tr.ResolveNow(u)
	require.NoError(t, err)
	assert.Equal(t, []Target{{Proto: TCP, Addr: netip.MustParseAddrPort("192.0.2.7:5070")}}, ts)

	u, err = message.ParseURI("sip:bob@example.invalid")
	require.NoError(t, err)
	_, err = tr.ResolveNow(u)
	var pe *PendingError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "example.invalid", pe.Target.Host)
}

// gatedConn counts writes; the first one waits for gate.
type gatedConn struct {
	net.Conn
	gate   chan struct{}
	writes atomic.Int32
}

func (c *gatedConn) Write(b []byte) (int, error) {
	if c.writes.Add(1) == 1 {
		<-c.gate
	}
	return c.Conn.Write(b)
}

// TestQueueCoalesces: messages that wait in a TCP connection's write queue
// while a write is under way go out together in one write, in order and
// intact.
func TestQueueCoalesces(t *testing.T) {
	ctx := ctxT(t)
	box := newBatchInbox()
	srv := New(Config{OnMessages: box.onMessages})
	defer srv.Close()
	addr, err := srv.Listen(ctx, TCP, "127.0.0.1:0")
	require.NoError(t, err)
	gc := &gatedConn{gate: make(chan struct{})}
	cli := New(Config{Keepalive: Keepalive{Interval: -1}, DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, a)
		gc.Conn = nc
		return gc, err
	}})
	defer cli.Close()
	tg := Target{Proto: TCP, Addr: addr}
	_, err = cli.Dial(ctx, tg)
	require.NoError(t, err)
	const n = 50
	for i := range n {
		_, err := cli.TrySendRequest(batchRequest(i), tg, SendOptions{})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return gc.writes.Load() == 1 }, 5*time.Second, time.Millisecond, "the first write is under way")
	close(gc.gate)
	msgs := box.wait(t, n)
	checkBatch(t, msgs, n)
	for i, in := range msgs {
		assert.Equal(t, strconv.Itoa(i), in.Msg.Headers().Get("X-N"), "in order")
	}
	// The first message went alone; the other 49 (about 190 KB) waited
	// and went in writes of up to 64 KiB.
	t.Logf("%d writes for %d messages", gc.writes.Load(), n)
	assert.LessOrEqual(t, gc.writes.Load(), int32(6))
}
