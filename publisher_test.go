package sip

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

func TestPublisher(t *testing.T) {
	// A presence server: entity tags e1, e2 …; a modification of e2 is
	// answered 412 (the server lost it), so the Publisher starts over.
	etags := 0
	srv := newFakeRegistrar(t, func(n int, req *message.Request) *message.Response {
		if req.Method != "PUBLISH" {
			return message.NewResponse(req, 405, "", "srv")
		}
		match := req.Header.Get("SIP-If-Match")
		if match == "e2" && len(req.Body) > 0 {
			return message.NewResponse(req, 412, "", "srv")
		}
		resp := message.NewResponse(req, 200, "", "srv")
		if req.Header.Get("Expires") == "0" {
			return resp
		}
		etags++
		resp.Header.Add("SIP-ETag", "e"+itoa(etags))
		resp.Header.Add("Expires", "2")
		return resp
	})
	ua := startUA(t, "alice", UserAgentDelegate{})
	p, err := NewPublisher(ua, "sip:alice@"+srv.addr(), "presence", PublisherOptions{Expires: 60, ExtraHeaders: []string{"X-Pub: 1"}})
	require.NoError(t, err)
	var states recorder[PublisherState]
	p.OnStateChange(states.add)

	assert.ErrorIs(t, p.Unpublish(ctx5(t)), ErrInvalidState, "nothing published")
	assert.ErrorIs(t, p.Publish(ctx5(t), "", nil), ErrBadOptions)

	require.NoError(t, p.Publish(ctx5(t), "application/pidf+xml", []byte("<open/>")))
	assert.Equal(t, Published, p.State())
	rs := srv.requests()
	require.Len(t, rs, 1)
	first := rs[0]
	assert.Equal(t, "presence", first.Header.Get("Event"))
	assert.Equal(t, "60", first.Header.Get("Expires"))
	assert.Equal(t, "1", first.Header.Get("X-Pub"))
	assert.Equal(t, "application/pidf+xml", first.Header.ContentType())
	assert.Equal(t, "<open/>", string(first.Body))
	assert.False(t, first.Header.Has("SIP-If-Match"))

	// Granted 2 s: refreshed after 1 s with the entity tag and no body.
	require.Eventually(t, func() bool { return len(srv.requests()) >= 2 }, 3*time.Second, 10*time.Millisecond)
	refresh := srv.requests()[1]
	assert.Equal(t, "e1", refresh.Header.Get("SIP-If-Match"))
	assert.Empty(t, refresh.Body)
	assert.False(t, refresh.Header.Has("Content-Type"))
	assert.Equal(t, first.Header.CallID(), refresh.Header.CallID())
	c0, _ := first.Header.CSeq()
	c1, _ := refresh.Header.CSeq()
	assert.Greater(t, c1.Seq, c0.Seq)

	// A modification of e2 meets 412: an initial PUBLISH of the new state.
	require.NoError(t, p.Publish(ctx5(t), "application/pidf+xml", []byte("<closed/>")))
	rs = srv.requests()
	require.Len(t, rs, 4)
	assert.Equal(t, "e2", rs[2].Header.Get("SIP-If-Match"))
	assert.Equal(t, "<closed/>", string(rs[2].Body))
	assert.False(t, rs[3].Header.Has("SIP-If-Match"))
	assert.Equal(t, "<closed/>", string(rs[3].Body))
	assert.Equal(t, Published, p.State())

	require.NoError(t, p.Unpublish(ctx5(t)))
	assert.Equal(t, Unpublished, p.State())
	rs = srv.requests()
	require.Len(t, rs, 5)
	assert.Equal(t, "0", rs[4].Header.Get("Expires"))
	assert.Equal(t, "e3", rs[4].Header.Get("SIP-If-Match"))
	assert.Empty(t, rs[4].Body)
	time.Sleep(1200 * time.Millisecond)
	assert.Len(t, srv.requests(), 5, "no refresh after Unpublish")

	require.NoError(t, p.Dispose(ctx5(t)))
	assert.Equal(t, PublisherTerminated, p.State())
	assert.ErrorIs(t, p.Publish(ctx5(t), "text/plain", []byte("x")), ErrInvalidState)
	require.Eventually(t, func() bool { return len(states.get()) == 3 }, time.Second, 5*time.Millisecond)
	assert.Equal(t, []PublisherState{Published, Unpublished, PublisherTerminated}, states.get())
}

func TestPublisherRejected(t *testing.T) {
	srv := newFakeRegistrar(t, func(n int, req *message.Request) *message.Response {
		if n == 1 {
			resp := message.NewResponse(req, 423, "", "srv")
			resp.Header.Add("Min-Expires", "120")
			return resp
		}
		if len(req.Body) > 0 && string(req.Body) == "bad" {
			return message.NewResponse(req, 400, "", "srv")
		}
		resp := message.NewResponse(req, 200, "", "srv")
		resp.Header.Add("SIP-ETag", "t"+itoa(n))
		return resp
	})
	ua := startUA(t, "alice", UserAgentDelegate{})
	p, err := NewPublisher(ua, "sip:alice@"+srv.addr(), "presence", PublisherOptions{Expires: 30})
	require.NoError(t, err)
	// 423: once more with Min-Expires.
	require.NoError(t, p.Publish(ctx5(t), "text/plain", []byte("ok")))
	rs := srv.requests()
	require.Len(t, rs, 2)
	assert.Equal(t, "120", rs[1].Header.Get("Expires"))
	// A refused modification leaves the earlier state published.
	var re *ResponseError
	require.ErrorAs(t, p.Publish(ctx5(t), "text/plain", []byte("bad")), &re)
	assert.Equal(t, 400, re.StatusCode)
	assert.Equal(t, Published, p.State())
	require.NoError(t, p.Publish(ctx5(t), "text/plain", []byte("ok again")))
	assert.Equal(t, "t2", srv.requests()[3].Header.Get("SIP-If-Match"))
	require.NoError(t, p.Dispose(ctx5(t)))
	assert.Equal(t, PublisherTerminated, p.State())

	_, err = NewPublisher(ua, "x", "presence", PublisherOptions{})
	assert.ErrorIs(t, err, ErrBadOptions)
	_, err = NewPublisher(ua, "sip:a@b", ";", PublisherOptions{})
	assert.ErrorIs(t, err, ErrBadOptions)
	assert.Equal(t, "Published", Published.String())
	assert.Equal(t, "Unknown", PublisherState(9).String())
}
