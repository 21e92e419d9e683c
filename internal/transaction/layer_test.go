package transaction

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

// recorder is a TU and transport that records what the layer does.
type recorder struct {
	log     []string
	sendErr error
	servers []*Server
	onReq   func(tx *Server, req *message.Request)
}

func (r *recorder) callbacks() Callbacks {
	return Callbacks{
		Send: func(_ Transaction, m message.Message, dest any) error {
			r.log = append(r.log, fmt.Sprintf("send %s to %v", first(m), dest))
			return r.sendErr
		},
		Request: func(tx *Server, req *message.Request, src any) {
			r.log = append(r.log, fmt.Sprintf("request %s tx=%v from %v", req.Method, tx != nil, src))
			if tx != nil {
				r.servers = append(r.servers, tx)
			}
			if r.onReq != nil {
				r.onReq(tx, req)
			}
		},
		Response: func(tx *Client, resp *message.Response) {
			r.log = append(r.log, fmt.Sprintf("response %d tx=%v", resp.StatusCode, tx != nil))
		},
		Failed: func(tx Transaction, err error) {
			kind := "transport"
			if errors.Is(err, ErrTimeout) {
				kind = "timeout"
			}
			r.log = append(r.log, fmt.Sprintf("failed %s %s", tx.Method(), kind))
		},
		Terminated: func(tx Transaction) {
			r.log = append(r.log, "terminated "+tx.Method())
		},
		Expired: func(method string, _ [2]uint64) {
			r.log = append(r.log, "expired "+method)
		},
	}
}

func first(m message.Message) string {
	switch m := m.(type) {
	case *message.Request:
		return m.Method
	case *message.Response:
		return fmt.Sprint(m.StatusCode)
	}
	return "?"
}

func (r *recorder) take() []string {
	l := r.log
	r.log = nil
	return l
}

func TestLayerClientFlow(t *testing.T) {
	rec := &recorder{}
	l := NewLayer(Config{}, rec.callbacks())
	req := newReq(t, "INVITE", "z9hG4bKc1")
	c, err := l.Request(req, "proxy", false, t0)
	require.NoError(t, err)
	assert.Equal(t, []string{"send INVITE to proxy"}, rec.take())
	assert.Equal(t, "proxy", c.Dest())
	d, ok := l.NextDeadline()
	assert.True(t, ok)
	assert.Equal(t, t0.Add(500*time.Millisecond), d)

	_, err = l.Request(req, "proxy", false, t0)
	assert.ErrorIs(t, err, ErrBadRequest, "branch in use")

	l.Tick(t0.Add(400 * time.Millisecond))
	assert.Empty(t, rec.take())
	l.Tick(t0.Add(500 * time.Millisecond))
	assert.Equal(t, []string{"send INVITE to proxy"}, rec.take())

	l.Receive(respTo(req, 180), "proxy", false, t0.Add(time.Second))
	l.Receive(respTo(req, 486), "proxy", false, t0.Add(2*time.Second))
	assert.Equal(t, []string{"response 180 tx=true", "send ACK to proxy", "response 486 tx=true"}, rec.take())

	// A response for another branch or method matches nothing.
	other := respTo(newReq(t, "INVITE", "z9hG4bKzz"), 200)
	l.Receive(other, "proxy", false, t0.Add(2*time.Second))
	cancelResp := respTo(newReq(t, "CANCEL", "z9hG4bKc1"), 200)
	l.Receive(cancelResp, "proxy", false, t0.Add(2*time.Second))
	assert.Equal(t, []string{"response 200 tx=false", "response 200 tx=false"}, rec.take())

	l.Tick(t0.Add(time.Minute))
	assert.Equal(t, []string{"terminated INVITE"}, rec.take())
	cl, sv := l.Len()
	assert.Equal(t, 0, cl)
	assert.Equal(t, 0, sv)
	_, ok = l.NextDeadline()
	assert.False(t, ok)
}

