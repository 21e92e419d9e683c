package sip_test

import (
	"context"
	sip "github.com/sipua/sip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/siptest"
)

// These tests run whole UserAgents on a siptest.Network inside a synctest
// bubble: no socket, no sleep, and every RFC 3261 timer runs on virtual
// time, so a 32-second timeout takes no wall time and is checked to the
// instant.

var (
	aliceAddr = siptest.Addr("192.0.2.1:5060")
	bobAddr   = siptest.Addr("192.0.2.2:5060")
)

// simPair starts alice and bob on n, listening on UDP at aliceAddr and
// bobAddr; bob accepts every MESSAGE and hands its body to the returned
// channel. Both are stopped when the test ends.
func simPair(t *testing.T, n *siptest.Network) (alice, bob *sip.UserAgent, got <-chan string) {
	t.Helper()
	msgs := make(chan string, 16)
	start := func(name string, addr string, d sip.UserAgentDelegate) *sip.UserAgent {
		ua, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI: "sip:" + name + "@" + addr,
			Transport: sip.TransportOptions{
				Listen:       []string{"udp://" + addr},
				ListenPacket: n.PacketListener(name),
			},
			Delegate: d,
		})
		require.NoError(t, err)
		require.NoError(t, ua.Start(context.Background()))
		t.Cleanup(func() { assert.NoError(t, ua.Stop(context.Background())) })
		return ua
	}
	alice = start("alice", aliceAddr.String(), sip.UserAgentDelegate{})
	bob = start("bob", bobAddr.String(), sip.UserAgentDelegate{OnMessage: func(r *sip.IncomingRequest) {
		msgs <- string(r.Request.Body)
		assert.NoError(t, r.Accept(context.Background()))
	}})
	return alice, bob, msgs
}

func sendMessage(ctx context.Context, t *testing.T, from *sip.UserAgent, body string) error {
	t.Helper()
	m, err := sip.NewMessager(from, "sip:bob@"+bobAddr.String(), []byte(body), "text/plain", sip.RequestOptions{})
	require.NoError(t, err)
	return m.Message(ctx)
}

// TestSiptestMessageAndOptions: alice sends bob a MESSAGE and an OPTIONS
// over a link with a 10 ms one-way delay.
func TestSiptestMessageAndOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		alice, _, got := simPair(t, n)
		ctx := context.Background()

		start := time.Now()
		require.NoError(t, sendMessage(ctx, t, alice, "hello bob"))
		assert.Equal(t, 20*time.Millisecond, time.Since(start), "one round trip")
		assert.Equal(t, "hello bob", <-got)

		resp, err := alice.Options(ctx, "sip:bob@"+bobAddr.String(), sip.RequestOptions{})
		require.NoError(t, err)
		assert.Equal(t, 200, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("Allow"), "MESSAGE")
		assert.Equal(t, 40*time.Millisecond, time.Since(start))

		synctest.Wait()
		assert.Equal(t, []string{
			"alice→bob MESSAGE",
			"bob→alice 200",
			"alice→bob OPTIONS",
			"bob→alice 200",
		}, n.Flow())
		t.Log("\n" + n.Ladder())
	})
}

// TestSiptestLossyLink: with 30% loss each way, the MESSAGE gets through
// thanks to retransmissions (Timer E on alice's side, the stored 200
// resent by bob's server transaction), and bob's application sees it
// once. The seed fixes which datagrams are lost.
func TestSiptestLossyLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(16)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Loss: 0.3, Delay: 10 * time.Millisecond}))
		alice, _, got := simPair(t, n)

		start := time.Now()
		require.NoError(t, sendMessage(context.Background(), t, alice, "through the storm"))
		elapsed := time.Since(start)
		assert.Equal(t, "through the storm", <-got)
		synctest.Wait()
		assert.Empty(t, got, "delivered to the application once")

		t.Logf("after %v:\n%s", elapsed, n.Ladder())
		assert.Equal(t, []string{
			"alice→bob MESSAGE (dropped)",
			"alice→bob MESSAGE",
			"bob→alice 200 (dropped)",
			"alice→bob MESSAGE",
			"bob→alice 200 (dropped)",
			"alice→bob MESSAGE",
			"bob→alice 200 (dropped)",
			"alice→bob MESSAGE",
			"bob→alice 200",
		}, n.Flow())
		// Sent at 0 and resent at 0.5, 1.5, 3.5 and 7.5 s (Timer E: T1,
		// doubling); the last 200 arrives 20 ms after the last resend.
		assert.Equal(t, 7520*time.Millisecond, elapsed)
		s := n.Stats()
		assert.Equal(t, uint64(9), s.Sent)
		assert.Equal(t, uint64(4), s.Lost)
	})
}

// TestSiptestPartition: with the link down, the MESSAGE is retransmitted
// until Timer F (64·T1) ends it with sip.ErrTimeout, to the instant.
func TestSiptestPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		alice, _, got := simPair(t, n)
		n.SetDown(aliceAddr, bobAddr, true)

		start := time.Now()
		err := sendMessage(context.Background(), t, alice, "anyone there?")
		assert.ErrorIs(t, err, sip.ErrTimeout)
		const t1 = 500 * time.Millisecond // RFC 3261 default
		assert.Equal(t, 64*t1, time.Since(start), "Timer F")
		assert.Empty(t, got)

		// Sent at 0 and resent at 0.5, 1.5, 3.5, 7.5 s, then every T2
		// (4 s) until 31.5 s: 11 datagrams, all dropped.
		flow := n.Flow()
		assert.Equal(t, 11, len(flow), "%q", flow)
		for _, f := range flow {
			assert.Equal(t, "alice→bob MESSAGE (dropped)", f)
		}
		ladder := n.Ladder()
		t.Log("\n" + ladder)
		assert.True(t, strings.Contains(ladder, "31.500s"), "last retransmission at 31.5 s")
		assert.Equal(t, uint64(11), n.Stats().Partitioned)
	})
}
