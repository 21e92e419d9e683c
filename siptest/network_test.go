package siptest_test

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/siptest"
)

var (
	aliceAddr = siptest.Addr("192.0.2.1:5060")
	bobAddr   = siptest.Addr("192.0.2.2:5060")
	carolAddr = siptest.Addr("192.0.2.3:5060")
	daveAddr  = siptest.Addr("192.0.2.4:5060")
)

// pair returns a Network with alice and bob listening.
func pair(t *testing.T, seed uint64) (*siptest.Network, *siptest.Endpoint, *siptest.Endpoint) {
	t.Helper()
	n := siptest.NewNetwork(seed)
	t.Cleanup(func() { _ = n.Close() })
	alice, err := n.Listen("alice", aliceAddr)
	require.NoError(t, err)
	bob, err := n.Listen("bob", bobAddr)
	require.NoError(t, err)
	return n, alice, bob
}

func request(method string) []byte {
	return []byte(method + " sip:bob@192.0.2.2 SIP/2.0\r\nCSeq: 1 " + method + "\r\n\r\n")
}

func response(status string) []byte {
	return []byte("SIP/2.0 " + status + "\r\nCSeq: 1 INVITE\r\n\r\n")
}

// drain takes every datagram waiting at ep.
func drain(ep *siptest.Endpoint) []siptest.Packet {
	var out []siptest.Packet
	for {
		p, ok := ep.TryRecv()
		if !ok {
			return out
		}
		out = append(out, p)
	}
}

func TestSendRecvZeroDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, alice, bob := pair(t, 1)
		start := time.Now()
		data := request("INVITE")
		require.NoError(t, alice.Send(bob.Addr(), data))
		data[0] = 'X' // Send copied it

		p, err := bob.Recv(t.Context())
		require.NoError(t, err)
		assert.Equal(t, request("INVITE"), p.Data)
		assert.Equal(t, aliceAddr, p.From)
		assert.Equal(t, bobAddr, p.To)
		assert.Equal(t, uint64(1), p.ID)
		assert.False(t, p.Duplicate)
		assert.Equal(t, start, p.SentAt)
		assert.Equal(t, start, p.DeliveredAt)
		assert.Zero(t, time.Since(start), "a zero-delay link takes no virtual time")

		assert.Equal(t, siptest.Stats{Sent: 1, Delivered: 1}, n.Stats())
		assert.Equal(t, siptest.Stats{Sent: 1, Delivered: 1}, n.LinkStats(aliceAddr, bobAddr))
		assert.Equal(t, siptest.Stats{}, n.LinkStats(bobAddr, aliceAddr))
	})
}

func TestZeroDelayIsAsynchronous(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, alice, bob := pair(t, 1)
		require.NoError(t, alice.Send(bob.Addr(), request("OPTIONS")))
		synctest.Wait()
		assert.Equal(t, 1, bob.Queued())
	})
}

func TestRealTime(t *testing.T) {
	// Without synctest the kit runs on real time.
	_, alice, bob := pair(t, 1)
	require.NoError(t, alice.Send(bob.Addr(), request("OPTIONS")))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	p, err := bob.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, request("OPTIONS"), p.Data)
}

func TestDuplicateCopiesAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, alice, bob := pair(t, 1)
		require.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Duplicate: 1}))
		require.NoError(t, alice.Send(bob.Addr(), request("MESSAGE")))
		synctest.Wait()
		got := drain(bob)
		require.Len(t, got, 2)
		got[0].Data[0] = 'X'
		assert.Equal(t, request("MESSAGE"), got[1].Data, "each copy owns its bytes")
		assert.Equal(t, got[0].ID, got[1].ID)
		assert.False(t, got[0].Duplicate)
		assert.True(t, got[1].Duplicate)
		assert.Equal(t, "MESSAGE", mustFirstEventLabel(t, n), "the trace keeps the sent bytes")
	})
}