func TestLayerRequestErrors(t *testing.T) {
	rec := &recorder{sendErr: errors.New("unreachable")}
	l := NewLayer(Config{}, rec.callbacks())
	_, err := l.Request(newReq(t, "OPTIONS", "z9hG4bKx"), "d", false, t0)
	assert.ErrorIs(t, err, ErrTransport)
	cl, _ := l.Len()
	assert.Equal(t, 0, cl)
	_, err = l.Request(newReq(t, "OPTIONS", "z9hG4bK"), "d", false, t0)
	assert.ErrorIs(t, err, ErrBadRequest)
	_, err = l.Request(newReq(t, "OPTIONS", "oldstyle"), "d", false, t0)
	assert.ErrorIs(t, err, ErrBadRequest)
	_, err = l.Request(newReq(t, "ACK", "z9hG4bKx"), "d", false, t0)
	assert.ErrorIs(t, err, ErrBadRequest)
	_, err = l.Request(&message.Request{Method: "OPTIONS"}, "d", false, t0)
	assert.ErrorIs(t, err, ErrBadRequest)
}

func TestLayerRetransmitFailure(t *testing.T) {
	rec := &recorder{}
	l := NewLayer(Config{}, rec.callbacks())
	_, err := l.Request(newReq(t, "OPTIONS", "z9hG4bKx"), "d", false, t0)
	require.NoError(t, err)
	rec.take()
	rec.sendErr = errors.New("network down")
	l.Tick(t0.Add(time.Second))
	assert.Equal(t, []string{"send OPTIONS to d", "failed OPTIONS transport", "terminated OPTIONS"}, rec.take())
}

func TestLayerServerFlow(t *testing.T) {
	rec := &recorder{}
	l := NewLayer(Config{}, rec.callbacks())
	inv := newReq(t, "INVITE", "z9hG4bKs1")
	l.Receive(inv, "alice", false, t0)
	assert.Equal(t, []string{"request INVITE tx=true from alice"}, rec.take())
	require.Len(t, rec.servers, 1)
	s := rec.servers[0]
	assert.Equal(t, "alice", s.Source())

	// Retransmission: absorbed (no provisional yet).
	l.Receive(inv, "alice", false, t0.Add(100*time.Millisecond))
	assert.Empty(t, rec.take())
	// 100 Trying by the transaction after 200 ms.
	l.Tick(t0.Add(200 * time.Millisecond))
	assert.Equal(t, []string{"send 100 to alice"}, rec.take())

	// CANCEL: its own transaction, and it finds the INVITE.
	cancel := NewCancel(inv)
	l.Receive(cancel, "alice", false, t0.Add(300*time.Millisecond))
	assert.Equal(t, []string{"request CANCEL tx=true from alice"}, rec.take())
	got, found := l.MatchCancel(cancel)
	assert.True(t, found)
	assert.Same(t, s, got)
	got, found = l.MatchCancel(NewCancel(newReq(t, "INVITE", "z9hG4bKnone")))
	assert.False(t, found)
	assert.Nil(t, got)
	ct := rec.servers[1]
	require.NoError(t, l.Respond(ct, respTo(cancel, 200), t0.Add(300*time.Millisecond)))
	require.NoError(t, l.Respond(s, respTo(inv, 487), t0.Add(300*time.Millisecond)))
	assert.Equal(t, []string{"send 200 to alice", "send 487 to alice"}, rec.take())

	// The ACK for the 487 is absorbed by the transaction.
	ack := NewAckForFailure(inv, respTo(inv, 487))
	l.Receive(ack, "alice", false, t0.Add(400*time.Millisecond))
	assert.Empty(t, rec.take())
	assert.Equal(t, Confirmed, s.State())

	// An ACK that matches nothing goes to the TU without a transaction.
	l.Receive(newReq(t, "ACK", "z9hG4bKother"), "alice", false, t0)
	assert.Equal(t, []string{"request ACK tx=false from alice"}, rec.take())

	assert.ErrorIs(t, l.Respond(ct, respTo(cancel, 500), t0), ErrTerminated)
	l.Tick(t0.Add(time.Minute))
	// The CANCEL's transaction was retired when its 200 went out: its
	// end comes as an expiry.
	assert.ElementsMatch(t, []string{"terminated INVITE", "expired CANCEL"}, rec.take())
}

