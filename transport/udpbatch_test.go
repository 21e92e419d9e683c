package transport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/ipv4"

	"github.com/sipua/sip/message"
)

// batchInbox collects what OnMessages hands over, with the size of each
// batch.
type batchInbox struct {
	mu      sync.Mutex
	msgs    []Incoming
	batches []int
	more    chan struct{}
}

func newBatchInbox() *batchInbox { return &batchInbox{more: make(chan struct{}, 1)} }

func (b *batchInbox) onMessages(ins []Incoming) {
	b.mu.Lock()
	b.msgs = append(b.msgs, ins...)
	b.batches = append(b.batches, len(ins))
	b.mu.Unlock()
	select {
	case b.more <- struct{}{}:
	default:
	}
}

// wait waits until n messages have come, or fails the test.
func (b *batchInbox) wait(t *testing.T, n int) []Incoming {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		b.mu.Lock()
		got := len(b.msgs)
		if got >= n {
			out := append([]Incoming(nil), b.msgs...)
			b.mu.Unlock()
			return out
		}
		b.mu.Unlock()
		select {
		case <-b.more:
		case <-deadline:
			t.Fatalf("%d of %d messages received", got, n)
		}
	}
}

// batchBody is the body of message i of a batch test: sizes from a few
// bytes to several kilobytes, each recognisable.
func batchBody(i int) []byte {
	size := []int{10, 200, 1300, 4000, 9000, 30}[i%6] + i
	return bytes.Repeat([]byte{byte('a' + i%26)}, size)
}

func batchRequest(i int) *message.Request {
	req := testRequest("MESSAGE")
	req.Header.Set("X-N", strconv.Itoa(i))
	req.Header.Set("Content-Type", "text/plain")
	req.Body = batchBody(i)
	return req
}

// batchResponse is response i to a request from to, whose Via names to:
// TrySendResponse sends it there.
func batchResponse(i int, to netip.AddrPort) *message.Response {
	req := batchRequest(i)
	req.Header.Del("Via")
	req.Header.Add("Via", "SIP/2.0/UDP "+to.String()+";branch="+message.NewBranch())
	resp := message.NewResponse(req, 200, "OK", "")
	resp.Header.Set("X-N", strconv.Itoa(i))
	resp.Header.Set("Content-Type", "text/plain")
	resp.Body = batchBody(i)
	return resp
}

// checkBatch checks that every message 0..n-1 came once with its body.
func checkBatch(t *testing.T, msgs []Incoming, n int) {
	t.Helper()
	seen := make([]bool, n)
	for _, in := range msgs {
		require.NoError(t, in.Err)
		require.NotNil(t, in.Msg)
		i, err := strconv.Atoi(in.Msg.Headers().Get("X-N"))
		require.NoError(t, err)
		require.False(t, seen[i], "message %d twice", i)
		seen[i] = true
		require.Equal(t, batchBody(i), in.Msg.Content(), "body of message %d", i)
	}
}

// sendBatch hands n responses to cli (its socket local) for a peer at
// to inside Batches of round, so that they leave with sendmmsg.
func sendBatch(t *testing.T, cli *Transport, local, to netip.AddrPort, n, round int) {
	t.Helper()
	flow := Flow{Proto: UDP, Local: local, Remote: to}
	for start := 0; start < n; start += round {
		var errs []error
		cli.Batch(func() {
			for i := start; i < min(start+round, n); i++ {
				_, err := cli.TrySendResponse(batchResponse(i, to), flow, nil)
				errs = append(errs, err)
			}
		})
		require.NoError(t, errors.Join(errs...))
		// Let the receiver keep up: a loopback socket buffer holds a
		// few hundred of these.
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUDPBatchIO sends 600 datagrams of mixed sizes between two
// Transports on loopback (IPv4 and IPv6), written in batches and read in
// batches: every one arrives once and intact, the sender wrote several
// per system call and the receiver read several per system call, and the
// receiver's OnMessages got batches of more than one.
func TestUDPBatchIO(t *testing.T) {
	for _, tc := range []struct{ name, addr string }{{"IPv4", "127.0.0.1:0"}, {"IPv6", "[::1]:0"}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			box := newBatchInbox()
			srv := New(Config{OnMessages: box.onMessages})
			defer srv.Close()
			addr, err := srv.Listen(ctx, UDP, tc.addr)
			if err != nil && tc.name == "IPv6" {
				t.Skipf("no IPv6 loopback: %v", err)
			}
			require.NoError(t, err)
			cli := New(Config{})
			defer cli.Close()
			local, err := cli.Listen(ctx, UDP, tc.addr)
			require.NoError(t, err)

			const n = 600
			sendBatch(t, cli, local, addr, n, 50)
			checkBatch(t, box.wait(t, n), n)

			cs, ss := cli.Stats(), srv.Stats()
			t.Logf("client %+v", cs)
			t.Logf("server %+v", ss)
			assert.Equal(t, uint64(n), cs.DatagramsWritten)
			assert.Less(t, cs.WriteCalls, cs.DatagramsWritten/4, "sendmmsg carries several datagrams")
			assert.Equal(t, uint64(n), ss.DatagramsRead)
			assert.Less(t, ss.ReadCalls, ss.DatagramsRead, "recvmmsg returns several datagrams")
			box.mu.Lock()
			assert.Greater(t, max(box.batches[0], box.batches[len(box.batches)-1], maxOf(box.batches)), 1)
			box.mu.Unlock()
		})
	}
}