func mustFirstEventLabel(t *testing.T, n *siptest.Network) string {
	t.Helper()
	tr := n.Trace()
	require.NotEmpty(t, tr)
	_, short := siptest.Summarize(tr[0].Data)
	return short
}

func TestLossStatistics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const total, loss = 10000, 0.3
		n, alice, bob := pair(t, 42)
		n.SetTracing(false)
		require.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Loss: loss}))
		for i := range total {
			require.NoError(t, alice.Send(bob.Addr(), fmt.Appendf(nil, "%d", i)))
		}
		synctest.Wait()
		s := n.Stats()
		assert.EqualValues(t, total, s.Sent)
		assert.InDelta(t, loss, float64(s.Lost)/total, 0.02, "lost %d of %d", s.Lost, total)
		assert.Equal(t, s.Sent, s.Delivered+s.Lost)
		assert.Equal(t, int(s.Delivered), bob.Queued())
		assert.Zero(t, s.InFlight)
		assert.Empty(t, n.Trace(), "tracing was off")

		// The reverse direction has its own, perfect, link.
		require.NoError(t, bob.Send(alice.Addr(), []byte("x")))
		synctest.Wait()
		assert.Equal(t, 1, alice.Queued())
	})
}

func TestDuplication(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const total, dup = 4000, 0.25
		n, alice, bob := pair(t, 3)
		require.NoError(t, n.SetDefaultLink(siptest.Link{Duplicate: dup}))
		for i := range total {
			require.NoError(t, alice.Send(bob.Addr(), fmt.Appendf(nil, "%d", i)))
		}
		synctest.Wait()
		s := n.Stats()
		assert.InDelta(t, dup, float64(s.Duplicated)/total, 0.03)
		assert.Equal(t, s.Sent+s.Duplicated, s.Delivered)

		got := drain(bob)
		require.Len(t, got, int(s.Delivered))
		copies := make(map[uint64]int)
		dups := 0
		for _, p := range got {
			copies[p.ID]++
			if p.Duplicate {
				dups++
			}
		}
		assert.Len(t, copies, total)
		assert.EqualValues(t, s.Duplicated, dups)
		for id, c := range copies {
			assert.LessOrEqual(t, c, 2, "datagram %d", id)
		}
	})
}

func TestDelayInVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, alice, bob := pair(t, 1)
		const delay = 150 * time.Millisecond
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: delay}))
		start := time.Now()
		require.NoError(t, alice.Send(bob.Addr(), request("INVITE")))

		time.Sleep(delay - time.Millisecond)
		synctest.Wait()
		assert.Zero(t, bob.Queued(), "not yet")
		assert.Equal(t, 1, n.Stats().InFlight)
		assert.Equal(t, 1, n.LinkStats(aliceAddr, bobAddr).InFlight)

		p, err := bob.Recv(t.Context())
		require.NoError(t, err)
		assert.Equal(t, delay, time.Since(start), "Recv returned exactly at arrival")
		assert.Equal(t, delay, p.DeliveredAt.Sub(p.SentAt))
		assert.Zero(t, n.Stats().InFlight)
	})
}

func TestLongDelayCostsNoWallTime(t *testing.T) {
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		n, alice, bob := pair(t, 1)
		require.NoError(t, n.SetDefaultLink(siptest.Link{Delay: 32 * time.Second}))
		require.NoError(t, alice.Send(bob.Addr(), request("INVITE")))
		_, err := bob.Recv(t.Context())
		require.NoError(t, err)
	})
	assert.Less(t, time.Since(wall), 5*time.Second)
}

func TestFIFOWithoutJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, alice, bob := pair(t, 1)
		require.NoError(t, n.SetDefaultLink(siptest.Link{Delay: 10 * time.Millisecond}))
		for i := range 100 {
			require.NoError(t, alice.Send(bob.Addr(), []byte{byte(i)}))
		}
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		got := drain(bob)
		require.Len(t, got, 100)
		for i, p := range got {
			assert.Equal(t, byte(i), p.Data[0], "datagrams due at the same time keep their order")
		}
	})
}

