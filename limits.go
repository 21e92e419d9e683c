package sip

import (
	"strconv"
	"time"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// Limits bounds what a UserAgent takes on for others, so that a flood of
// requests cannot exhaust its memory or its application. The zero value
// selects the documented defaults; a negative field means no limit.
type Limits struct {
	// MaxServerTransactions caps the server transactions alive at once
	// (requests being answered, and answered ones kept for their
	// retransmissions: 32 s after a 2xx to INVITE, 32 s after any final
	// answer over UDP). A new request past the cap is answered 503
	// Service Unavailable with Retry-After, statelessly: it takes no
	// memory. Default 65536 (a few KiB each): about 1000 calls a second
	// answered over UDP, 2000 over TCP, sustained.
	MaxServerTransactions int
	// MaxPendingInvites caps the incoming calls (INVITEs outside a
	// dialog) that the application has not answered yet with a final
	// response. An INVITE past the cap is answered 503 with Retry-After
	// and never reaches Delegate.OnInvite. Default 64.
	MaxPendingInvites int
	// RetryAfter is the Retry-After of those 503 responses, in whole
	// seconds (rounded up). Default 5 s.
	RetryAfter time.Duration
}

const (
	defaultMaxServerTransactions = 65536
	defaultMaxPendingInvites     = 64
	defaultRetryAfter            = 5 * time.Second
)

func limitOr(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// norm returns l with defaults filled in; 0 then means "no limit".
func (l Limits) norm() Limits {
	l.MaxServerTransactions = limitOr(l.MaxServerTransactions, defaultMaxServerTransactions)
	l.MaxPendingInvites = limitOr(l.MaxPendingInvites, defaultMaxPendingInvites)
	if l.RetryAfter <= 0 {
		l.RetryAfter = defaultRetryAfter
	}
	return l
}

// retryAfter returns the Retry-After header value.
func (l Limits) retryAfter() string {
	s := (l.RetryAfter + time.Second - 1) / time.Second
	return strconv.FormatInt(int64(s), 10)
}

// overloadedResponse is the 503 with Retry-After of an overloaded
// core.
func (c *core) overloadedResponse(req *message.Request) *message.Response {
	resp := c.newResponse(req, 503, "")
	resp.Header.Add("Retry-After", c.cfg.limits.retryAfter())
	return resp
}

// admit is the gate every received message passes before the transaction
// layer, on the loop: it drops requests from outside the server flow when
// AcceptOnlyFromServer is set, and answers 503 to new requests past
// MaxServerTransactions. req is the request (possibly unparsable past its
// headers) or nil for a response.
func (c *core) admit(req *message.Request, flow transport.Flow) bool {
	if req == nil {
		return true
	}
	if c.cfg.acceptOnlyFromServer && !c.fromServer(flow) && !c.ours(req) {
		c.log.Debug("sip: request from outside the server flow dropped", "method", req.Method, "flow", flow)
		return false
	}
	if max := c.cfg.limits.MaxServerTransactions; max > 0 && req.Method != "ACK" {
		if _, n := c.layer.Len(); n >= max && !c.layer.Matches(req) {
			c.log.Debug("sip: too many server transactions, answering 503", "method", req.Method, "max", max)
			if err := c.respondNow(nil, c.overloadedResponse(req), flow); err != nil {
				c.log.Debug("sip: 503 not sent", "err", err)
			}
			return false
		}
	}
	return true
}

// fromServer reports whether flow is the current connection to the
// server: the same connection on a stream transport, the server's
// address over UDP.
func (c *core) fromServer(flow transport.Flow) bool {
	if c.up == nil {
		return false
	}
	f, ok := c.up.Flow()
	if !ok || f.Proto != flow.Proto {
		return false
	}
	if flow.Proto.Stream() {
		return f.ID != 0 && f.ID == flow.ID
	}
	return f.Remote == flow.Remote
}

// ours reports whether req belongs to something the UserAgent already
// has, which a scanner cannot guess: a dialog (an in-dialog request sent
// straight to the Contact by a peer when the proxy did not record-route),
// or a server transaction (a retransmission, a CANCEL).
func (c *core) ours(req *message.Request) bool {
	if d, _ := c.dialogs.MatchRequest(req); d != nil {
		return true
	}
	if req.Method == "CANCEL" {
		if _, found := c.layer.MatchCancel(req); found {
			return true
		}
	}
	return c.layer.Matches(req)
}

// inviteOverCap reports whether a new incoming call would exceed
// MaxPendingInvites.
func (ua *UserAgent) inviteOverCap() bool {
	max := ua.limits.MaxPendingInvites
	return max > 0 && len(ua.invitations) >= max
}