func maxOf(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// TestUDPBatchOversize: a datagram over Limits.MaxMessageSize between
// good ones is counted, logged and delivered as ErrTooLarge (with the
// request's header fields, for a 513) without harm to its neighbours,
// on the batch path and on the plain one.
func TestUDPBatchOversize(t *testing.T) {
	for _, batch := range []int{0, 1} {
		t.Run(fmt.Sprint("BatchSize=", batch), func(t *testing.T) {
			ctx := ctxT(t)
			box := newBatchInbox()
			srv := New(Config{OnMessages: box.onMessages, Limits: message.Limits{MaxMessageSize: 3000},
				UDP: UDPConfig{BatchSize: batch}})
			defer srv.Close()
			addr, err := srv.Listen(ctx, UDP, "127.0.0.1:0")
			require.NoError(t, err)
			raw, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
			require.NoError(t, err)
			defer raw.Close()
			sizes := []int{100, 2400, 60000, 2600, 5000, 10}
			for i, size := range sizes {
				req := testRequest("MESSAGE")
				req.Header.Set("X-N", strconv.Itoa(i))
				req.Body = bytes.Repeat([]byte{'x'}, size)
				_, err := raw.Write([]byte(req.String()))
				require.NoError(t, err)
			}
			msgs := box.wait(t, len(sizes))
			require.Len(t, msgs, len(sizes))
			for i, in := range msgs {
				if in.Err == nil {
					req := in.Msg.(*message.Request)
					assert.Equal(t, strconv.Itoa(i), req.Header.Get("X-N"))
					assert.Len(t, req.Body, sizes[i])
					continue
				}
				assert.Greater(t, sizes[i], 2800, "message %d", i)
				assert.ErrorIs(t, in.Err, message.ErrTooLarge)
				var pe *message.ParseError
				require.ErrorAs(t, in.Err, &pe)
				assert.Equal(t, 513, pe.Status)
				req, ok := in.Msg.(*message.Request)
				require.True(t, ok, "the header fields for the 513")
				assert.Equal(t, "MESSAGE", req.Method)
			}
			assert.Equal(t, uint64(2), srv.Stats().Oversize)
		})
	}
}

// failingBatch is a batch reader and writer that fails with err, after
// which the socket must read and write one datagram at a time.
type failingBatch struct {
	err           error
	reads, writes int
	mu            sync.Mutex
}

func (f *failingBatch) ReadBatch([]ipv4.Message, int) (int, error) {
	f.mu.Lock()
	f.reads++
	f.mu.Unlock()
	return 0, &net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("recvmmsg", f.err)}
}

func (f *failingBatch) WriteBatch([]ipv4.Message, int) (int, error) {
	f.mu.Lock()
	f.writes++
	f.mu.Unlock()
	return 0, &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendmmsg", f.err)}
}