func TestJitterReorders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			total  = 200
			delay  = 100 * time.Millisecond
			jitter = 50 * time.Millisecond
		)
		n, alice, bob := pair(t, 9)
		require.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Delay: delay, Jitter: jitter}))
		start := time.Now()
		for i := range total {
			require.NoError(t, alice.Send(bob.Addr(), []byte{byte(i)}))
		}
		var order []byte
		var lastAt time.Time
		minLat, maxLat := time.Duration(1<<62), time.Duration(0)
		for range total {
			p, err := bob.Recv(t.Context())
			require.NoError(t, err)
			assert.Equal(t, p.DeliveredAt, time.Now(), "received when it arrived, in virtual time")
			assert.False(t, p.DeliveredAt.Before(lastAt), "received in order of arrival")
			lastAt = p.DeliveredAt
			lat := p.DeliveredAt.Sub(p.SentAt)
			minLat, maxLat = min(minLat, lat), max(maxLat, lat)
			order = append(order, p.Data[0])
		}
		assert.GreaterOrEqual(t, minLat, delay)
		assert.LessOrEqual(t, maxLat, delay+jitter)
		assert.Greater(t, maxLat-minLat, jitter/2, "the jitter is spread")
		assert.False(t, slices.IsSorted(order), "jitter reorders datagrams")
		assert.LessOrEqual(t, time.Since(start), delay+jitter)
		slices.Sort(order)
		for i, b := range order {
			require.Equal(t, byte(i), b, "every datagram arrives once")
		}
	})
}

func TestLinkChangesMidTest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, alice, bob := pair(t, 1)
		send := func(from, to *siptest.Endpoint, m string) {
			t.Helper()
			require.NoError(t, from.Send(to.Addr(), request(m)))
		}
		send(alice, bob, "INVITE")

		// Outage in both directions.
		n.SetDown(aliceAddr, bobAddr, true)
		assert.True(t, n.Link(aliceAddr, bobAddr).Down)
		assert.True(t, n.Link(bobAddr, aliceAddr).Down)
		send(alice, bob, "INFO")
		send(bob, alice, "BYE")

		// Back up, now slow: a datagram in flight keeps its delay when the
		// link changes.
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: time.Second}))
		send(alice, bob, "UPDATE")
		time.Sleep(500 * time.Millisecond)
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{}))
		send(alice, bob, "OPTIONS")
		synctest.Wait()
		assert.Equal(t, []string{"alice→bob INVITE", "alice→bob INFO (dropped)", "bob→alice BYE (dropped)",
			"alice→bob UPDATE (in flight)", "alice→bob OPTIONS"}, n.Flow())
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		assert.Equal(t, "alice→bob UPDATE", n.Flow()[3])

		// SetDown keeps the rest of the link, and ClearLink goes back to
		// the default.
		require.NoError(t, n.SetDefaultLink(siptest.Link{Delay: 7 * time.Millisecond}))
		n.ClearLink(bobAddr, aliceAddr)
		require.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Delay: time.Second}))
		n.SetDown(aliceAddr, bobAddr, true)
		assert.Equal(t, siptest.Link{Delay: time.Second, Down: true}, n.Link(aliceAddr, bobAddr))
		assert.Equal(t, siptest.Link{Delay: 7 * time.Millisecond, Down: true}, n.Link(bobAddr, aliceAddr))
		n.SetDown(aliceAddr, bobAddr, false)
		assert.Equal(t, siptest.Link{Delay: time.Second}, n.Link(aliceAddr, bobAddr))
		n.ClearLink(aliceAddr, bobAddr)
		n.ClearLink(carolAddr, daveAddr) // unknown: no-op
		assert.Equal(t, siptest.Link{Delay: 7 * time.Millisecond}, n.Link(aliceAddr, bobAddr))

		s := n.Stats()
		assert.EqualValues(t, 2, s.Partitioned)
		assert.EqualValues(t, 3, s.Delivered)
		assert.EqualValues(t, 1, n.LinkStats(bobAddr, aliceAddr).Partitioned)
	})
}

