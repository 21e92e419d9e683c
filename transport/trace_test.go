package transport

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
)

// events collects clones of traced events.
type events struct {
	mu  sync.Mutex
	evs []trace.Event
}

func (e *events) Trace(ev trace.Event) {
	ev = ev.Clone()
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

func (e *events) get() []trace.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]trace.Event(nil), e.evs...)
}

// TestTracer: the Tracer sees a request sent (with the Via the transport
// wrote, the bytes on the wire), its receipt, a malformed datagram with
// its parse error, a failed send, and the wildcard local address of a
// socket replaced by the address the system sends from.
func TestTracer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srvEvs, cliEvs := &events{}, &events{}
	in := newInbox()
	srv := New(in.config(Config{Tracer: srvEvs}))
	defer srv.Close()
	srvAddr, err := srv.Listen(ctx, UDP, "127.0.0.1:0")
	require.NoError(t, err)
	tcpAddr, err := srv.Listen(ctx, TCP, "127.0.0.1:0")
	require.NoError(t, err)

	cli := New(Config{Tracer: cliEvs})
	defer cli.Close()
	_, err = cli.Listen(ctx, UDP, "0.0.0.0:0")
	require.NoError(t, err)
	req := testRequest("OPTIONS")
	f, err := cli.SendRequest(ctx, req, Target{Proto: UDP, Addr: srvAddr})
	require.NoError(t, err)
	got := <-in.msgs
	require.NoError(t, got.Err)

	sent := cliEvs.get()
	require.Len(t, sent, 1)
	assert.Equal(t, trace.Sent, sent[0].Dir)
	assert.Equal(t, "UDP", sent[0].Transport)
	assert.Equal(t, srvAddr, sent[0].Remote)
	assert.Equal(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), f.Local.Port()), sent[0].Local,
		"the wildcard socket's address as sent from")
	assert.Equal(t, req.String(), string(sent[0].Raw), "the bytes written, Via included")
	assert.Equal(t, "OPTIONS sip:bob@sipua.test", sent[0].Summary())

	recv := srvEvs.get()
	require.Len(t, recv, 1)
	assert.Equal(t, trace.Received, recv[0].Dir)
	assert.Equal(t, srvAddr, recv[0].Local)
	assert.Equal(t, sent[0].Local, recv[0].Remote)
	assert.Equal(t, sent[0].Raw, recv[0].Raw, "the same bytes: received and rport are not in Raw")

	// A malformed datagram: traced with its error and bytes.
	c, err := net.Dial("udp", srvAddr.String())
	require.NoError(t, err)
	defer c.Close()
	junk := "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\nContent-Length: 99\r\n\r\n"
	_, err = c.Write([]byte(junk))
	require.NoError(t, err)
	bad := <-in.msgs
	require.Error(t, bad.Err)
	recv = srvEvs.get()
	require.Len(t, recv, 2)
	assert.Equal(t, junk, string(recv[1].Raw))
	assert.ErrorIs(t, recv[1].Err, message.ErrContentLength)

	// A stream message: traced with its connection number.
	_, err = cli.SendRequest(ctx, testRequest("MESSAGE"), Target{Proto: TCP, Addr: tcpAddr})
	require.NoError(t, err)
	<-in.msgs
	recv = srvEvs.get()
	require.Len(t, recv, 3)
	assert.Equal(t, "TCP", recv[2].Transport)
	assert.NotZero(t, recv[2].ConnID)

	// A send that fails: Sent, then SendFailed with the error.
	failEvs := &events{}
	cli2 := New(Config{Tracer: failEvs, ListenPacket: func(ctx context.Context, network, address string) (net.PacketConn, error) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		return failingPacketConn{pc}, err
	}})
	defer cli2.Close()
	_, err = cli2.Send(ctx, testRequest("BYE"), Target{Proto: UDP, Addr: srvAddr})
	require.ErrorIs(t, err, errNoRoute)
	evs := failEvs.get()
	require.Len(t, evs, 2)
	assert.Equal(t, trace.Sent, evs[0].Dir)
	assert.Equal(t, trace.SendFailed, evs[1].Dir)
	assert.ErrorIs(t, evs[1].Err, errNoRoute)
	assert.Equal(t, evs[0].Raw, evs[1].Raw)
}

var errNoRoute = errors.New("no route to host")

// failingPacketConn fails every write.
type failingPacketConn struct{ net.PacketConn }

func (failingPacketConn) WriteTo([]byte, net.Addr) (int, error) { return 0, errNoRoute }