func TestLayerAcceptedAckGoesUp(t *testing.T) {
	rec := &recorder{}
	l := NewLayer(Config{}, rec.callbacks())
	rec.onReq = func(tx *Server, req *message.Request) {
		if req.Method == "INVITE" {
			// The TU answers from inside the callback.
			require.NoError(t, l.Respond(tx, respTo(req, 200), t0))
		}
	}
	inv := newReq(t, "INVITE", "z9hG4bKs2")
	l.Receive(inv, "alice", true, t0)
	assert.Equal(t, []string{"request INVITE tx=true from alice", "send 200 to alice"}, rec.take())
	s := rec.servers[0]
	assert.Equal(t, Accepted, s.State())
	// In Accepted the Layer retired the transaction: the ACK goes up
	// without it.
	ack := newReq(t, "ACK", "z9hG4bKs2")
	l.Receive(ack, "alice", true, t0.Add(time.Second))
	assert.Equal(t, []string{"request ACK tx=false from alice"}, rec.take())
	// The TU still sends its 2xx again through the *Server it holds.
	require.NoError(t, l.Respond(s, respTo(inv, 200), t0.Add(time.Second)))
	assert.Equal(t, []string{"send 200 to alice"}, rec.take())
	// A retransmitted INVITE is absorbed; a CANCEL finds the transaction
	// but nothing to cancel.
	l.Receive(inv, "alice", true, t0.Add(time.Second))
	assert.Empty(t, rec.take())
	got, found := l.MatchCancel(NewCancel(inv))
	assert.True(t, found)
	assert.Nil(t, got)
	assert.True(t, l.Matches(inv))
}

func TestLayerRFC2543Matching(t *testing.T) {
	rec := &recorder{}
	l := NewLayer(Config{}, rec.callbacks())
	inv := newReq(t, "INVITE", "old1")
	inv.Header.Set("Via", "SIP/2.0/UDP 192.0.2.9:5060")
	l.Receive(inv, "old", false, t0)
	l.Receive(inv, "old", false, t0.Add(time.Millisecond))
	assert.Equal(t, []string{"request INVITE tx=true from old"}, rec.take(), "retransmission matched without a branch")
	s := rec.servers[0]
	require.NoError(t, l.Respond(s, respTo(inv, 404), t0))
	rec.take()
	ack := NewAckForFailure(inv, respTo(inv, 404))
	ack.Header.Set("Via", "SIP/2.0/UDP 192.0.2.9:5060")
	l.Receive(ack, "old", false, t0.Add(time.Second))
	assert.Empty(t, rec.take())
	assert.Equal(t, Confirmed, s.State())
	// Another CSeq is another transaction.
	bye := newReq(t, "BYE", "old2")
	bye.Header.Set("Via", "SIP/2.0/UDP 192.0.2.9:5060")
	l.Receive(bye, "old", false, t0)
	assert.Equal(t, []string{"request BYE tx=true from old"}, rec.take())
}