// TestUDPBatchFallback: where recvmmsg and sendmmsg fail with ENOSYS (an
// old kernel, a sandbox) a socket falls back to one datagram per call
// after the first try; with BatchSize 1 it never tries. Either way every
// datagram arrives.
func TestUDPBatchFallback(t *testing.T) {
	t.Run("ENOSYS", func(t *testing.T) {
		ctx := ctxT(t)
		box := newBatchInbox()
		srvFake, cliFake := &failingBatch{err: syscall.ENOSYS}, &failingBatch{err: syscall.ENOSYS}
		srv := New(Config{OnMessages: box.onMessages})
		srv.batchHook = func(net.PacketConn) batchConn { return srvFake }
		defer srv.Close()
		addr, err := srv.Listen(ctx, UDP, "127.0.0.1:0")
		require.NoError(t, err)
		cli := New(Config{})
		cli.batchHook = func(net.PacketConn) batchConn { return cliFake }
		defer cli.Close()
		local, err := cli.Listen(ctx, UDP, "127.0.0.1:0")
		require.NoError(t, err)
		const n = 100
		sendBatch(t, cli, local, addr, n, 20)
		checkBatch(t, box.wait(t, n), n)
		srvFake.mu.Lock()
		assert.Equal(t, 1, srvFake.reads, "one try, then plain reads")
		srvFake.mu.Unlock()
		cliFake.mu.Lock()
		assert.Equal(t, 1, cliFake.writes, "one try, then plain writes")
		cliFake.mu.Unlock()
		t.Logf("server %+v, client %+v", srv.Stats(), cli.Stats())
		assert.Equal(t, srv.Stats().ReadCalls, srv.Stats().DatagramsRead)
		assert.Equal(t, cli.Stats().DatagramsWritten+1, cli.Stats().WriteCalls, "the failed sendmmsg, then one WriteTo each")
	})
	t.Run("BatchSize=1", func(t *testing.T) {
		ctx := ctxT(t)
		box := newBatchInbox()
		srv := New(Config{OnMessages: box.onMessages, UDP: UDPConfig{BatchSize: 1}})
		defer srv.Close()
		addr, err := srv.Listen(ctx, UDP, "127.0.0.1:0")
		require.NoError(t, err)
		cli := New(Config{UDP: UDPConfig{BatchSize: 1}})
		defer cli.Close()
		local, err := cli.Listen(ctx, UDP, "127.0.0.1:0")
		require.NoError(t, err)
		const n = 100
		sendBatch(t, cli, local, addr, n, 20)
		checkBatch(t, box.wait(t, n), n)
		assert.Equal(t, uint64(n), srv.Stats().ReadCalls)
		assert.Equal(t, uint64(n), cli.Stats().WriteCalls)
	})
}

