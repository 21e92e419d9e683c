package sip

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

func invite(w *wire, branch, callID string) []byte {
	return []byte("INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: " + w.via(branch) + "\r\nMax-Forwards: 70\r\n" +
		"From: <sip:flood@127.0.0.1>;tag=f1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: " + callID + "\r\n" +
		"CSeq: 1 INVITE\r\nContact: <sip:flood@127.0.0.1>\r\nContent-Length: 0\r\n\r\n")
}

func messageReq(w *wire, branch, callID string) []byte {
	return []byte("MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: " + w.via(branch) + "\r\nMax-Forwards: 70\r\n" +
		"From: <sip:flood@127.0.0.1>;tag=f1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: " + callID + "\r\n" +
		"CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi")
}

// finals collects the first final response of each Call-ID from w until
// want Call-IDs are answered or the deadline passes.
func finals(w *wire, want int, wait time.Duration) map[string]*message.Response {
	got := map[string]*message.Response{}
	deadline := time.After(wait)
	for len(got) < want {
		select {
		case r := <-w.resps:
			if r.StatusCode >= 200 && got[r.Header.CallID()] == nil {
				got[r.Header.CallID()] = r
			}
		case <-deadline:
			return got
		}
	}
	return got
}

// TestInviteFlood floods a UserAgent whose application never answers
// with INVITEs: MaxPendingInvites of them ring, every other one is
// answered 503 with Retry-After and never reaches the application; when
// the application answers one call, the next INVITE rings again.
func TestInviteFlood(t *testing.T) {
	var mu sync.Mutex
	var ringing []*Invitation
	h := startHostileUA(t, func(o *UserAgentOptions) {
		o.Limits = Limits{MaxPendingInvites: 10, RetryAfter: 7 * time.Second}
		o.Delegate.OnInvite = func(inv *Invitation) {
			mu.Lock()
			ringing = append(ringing, inv)
			mu.Unlock()
		}
	})
	for _, proto := range []transport.Proto{transport.UDP, transport.TCP} {
		w, err := dialWire(t, h, proto)
		require.NoError(t, err)
		const n = 200
		for i := range n {
			id := fmt.Sprintf("flood-%s-%d", proto, i)
			w.send(t, invite(w, "z9hG4bK-"+id, id))
		}
		got := finals(w, n-10, 20*time.Second)
		require.Len(t, got, n-10, "every INVITE past the cap answered over %s", proto)
		for id, r := range got {
			assert.Equal(t, 503, r.StatusCode, id)
			assert.Equal(t, "7", r.Header.Get("Retry-After"), id)
		}
		mu.Lock()
		assert.Len(t, ringing, 10, "calls that reached the application over %s", proto)
		first := ringing[0]
		mu.Unlock()

		// One answered: room for one more.
		require.NoError(t, first.Reject(context.Background(), 486, ""))
		w.send(t, invite(w, "z9hG4bK-late-"+string(proto), "late-"+string(proto)))
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(ringing) == 11
		}, 5*time.Second, 10*time.Millisecond)
		mu.Lock()
		for _, inv := range ringing[1:] {
			require.NoError(t, inv.Reject(context.Background(), 480, ""))
		}
		ringing = nil
		mu.Unlock()
		w.close()
	}
}

// TestServerTransactionCap floods a UserAgent with MESSAGEs over UDP:
// once MaxServerTransactions are alive (answered ones linger 32 s for
// retransmissions), new requests are answered 503 statelessly, so the
// transactions and the heap stay bounded, while a retransmission of an
// admitted request still gets its own answer.
func TestServerTransactionCap(t *testing.T) {
	var mu sync.Mutex
	delivered := 0
	h := startHostileUA(t, func(o *UserAgentOptions) {
		o.Limits = Limits{MaxServerTransactions: 50}
		o.Delegate.OnMessage = func(*IncomingRequest) { mu.Lock(); delivered++; mu.Unlock() }
	})
	w, err := dialWire(t, h, transport.UDP)
	require.NoError(t, err)
	require.NoError(t, w.udp.SetReadBuffer(8<<20))
	heap0 := heapInUse()
	const n = 3000
	for i := range n {
		id := fmt.Sprintf("msg-%d", i)
		w.send(t, messageReq(w, "z9hG4bK-"+id, id))
		if i%100 == 99 {
			time.Sleep(time.Millisecond) // a burst the loopback socket buffers hold
		}
	}
	got := finals(w, n, 20*time.Second)
	codes := map[int]int{}
	for _, r := range got {
		codes[r.StatusCode]++
		if r.StatusCode == 503 {
			assert.NotEmpty(t, r.Header.Get("Retry-After"))
		}
	}
	t.Logf("%d MESSAGEs answered of %d sent: %v", len(got), n, codes)
	assert.Greater(t, len(got), n*9/10, "answers")
	assert.LessOrEqual(t, codes[200], 50)
	assert.Equal(t, len(got), codes[200]+codes[503])
	var servers int
	require.NoError(t, h.ua.call(ctx5(t), func() { _, servers = h.ua.layer.Len() }))
	assert.LessOrEqual(t, servers, 50)
	mu.Lock()
	assert.LessOrEqual(t, delivered, 50)
	mu.Unlock()
	t.Logf("heap grew by %d KiB", (int64(heapInUse())-int64(heap0))>>10)
	assert.Less(t, int64(heapInUse())-int64(heap0), int64(8<<20))

	// A retransmission of an admitted MESSAGE gets its 200 again.
	var admitted string
	for id, r := range got {
		if r.StatusCode == 200 {
			admitted = id
			break
		}
	}
	require.NotEmpty(t, admitted)
	w.send(t, messageReq(w, "z9hG4bK-"+admitted, admitted))
	select {
	case r := <-w.resps:
		assert.Equal(t, admitted, r.Header.CallID())
		assert.Equal(t, 200, r.StatusCode)
	case <-time.After(5 * time.Second):
		t.Fatal("no answer to a retransmission")
	}
}