func TestLayerServerMatchUsesSentBy(t *testing.T) {
	rec := &recorder{}
	l := NewLayer(Config{}, rec.callbacks())
	a := newReq(t, "OPTIONS", "z9hG4bKsame")
	b := newReq(t, "OPTIONS", "z9hG4bKsame")
	b.Header.Set("Via", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKsame")
	l.Receive(a, "a", false, t0)
	l.Receive(b, "b", false, t0)
	assert.Equal(t, []string{"request OPTIONS tx=true from a", "request OPTIONS tx=true from b"}, rec.take())
}

func TestLayerDropsUnreadable(t *testing.T) {
	rec := &recorder{}
	l := NewLayer(Config{}, rec.callbacks())
	l.Receive(&message.Request{Method: "OPTIONS"}, "x", false, t0)
	l.Receive(&message.Response{StatusCode: 200}, "x", false, t0)
	resp := respTo(newReq(t, "OPTIONS", "z9hG4bKq"), 200)
	resp.Header.Del("CSeq")
	l.Receive(resp, "x", false, t0)
	old := newReq(t, "OPTIONS", "old")
	old.Header.Del("CSeq")
	l.Receive(old, "x", false, t0)
	assert.Empty(t, rec.take())
}

func TestLayerManyTimers(t *testing.T) {
	rec := &recorder{}
	l := NewLayer(Config{}, rec.callbacks())
	const n = 500
	for i := range n {
		req := newReq(t, "OPTIONS", fmt.Sprintf("z9hG4bK%d", i))
		_, err := l.Request(req, "d", i%2 == 0, t0.Add(time.Duration(i)*time.Millisecond))
		require.NoError(t, err)
	}
	rec.take()
	// Step through virtual time: every transaction times out exactly once,
	// at its own start + 32 s.
	now := t0
	for {
		d, ok := l.NextDeadline()
		if !ok {
			break
		}
		require.False(t, d.Before(now), "deadlines never go back")
		now = d
		l.Tick(now)
	}
	var fails, sends int
	for _, e := range rec.take() {
		switch {
		case strings.HasPrefix(e, "failed"):
			fails++
		case strings.HasPrefix(e, "send"):
			sends++
		}
	}
	assert.Equal(t, n, fails)
	assert.Equal(t, n/2*10, sends, "unreliable ones retransmit 10 times before Timer F")
	assert.Equal(t, t0.Add(32*time.Second+(n-1)*time.Millisecond), now)
}

// TestLayerGivesBackBurstRoom checks that the maps and the deadline heap
// that grew for a burst of transactions are made anew once the burst's
// transactions have all ended, and not before.
func TestLayerGivesBackBurstRoom(t *testing.T) {
	rec := &recorder{}
	l := NewLayer(Config{}, rec.callbacks())
	n := shrinkAfter + 10
	for i := range n {
		req := newReq(t, "OPTIONS", fmt.Sprintf("z9hG4bKburst%d", i))
		l.Receive(req, "alice", false, t0)
	}
	for _, s := range rec.servers {
		require.NoError(t, l.Respond(s, respTo(s.Request(), 200), t0))
	}
	_, servers := l.Len()
	assert.Equal(t, n, servers)
	assert.Equal(t, n, l.lingering.len(), "all retired")
	assert.Nil(t, l.timers, "the heap's array was given back")
	assert.Zero(t, l.peakServers, "the map was made anew")
	// Timer J (64*T1) ends them all.
	l.Tick(t0.Add(time.Minute))
	_, servers = l.Len()
	assert.Zero(t, servers)
	assert.Nil(t, l.lingering.blocks, "the records' blocks were given back")
	assert.Nil(t, l.lingering.buckets, "the index was given back")
	assert.Nil(t, l.lingering.chunks, "the chunks were given back")
	// And the Layer goes on working.
	l.Receive(newReq(t, "OPTIONS", "z9hG4bKafter"), "alice", false, t0.Add(time.Minute))
	_, servers = l.Len()
	assert.Equal(t, 1, servers)
}

// TestLayerAbandonAndUnanswered: Abandon ends a transaction at once
// without sending or failing; Unanswered lists the server transactions
// without a final response.
func TestLayerAbandonAndUnanswered(t *testing.T) {
	rec := &recorder{}
	l := NewLayer(Config{}, rec.callbacks())
	c, err := l.Request(newReq(t, "OPTIONS", "z9hG4bKa1"), "proxy", false, t0)
	require.NoError(t, err)
	rec.take()
	l.Abandon(c)
	assert.Equal(t, []string{"terminated OPTIONS"}, rec.take())
	l.Abandon(c) // once only
	l.Tick(t0.Add(time.Minute))
	assert.Empty(t, rec.take(), "no retransmission, no failure after Abandon")

	msg := newReq(t, "MESSAGE", "z9hG4bKm1")
	opt := newReq(t, "OPTIONS", "z9hG4bKo1")
	l.Receive(msg, "alice", false, t0)
	l.Receive(opt, "alice", false, t0)
	require.Len(t, rec.servers, 2)
	require.NoError(t, l.Respond(rec.servers[1], respTo(opt, 200), t0))
	rec.take()
	var got []string
	l.Unanswered(func(s *Server) {
		got = append(got, s.Request().Method)
		require.NoError(t, l.Respond(s, respTo(s.Request(), 480), t0))
	})
	assert.Equal(t, []string{"MESSAGE"}, got)
	assert.Equal(t, []string{"send 480 to alice"}, rec.take())
	l.Unanswered(func(s *Server) { t.Errorf("%s still unanswered", s.Request().Method) })
}