// TestUDPBatchSendFailure: a held datagram that the system refuses goes
// to its OnFail (on a goroutine of its own), and the others of the batch
// still go.
func TestUDPBatchSendFailure(t *testing.T) {
	ctx := ctxT(t)
	box := newBatchInbox()
	srv := New(Config{OnMessages: box.onMessages})
	defer srv.Close()
	addr, err := srv.Listen(ctx, UDP, "127.0.0.1:0")
	require.NoError(t, err)
	fake := &failingBatch{err: syscall.EPERM}
	cli := New(Config{})
	cli.batchHook = func(net.PacketConn) batchConn { return fake }
	defer cli.Close()
	local, err := cli.Listen(ctx, UDP, "127.0.0.1:0")
	require.NoError(t, err)
	failed := make(chan error, 10)
	cli.Batch(func() {
		for i := range 3 {
			_, err := cli.TrySendResponse(batchResponse(i, addr), Flow{Proto: UDP, Local: local, Remote: addr},
				func(err error) { failed <- err })
			require.NoError(t, err)
		}
	})
	// The fake fails each batch write: the first datagram of each try
	// fails, and the last one, alone, goes with a plain write.
	for range 2 {
		select {
		case err := <-failed:
			assert.ErrorIs(t, err, syscall.EPERM)
		case <-time.After(5 * time.Second):
			t.Fatal("OnFail not called")
		}
	}
	msgs := box.wait(t, 1)
	assert.Equal(t, "2", msgs[0].Msg.Headers().Get("X-N"))
	select {
	case err := <-failed:
		t.Fatalf("a third failure: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestBatchNoHold: outside Batch a UDP response is written at once; an
// empty Batch writes nothing; nested Batches write when the outer one
// ends; requests are never held (one that fails at once must say so).
func TestBatchNoHold(t *testing.T) {
	ctx := ctxT(t)
	box := newBatchInbox()
	srv := New(Config{OnMessages: box.onMessages})
	defer srv.Close()
	addr, err := srv.Listen(ctx, UDP, "127.0.0.1:0")
	require.NoError(t, err)
	cli := New(Config{})
	defer cli.Close()
	local, err := cli.Listen(ctx, UDP, "127.0.0.1:0")
	require.NoError(t, err)
	flow := Flow{Proto: UDP, Local: local, Remote: addr}
	_, err = cli.TrySendResponse(batchResponse(0, addr), flow, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), cli.Stats().DatagramsWritten, "written before TrySendResponse returned")
	cli.Batch(func() {})
	cli.Batch(func() {
		cli.Batch(func() {
			_, err = cli.TrySendResponse(batchResponse(1, addr), flow, nil)
			require.NoError(t, err)
		})
		assert.Equal(t, uint64(1), cli.Stats().DatagramsWritten, "held until the outer Batch ends")
		_, err = cli.TrySendRequest(batchRequest(2), Target{Proto: UDP, Addr: addr}, SendOptions{NoTCPSwitch: true})
		require.NoError(t, err)
		assert.Equal(t, uint64(2), cli.Stats().DatagramsWritten, "a request is not held")
	})
	assert.Equal(t, uint64(3), cli.Stats().DatagramsWritten)
	checkBatch(t, box.wait(t, 3), 3)
}

// TestBatchClose: responses held by a Batch during which the Transport
// closes fail with ErrClosed through OnFail; nothing panics or leaks.
func TestBatchClose(t *testing.T) {
	ctx := ctxT(t)
	srv := New(Config{})
	defer srv.Close()
	addr, err := srv.Listen(ctx, UDP, "127.0.0.1:0")
	require.NoError(t, err)
	cli := New(Config{})
	local, err := cli.Listen(ctx, UDP, "127.0.0.1:0")
	require.NoError(t, err)
	failed := make(chan error, 4)
	cli.Batch(func() {
		for i := range 2 {
			_, err := cli.TrySendResponse(batchResponse(i, addr), Flow{Proto: UDP, Local: local, Remote: addr},
				func(err error) { failed <- err })
			require.NoError(t, err)
		}
		require.NoError(t, cli.Close())
	})
	for range 2 {
		select {
		case err := <-failed:
			assert.ErrorIs(t, err, ErrClosed)
		case <-time.After(5 * time.Second):
			t.Fatal("OnFail not called")
		}
	}
}

// TestUDPBatchUnreachable: the ICMP port unreachable for a datagram sent
// to a closed port reaches OnUnreachable from the batch reader as from
// the plain one (Linux reports it on the socket).
func TestUDPBatchUnreachable(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ICMP errors are read from the socket on Linux only")
	}
	for _, batch := range []int{0, 1} {
		t.Run(fmt.Sprint("BatchSize=", batch), func(t *testing.T) {
			ctx := ctxT(t)
			dead, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			to := dead.LocalAddr().(*net.UDPAddr).AddrPort()
			dead.Close()
			got := make(chan error, 4)
			cli := New(Config{UDP: UDPConfig{BatchSize: batch}, OnUnreachable: func(f Flow, err error) {
				if f.Remote == to {
					got <- err
				}
			}})
			defer cli.Close()
			_, err = cli.Listen(ctx, UDP, "127.0.0.1:0")
			require.NoError(t, err)
			_, err = cli.TrySendRequest(batchRequest(0), Target{Proto: UDP, Addr: to}, SendOptions{})
			require.NoError(t, err)
			select {
			case err := <-got:
				assert.ErrorIs(t, err, syscall.ECONNREFUSED)
			case <-time.After(5 * time.Second):
				t.Fatal("no OnUnreachable")
			}
		})
	}
}

// TestUDPBatchShrink: a burst grows the reader's slots; once the socket
// has been idle for a while the reader gives the extra ones back, and
// the next burst still arrives whole.
func TestUDPBatchShrink(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("batch reads on Linux only")
	}
	ctx := ctxT(t)
	box := newBatchInbox()
	srv := New(Config{OnMessages: box.onMessages})
	srv.idleShrink = 50 * time.Millisecond
	defer srv.Close()
	addr, err := srv.Listen(ctx, UDP, "127.0.0.1:0")
	require.NoError(t, err)
	cli := New(Config{})
	defer cli.Close()
	local, err := cli.Listen(ctx, UDP, "127.0.0.1:0")
	require.NoError(t, err)
	sock := func() *udpSock {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.udp[0]
	}()
	assert.LessOrEqual(t, sock.slots.Load(), int32(1), "one slot (or none yet) before any traffic")

	sendBatch(t, cli, local, addr, 200, 100)
	checkBatch(t, box.wait(t, 200), 200)
	assert.Greater(t, sock.slots.Load(), int32(1), "a burst grows the slots")
	require.Eventually(t, func() bool { return sock.slots.Load() == 1 }, 5*time.Second, 10*time.Millisecond,
		"idle: back to one slot")

	box.mu.Lock()
	box.msgs = nil
	box.mu.Unlock()
	sendBatch(t, cli, local, addr, 200, 100)
	checkBatch(t, box.wait(t, 200), 200)
}