func TestLinkValidate(t *testing.T) {
	n := siptest.NewNetwork(1)
	for _, l := range []siptest.Link{
		{Loss: -0.1}, {Loss: 1.1}, {Duplicate: 2}, {Delay: -1}, {Jitter: -time.Second},
	} {
		assert.ErrorIs(t, l.Validate(), siptest.ErrInvalidLink, "%+v", l)
		assert.ErrorIs(t, n.SetLink(aliceAddr, bobAddr, l), siptest.ErrInvalidLink)
		assert.ErrorIs(t, n.SetLinks(aliceAddr, bobAddr, l), siptest.ErrInvalidLink)
		assert.ErrorIs(t, n.SetDefaultLink(l), siptest.ErrInvalidLink)
	}
	assert.NoError(t, siptest.Link{Loss: 1, Duplicate: 1, Delay: 1, Jitter: 1, Down: true}.Validate())
	assert.Equal(t, siptest.Link{}, n.Link(aliceAddr, bobAddr), "refused links change nothing")
}

func TestUndeliverable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, alice, _ := pair(t, 1)
		require.NoError(t, alice.Send(carolAddr, request("INVITE")), "like UDP, no error")
		assert.Equal(t, siptest.Stats{Sent: 1, Undeliverable: 1}, n.Stats())
		tr := n.Trace()
		require.Len(t, tr, 2)
		assert.Equal(t, siptest.EventDropped, tr[1].Kind)
		assert.Equal(t, siptest.DropNoEndpoint, tr[1].Reason)
		assert.Equal(t, []string{"alice→192.0.2.3:5060 INVITE (undeliverable)"}, n.Flow())

		assert.ErrorIs(t, alice.Send(netip.AddrPort{}, nil), siptest.ErrInvalidAddr)
		assert.ErrorIs(t, alice.Send(siptest.Addr("192.0.2.2:0"), nil), siptest.ErrInvalidAddr)
	})
}

func TestEndpointClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, alice, bob := pair(t, 1)
		require.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Delay: time.Second}))
		require.NoError(t, alice.Send(bob.Addr(), request("INVITE")))
		require.NoError(t, bob.Send(alice.Addr(), request("OPTIONS"))) // queued at alice, unread

		errc := make(chan error, 1)
		go func() {
			_, err := bob.Recv(context.Background())
			errc <- err
		}()
		synctest.Wait()

		require.NoError(t, bob.Close())
		require.NoError(t, bob.Close(), "idempotent")
		assert.ErrorIs(t, <-errc, siptest.ErrClosed, "a blocked Recv returns")
		select {
		case <-bob.Done():
		default:
			t.Fatal("Done not closed")
		}
		_, err := bob.Recv(t.Context())
		assert.ErrorIs(t, err, siptest.ErrClosed)
		_, ok := bob.TryRecv()
		assert.False(t, ok)
		assert.ErrorIs(t, bob.Send(aliceAddr, nil), siptest.ErrClosed)

		s := n.Stats()
		assert.EqualValues(t, 1, s.Undeliverable, "the INVITE in flight was dropped")
		assert.Zero(t, s.InFlight)

		// The address is free again, and the dropped datagram never reaches
		// the new Endpoint.
		bob2, err := n.Listen("bob", bobAddr)
		require.NoError(t, err)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		assert.Zero(t, bob2.Queued())
		assert.Equal(t, 1, alice.Queued())
		assert.Equal(t, []string{"alice→bob INVITE (undeliverable)", "bob→alice OPTIONS"}, n.Flow())
		assert.Contains(t, n.Ladder(), "✗ undeliverable (closed)")
	})
}

func TestNetworkClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, alice, bob := pair(t, 1)
		var calls int
		carol, err := n.ListenFunc("carol", carolAddr, func(siptest.Packet) { calls++ })
		require.NoError(t, err)
		require.NoError(t, n.SetDefaultLink(siptest.Link{Delay: time.Millisecond}))
		require.NoError(t, alice.Send(bob.Addr(), request("INVITE")))
		require.NoError(t, alice.Send(carol.Addr(), request("INVITE")))
		require.NoError(t, n.Close())
		require.NoError(t, n.Close(), "idempotent")
		for _, ep := range []*siptest.Endpoint{alice, bob, carol} {
			assert.ErrorIs(t, ep.Send(daveAddr, nil), siptest.ErrClosed)
		}
		_, err = n.Listen("dave", daveAddr)
		assert.ErrorIs(t, err, siptest.ErrClosed)
		assert.ErrorIs(t, n.Inject(daveAddr, aliceAddr, nil), siptest.ErrClosed)
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Zero(t, calls)
		assert.Equal(t, siptest.Stats{Sent: 2, Undeliverable: 2}, n.Stats())
		assert.Len(t, n.Flow(), 2, "the trace outlives the network")
	})
}

func TestListen(t *testing.T) {
	n := siptest.NewNetwork(1)
	defer n.Close()
	a, err := n.Listen("", aliceAddr)
	require.NoError(t, err)
	assert.Equal(t, "192.0.2.1:5060", a.Name(), "unnamed endpoints are labelled by address")

	_, err = n.Listen("again", aliceAddr)
	assert.ErrorIs(t, err, siptest.ErrAddrInUse)
	_, err = n.Listen("mapped", siptest.Addr("[::ffff:192.0.2.1]:5060"))
	assert.ErrorIs(t, err, siptest.ErrAddrInUse, "IPv4-mapped addresses are the IPv4 address")

	// Automatic addresses skip those in use.
	auto1, err := n.Listen("auto1", netip.AddrPort{})
	require.NoError(t, err)
	auto2, err := n.Listen("auto2", netip.AddrPort{})
	require.NoError(t, err)
	assert.Equal(t, siptest.TestNetAddr(2, 5060), auto1.Addr())
	assert.Equal(t, siptest.TestNetAddr(3, 5060), auto2.Addr())

	e1, err := n.Listen("", siptest.Addr("192.0.2.1:0"))
	require.NoError(t, err)
	e2, err := n.Listen("", siptest.Addr("192.0.2.1:0"))
	require.NoError(t, err)
	assert.Equal(t, siptest.Addr("192.0.2.1:49152"), e1.Addr())
	assert.Equal(t, siptest.Addr("192.0.2.1:49153"), e2.Addr())

	v6, err := n.Listen("v6", siptest.Addr("[2001:db8::1]:5060"))
	require.NoError(t, err)
	assert.Equal(t, "v6", v6.Name())

	_, err = n.Listen("bad", netip.AddrPortFrom(netip.Addr{}, 5060))
	assert.ErrorIs(t, err, siptest.ErrInvalidAddr)
	_, err = n.ListenFunc("nil", daveAddr, nil)
	assert.Error(t, err)

	names := n.Names()
	assert.Equal(t, "auto1", names[auto1.Addr()])
	assert.Len(t, names, 6)
}

func TestHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		require.NoError(t, n.SetDefaultLink(siptest.Link{Delay: 10 * time.Millisecond, Jitter: 10 * time.Millisecond}))
		var got []byte
		var bob *siptest.Endpoint
		bob, err := n.ListenFunc("bob", bobAddr, func(p siptest.Packet) {
			got = append(got, p.Data[0])
			// A handler may send (and so take the Network's lock).
			assert.NoError(t, bob.Send(p.From, []byte{p.Data[0]}))
		})
		require.NoError(t, err)
		alice, err := n.Listen("alice", aliceAddr)
		require.NoError(t, err)

		_, err = bob.Recv(t.Context())
		assert.ErrorIs(t, err, siptest.ErrHasHandler)
		_, ok := bob.TryRecv()
		assert.False(t, ok)

		for i := range 50 {
			require.NoError(t, alice.Send(bob.Addr(), []byte{byte(i)}))
		}
		var echoed []byte
		for range 50 {
			p, err := alice.Recv(t.Context())
			require.NoError(t, err)
			echoed = append(echoed, p.Data[0])
		}
		synctest.Wait()
		assert.Len(t, got, 50)
		assert.ElementsMatch(t, got, echoed)

		// Arrival order is the handler's order.
		var arrivals []byte
		for _, e := range n.Trace() {
			if e.Kind == siptest.EventDelivered && e.To == bobAddr {
				arrivals = append(arrivals, e.Data[0])
			}
		}
		assert.Equal(t, arrivals, got)
	})
}

func TestHandlerMayClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		var calls int
		var bob *siptest.Endpoint
		bob, err := n.ListenFunc("bob", bobAddr, func(siptest.Packet) {
			calls++
			assert.NoError(t, bob.Close())
		})
		require.NoError(t, err)
		alice, err := n.Listen("alice", aliceAddr)
		require.NoError(t, err)
		for range 3 {
			require.NoError(t, alice.Send(bobAddr, []byte("x")))
		}
		synctest.Wait()
		assert.Equal(t, 1, calls, "no call after Close")
		<-bob.Done()
	})
}

func TestRecvContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, bob := pair(t, 1)
		ctx, cancel := context.WithTimeout(t.Context(), 32*time.Second)
		defer cancel()
		start := time.Now()
		_, err := bob.Recv(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 32*time.Second, time.Since(start))
	})
}

func TestConcurrentReceivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, alice, bob := pair(t, 1)
		const receivers, each = 4, 25
		var wg sync.WaitGroup
		var mu sync.Mutex
		seen := make(map[byte]bool)
		for range receivers {
			wg.Go(func() {
				for range each {
					p, err := bob.Recv(t.Context())
					if !assert.NoError(t, err) {
						return
					}
					mu.Lock()
					seen[p.Data[0]] = true
					mu.Unlock()
				}
			})
		}
		synctest.Wait()
		for i := range receivers * each {
			require.NoError(t, alice.Send(bobAddr, []byte{byte(i)}))
		}
		wg.Wait()
		assert.Len(t, seen, receivers*each)
	})
}

func TestConcurrentSenders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(5)
		defer n.Close()
		require.NoError(t, n.SetDefaultLink(siptest.Link{Loss: 0.2, Duplicate: 0.2, Delay: time.Millisecond, Jitter: time.Millisecond}))
		sink, err := n.Listen("sink", netip.AddrPort{})
		require.NoError(t, err)
		var wg sync.WaitGroup
		for range 8 {
			ep, err := n.Listen("", netip.AddrPort{})
			require.NoError(t, err)
			wg.Go(func() {
				for range 200 {
					assert.NoError(t, ep.Send(sink.Addr(), []byte("x")))
				}
			})
		}
		wg.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		s := n.Stats()
		assert.EqualValues(t, 1600, s.Sent)
		assert.Equal(t, s.Sent+s.Duplicated, s.Delivered+s.Lost)
		assert.Equal(t, int(s.Delivered), sink.Queued())
	})
}

// TestNoGoroutineLeft runs on real time, where synctest cannot watch
// goroutines, and counts them.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	n := siptest.NewNetwork(1)
	require.NoError(t, n.SetDefaultLink(siptest.Link{Delay: time.Millisecond, Jitter: 5 * time.Millisecond}))
	var wg sync.WaitGroup
	wg.Add(100)
	echo, err := n.ListenFunc("echo", bobAddr, func(p siptest.Packet) { wg.Done() })
	require.NoError(t, err)
	alice, err := n.Listen("alice", aliceAddr)
	require.NoError(t, err)
	for range 100 {
		require.NoError(t, alice.Send(echo.Addr(), []byte("x")))
	}
	wg.Wait()
	for range 10 {
		require.NoError(t, alice.Send(echo.Addr(), []byte("late"))) // in flight at Close
	}
	require.NoError(t, n.Close())
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

