package transport

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

// thenFunc is a Then made of two functions.
type thenFunc struct {
	run     func(reader uint64)
	relieve func()
}

func (f thenFunc) Run(reader uint64) { f.run(reader) }
func (f thenFunc) Relieve() {
	if f.relieve != nil {
		f.relieve()
	}
}

func optionsFrom(n int) []byte {
	return fmt.Appendf(nil, "OPTIONS sip:bob@sipua.test SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 192.0.2.7:5099;branch=z9hG4bK%d\r\n"+
		"From: <sip:alice@sipua.test>;tag=1\r\nTo: <sip:bob@sipua.test>\r\n"+
		"Call-ID: relief%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", n, n)
}

// TestOnMessagesThenRelief: work that OnMessagesThen leaves runs on the
// reader that read the messages, before it reads again; work that blocks
// is relieved: another reader takes the socket over within 2·Relief and
// is told to Relieve, the next datagrams arrive, and the blocked reader
// ends when its work returns. Close does not wait for a reader stuck in
// work (here, its work is blocked until after Close).
func TestOnMessagesThenRelief(t *testing.T) {
	type got struct {
		callID string
		reader uint64
	}
	msgs := make(chan got, 16)
	release := make(chan struct{})
	relieved := make(chan struct{}, 1)
	ran := make(chan uint64, 16)
	var mu sync.Mutex
	var blocked bool
	cfg := Config{
		UDP: UDPConfig{Relief: 5 * time.Millisecond},
		OnMessagesThen: func(ins []Incoming) Then {
			callID := ins[0].Msg.(*message.Request).Header.CallID()
			return thenFunc{
				run: func(reader uint64) {
					msgs <- got{callID, reader}
					mu.Lock()
					block := !blocked && callID == "relief2"
					blocked = blocked || block
					mu.Unlock()
					if block {
						<-release
					}
					ran <- reader
				},
				relieve: func() { relieved <- struct{}{} },
			}
		},
	}
	tp := New(cfg)
	addr, err := tp.Listen(ctxT(t), UDP, "127.0.0.1:0")
	require.NoError(t, err)
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	require.NoError(t, err)
	defer pc.Close()
	send := func(n int) {
		_, err := pc.WriteToUDPAddrPort(optionsFrom(n), addr)
		require.NoError(t, err)
	}
	recv := func() got {
		select {
		case g := <-msgs:
			return g
		case <-time.After(5 * time.Second):
			t.Fatal("no message")
			return got{}
		}
	}
	send(1)
	first := recv()
	assert.Equal(t, "relief1", first.callID)
	assert.Equal(t, first.reader, <-ran, "the work ran on the reader")

	send(2) // its work blocks
	g := recv()
	require.Equal(t, "relief2", g.callID)
	assert.Equal(t, first.reader, g.reader)
	start := time.Now()
	send(3)
	g = recv()
	assert.Equal(t, "relief3", g.callID)
	assert.NotEqual(t, first.reader, g.reader, "another reader took over")
	assert.Less(t, time.Since(start), time.Second)
	select {
	case <-relieved:
	case <-time.After(5 * time.Second):
		t.Fatal("Relieve not called")
	}
	assert.Equal(t, g.reader, <-ran)

	send(4)
	g = recv()
	assert.Equal(t, "relief4", g.callID)
	assert.Equal(t, g.reader, <-ran)

	require.NoError(t, tp.Close()) // the blocked reader is not waited for
	close(release)
	assert.Equal(t, first.reader, <-ran, "the blocked work returned")
}
