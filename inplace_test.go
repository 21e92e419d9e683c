package sip

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInPlaceWorkArmsLoopTimer: a request handled in place by the
// transport's reader (the loop idle) starts the INVITE transaction's
// 100 Trying timer (200 ms); the loop goroutine, asleep on a timer an
// hour away, is woken for it, so the 100 goes out on time. Then Accept,
// called from OnInvite, also runs in place.
func TestInPlaceWorkArmsLoopTimer(t *testing.T) {
	hold := make(chan struct{})
	ua, err := NewUserAgent(UserAgentOptions{
		URI:       "sip:uas@127.0.0.1",
		Transport: TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
		Delegate: UserAgentDelegate{OnInvite: func(inv *Invitation) {
			<-hold
			assert.NoError(t, inv.Accept(context.Background(), AcceptOptions{}))
		}},
	})
	require.NoError(t, err)
	require.NoError(t, ua.Start(context.Background()))
	defer stopUA(ua)
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	defer release() // before Stop, which waits for OnInvite

	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer c.Close()
	dst := ua.listenAddrs[0].addr.String()
	local := c.LocalAddr().String()
	inv := fmt.Sprintf("INVITE sip:uas@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKinplace1\r\n"+
		"From: <sip:a@%s>;tag=f1\r\nTo: <sip:uas@%s>\r\nCall-ID: inplace1\r\nCSeq: 1 INVITE\r\n"+
		"Contact: <sip:a@%s>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", dst, local, local, dst, local)
	before := ua.core.inPlace.Load()
	sent := time.Now()
	_, err = c.WriteToUDP([]byte(inv), net.UDPAddrFromAddrPort(ua.listenAddrs[0].addr))
	require.NoError(t, err)
	buf := make([]byte, 4096)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, _, err := c.ReadFromUDP(buf)
	require.NoError(t, err)
	took := time.Since(sent)
	assert.True(t, strings.HasPrefix(string(buf[:n]), "SIP/2.0 100 "), "got %q", buf[:n])
	assert.GreaterOrEqual(t, took, 190*time.Millisecond)
	assert.Less(t, took, 2*time.Second, "the 100 Trying timer fired late")
	assert.Greater(t, ua.core.inPlace.Load(), before, "the INVITE was handled in place")

	// The loop goroutine sent the 100: let it go back to sleep, so
	// that the loop is idle when Accept comes.
	time.Sleep(100 * time.Millisecond)
	before = ua.core.inPlace.Load()
	release()
	n, _, err = c.ReadFromUDP(buf)
	require.NoError(t, err)
	ok := assert.True(t, strings.HasPrefix(string(buf[:n]), "SIP/2.0 200 "), "got %q", buf[:n])
	assert.Greater(t, ua.core.inPlace.Load(), before, "Accept ran in place")
	if !ok {
		return
	}
	// End the call from here, so that Stop has no BYE to wait for.
	var toLine string
	for _, l := range strings.Split(string(buf[:n]), "\r\n") {
		if strings.HasPrefix(l, "To:") {
			toLine = l
		}
	}
	for i, m := range []string{"ACK", "BYE"} {
		req := fmt.Sprintf("%s sip:uas@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKinplace%d\r\n"+
			"From: <sip:a@%s>;tag=f1\r\n%s\r\nCall-ID: inplace1\r\nCSeq: %d %s\r\n"+
			"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", m, dst, local, i+2, local, toLine, 1+i, m)
		_, err = c.WriteToUDP([]byte(req), net.UDPAddrFromAddrPort(ua.listenAddrs[0].addr))
		require.NoError(t, err)
	}
	n, _, err = c.ReadFromUDP(buf)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(buf[:n]), "SIP/2.0 200 "), "BYE answered: %q", buf[:n])
}

// TestLoopQueueNoLostWork: goroutines that queue work for the loop at
// once (blocking calls, which may do it in place, and posts, which never
// do) from many goroutines: every piece runs, each call returns, and the
// count is exact. A piece of work queued while another goroutine held
// the loop and then left without seeing it would wait for ever here (the
// UserAgent has no timer to wake the loop).
func TestLoopQueueNoLostWork(t *testing.T) {
	ua := startUA(t, "alice", UserAgentDelegate{})
	const goroutines, each = 8, 500
	var n int // loop-owned
	var wg sync.WaitGroup
	posted := make(chan struct{}, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if (g+i)%3 == 0 {
					ua.post(func() { n++; posted <- struct{}{} })
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := ua.callOn(ctx, func() { n++ }, nil)
				cancel()
				if !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	wg.Wait()
	var want int
	for g := range goroutines {
		for i := range each {
			if (g+i)%3 == 0 {
				want++
			}
		}
	}
	for range want {
		select {
		case <-posted:
		case <-time.After(10 * time.Second):
			t.Fatal("a posted piece of work never ran")
		}
	}
	var got int
	require.NoError(t, ua.callOn(context.Background(), func() { got = n }, nil))
	assert.Equal(t, goroutines*each, got)
}

// TestReaderHelpsLoopFarBehind: a reader that finds maxQueuedBatches
// pieces of work queued does not queue more: it waits to take the loop
// and runs the queue itself (the socket's buffer holds what comes next).
func TestReaderHelpsLoopFarBehind(t *testing.T) {
	ua := startUA(t, "alice", UserAgentDelegate{})
	c := ua.core
	started, release := make(chan struct{}), make(chan struct{})
	c.post(func() { close(started); <-release })
	<-started
	var batches atomic.Int64
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for range maxQueuedBatches + 10 {
			c.receiveBatch(nil)
			batches.Add(1)
		}
	}()
	require.Eventually(t, func() bool { return batches.Load() >= maxQueuedBatches }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	assert.LessOrEqual(t, c.queued.Load(), int64(maxQueuedBatches), "the reader stopped queueing")
	select {
	case <-finished:
		t.Fatal("the reader queued past the limit while the loop was held")
	default:
	}
	close(release)
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("the reader did not get going again")
	}
	require.Eventually(t, func() bool { return c.queued.Load() == 0 }, 5*time.Second, time.Millisecond)
}