// scenario runs a lossy, jittery exchange and returns its ladder.
func scenario(t *testing.T, seed uint64) string {
	var ladder string
	synctest.Test(t, func(t *testing.T) {
		n, alice, bob := pair(t, seed)
		require.NoError(t, n.SetDefaultLink(siptest.Link{Loss: 0.2, Duplicate: 0.1, Delay: 20 * time.Millisecond, Jitter: 30 * time.Millisecond}))
		// bob answers on his own goroutine, alice on hers: the interleaving
		// of the two may vary, the fate of each datagram does not.
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				p, err := bob.Recv(t.Context())
				if err != nil {
					return
				}
				_, short := siptest.Summarize(p.Data)
				if short == "INVITE" {
					_ = bob.Send(p.From, response("200 OK"))
				}
			}
		})
		for range 20 {
			require.NoError(t, alice.Send(bobAddr, request("INVITE")))
			time.Sleep(100 * time.Millisecond)
		}
		synctest.Wait()
		require.NoError(t, bob.Close())
		wg.Wait()
		ladder = n.Ladder()
	})
	return ladder
}

func TestDeterminism(t *testing.T) {
	first := scenario(t, 7)
	assert.Equal(t, first, scenario(t, 7), "same seed, same run")
	assert.NotEqual(t, first, scenario(t, 8), "another seed, another run")
	assert.Contains(t, first, "dropped (loss)")
	assert.Contains(t, first, "×2")
	t.Logf("\n%s", first)
}

func TestDirectionsHaveTheirOwnRandomStream(t *testing.T) {
	run := func(noise bool) []string {
		var flow []string
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(11)
			defer n.Close()
			require.NoError(t, n.SetDefaultLink(siptest.Link{Loss: 0.5}))
			var eps []*siptest.Endpoint
			for _, a := range []netip.AddrPort{aliceAddr, bobAddr, carolAddr, daveAddr} {
				ep, err := n.Listen("", a)
				require.NoError(t, err)
				eps = append(eps, ep)
			}
			for i := range 50 {
				if noise {
					require.NoError(t, eps[0].Send(bobAddr, []byte("noise")))
				}
				require.NoError(t, eps[2].Send(daveAddr, []byte{byte(i)}))
			}
			synctest.Wait()
			// Flow, not the raw trace: the order in which events of the
			// same virtual instant are recorded may vary.
			for _, f := range n.Flow() {
				if strings.HasPrefix(f, "192.0.2.3:5060") {
					flow = append(flow, f)
				}
			}
		})
		return flow
	}
	assert.Equal(t, run(false), run(true), "traffic alice→bob does not change the fate of carol→dave")
}

func TestInject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, _, bob := pair(t, 1)
		proxy := siptest.Addr("198.51.100.7:5060")
		require.NoError(t, n.SetLink(proxy, bobAddr, siptest.Link{Delay: time.Second}))
		require.NoError(t, n.Inject(proxy, bobAddr, request("NOTIFY")))
		p, err := bob.Recv(t.Context())
		require.NoError(t, err)
		assert.Equal(t, proxy, p.From)
		assert.Equal(t, time.Second, p.DeliveredAt.Sub(p.SentAt))
		assert.Equal(t, []string{"198.51.100.7:5060→bob NOTIFY"}, n.Flow())
		assert.ErrorIs(t, n.Inject(netip.AddrPort{}, bobAddr, nil), siptest.ErrInvalidAddr)
		assert.ErrorIs(t, n.Inject(proxy, netip.AddrPort{}, nil), siptest.ErrInvalidAddr)
		n.ClearTrace()
		assert.Empty(t, n.Trace())
	})
}

func TestAutomaticAddressesRunOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		n := siptest.NewNetwork(1)
		defer n.Close()
		assert.Equal(t, start, n.Start())
		for range 254 {
			_, err := n.Listen("", netip.AddrPort{})
			require.NoError(t, err)
		}
		_, err := n.Listen("", netip.AddrPort{})
		assert.ErrorIs(t, err, siptest.ErrAddrInUse)
	})
}
