package transport

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUDPBuffers checks that the configured socket buffers are applied
// (Linux reports twice the size set).
func TestUDPBuffers(t *testing.T) {
	tr := New(Config{UDP: UDPConfig{ReadBuffer: 2 << 20, WriteBuffer: 1 << 20}})
	defer tr.Close()
	_, err := tr.Listen(ctxT(t), UDP, "127.0.0.1:0")
	require.NoError(t, err)
	rcv, snd := socketBuffers(tr.udp[0].pc.(*net.UDPConn))
	if rcv == 0 {
		t.Skip("socket buffer sizes not readable on this OS")
	}
	if os.Geteuid() == 0 {
		assert.GreaterOrEqual(t, rcv, 2<<20)
		assert.GreaterOrEqual(t, snd, 1<<20)
	} else {
		assert.Greater(t, rcv, 0)
	}
	def := New(Config{UDP: UDPConfig{ReadBuffer: -1, WriteBuffer: -1}})
	defer def.Close()
	_, err = def.Listen(ctxT(t), UDP, "127.0.0.1:0")
	require.NoError(t, err)
	r2, _ := socketBuffers(def.udp[0].pc.(*net.UDPConn))
	assert.Less(t, r2, rcv, "OS default is smaller")
}

// TestConcurrentSendsShareOneDial: many senders to one destination open
// one connection.
func TestConcurrentSendsShareOneDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &simNet{peer: crlfPeer(0)}
		tr := New(Config{DialContext: sim.dial})
		var wg sync.WaitGroup
		var ids sync.Map
		for range 20 {
			wg.Go(func() {
				f, err := tr.Send(context.Background(), testRequest("OPTIONS"), simTarget)
				assert.NoError(t, err)
				ids.Store(f.ID, true)
			})
		}
		wg.Wait()
		n := 0
		ids.Range(func(any, any) bool { n++; return true })
		assert.Equal(t, 1, n)
		assert.Equal(t, 1, sim.dials)
		require.NoError(t, tr.Close())
		sim.wg.Wait()
	})
}

// TestUpstreamUDPPing: an Upstream to a UDP server has no connection to
// watch; Keepalive.Ping (an OPTIONS ping from the layer above) detects
// the dead server and the Upstream reports it and reconnects.
func TestUpstreamUDPPing(t *testing.T) {
	var fail atomic.Bool
	tr := New(Config{Keepalive: Keepalive{
		Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond,
		Ping: func(ctx context.Context, f Flow) error {
			if f.Proto != UDP {
				return errors.New("not UDP")
			}
			if fail.Load() {
				return errors.New("408 Request Timeout")
			}
			return nil
		},
	}})
	defer tr.Close()
	evs := make(chan StateEvent, 64)
	u, err := tr.Connect(UpstreamConfig{
		Servers: []Server{{Addr: "sip:127.0.0.1:9"}},
		Backoff: Backoff{Min: 10 * time.Millisecond},
		OnState: func(e StateEvent) { evs <- e },
	})
	require.NoError(t, err)
	defer u.Close()
	f, err := u.WaitConnected(ctxT(t))
	require.NoError(t, err)
	assert.Equal(t, UDP, f.Proto)
	time.Sleep(50 * time.Millisecond) // a few good pings
	assert.Equal(t, Connected, u.State())
	fail.Store(true)
	for e := range evs {
		if e.State == Disconnected {
			assert.ErrorIs(t, e.Err, ErrDeadPeer)
			assert.Greater(t, e.RetryIn, time.Duration(0))
			break
		}
	}
	fail.Store(false)
	_, err = u.WaitConnected(ctxT(t))
	require.NoError(t, err)
}

// TestGarbageStream feeds random bytes and random fragments of messages
// to inbound connections: no panic, each connection ends with an error
// or at EOF, nothing leaks (goleak in TestMain).
func TestGarbageStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		events := make(chan ConnEvent, 1024)
		var msgs atomic.Int64
		tr := New(Config{
			OnConn:    func(e ConnEvent) { events <- e },
			OnMessage: func(Incoming) { msgs.Add(1) },
			Limits:    limitsSmall,
		})
		rng := rand.New(rand.NewPCG(1, 2))
		msg := []byte(testRequest("OPTIONS").String())
		const conns = 50
		for i := range conns {
			a, b := net.Pipe()
			ca := &pipeConn{Conn: a, local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060}, remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 30000 + i}}
			tr.addInbound(tr.newConn(ca, nil, TCP, true))
			chunks := make([][]byte, 0, 40)
			for range 40 {
				switch rng.IntN(4) {
				case 0:
					chunks = append(chunks, msg)
				case 1:
					lo := rng.IntN(len(msg))
					chunks = append(chunks, msg[lo:lo+rng.IntN(len(msg)-lo)])
				case 2:
					g := make([]byte, rng.IntN(600))
					for k := range g {
						g[k] = byte(rng.IntN(256))
					}
					chunks = append(chunks, g)
				default:
					k := "\r\n\r\nContent-Length: 99999\r\n\r\n"
					chunks = append(chunks, []byte(k[:rng.IntN(len(k)+1)]))
				}
			}
			go func() {
				defer b.Close()
				go func() { _, _ = io.Copy(io.Discard, b) }() // swallow pongs
				for _, c := range chunks {
					if _, err := b.Write(c); err != nil {
						return
					}
				}
			}()
		}
		closed := 0
		for closed < conns {
			if e := <-events; e.State == ConnClosed {
				closed++
				assert.Error(t, e.Err)
			}
		}
		require.NoError(t, tr.Close())
		t.Logf("%d messages delivered from garbage", msgs.Load())
	})
}
