package transaction

import (
	"fmt"
	"time"

	"github.com/sipua/sip/message"
)

// Client is an INVITE or non-INVITE client transaction (RFC 3261 §17.1,
// RFC 6026 §7.2). It is not safe for concurrent use.
type Client struct {
	req      *message.Request
	ack      *message.Request // ACK for a non-2xx final response, built once
	cfg      Config
	invite   bool
	reliable bool
	state    State

	retrans timer    // A (INVITE) or E (non-INVITE)
	timeout timer    // B or F
	linger  deadline // D, K or M

	e   entry
	key clientKey // in the Layer's map
}

// NewClient starts a client transaction for req, which must carry its Via
// with a branch. reliable tells whether the transport is reliable (no
// retransmissions, zero linger timers). The returned actions send the
// request.
func NewClient(req *message.Request, reliable bool, cfg Config, now time.Time, out []Action) (*Client, []Action) {
	c := &Client{req: req, cfg: cfg.norm(), invite: req.Method == "INVITE", reliable: reliable, e: entry{index: -1}}
	if c.invite {
		c.state = Calling
	} else {
		c.state = Trying
	}
	if !reliable {
		c.retrans.set(now, c.cfg.T1)
	}
	c.timeout.set(now, 64*c.cfg.T1)
	return c, append(out, Action{Kind: Send, Msg: req})
}

// setReliable changes the transport's reliability before a response
// came: retransmissions run only on an unreliable one.
func (c *Client) setReliable(reliable bool, now time.Time) {
	c.reliable = reliable
	if c.state != Calling && c.state != Trying {
		return
	}
	if reliable {
		c.retrans.stop()
	} else if c.retrans.at.IsZero() {
		c.retrans.set(now, c.cfg.T1)
	}
}

// Request returns the transaction's request.
func (c *Client) Request() *message.Request { return c.req }

// Method returns the method of the request.
func (c *Client) Method() string { return c.req.Method }

// State returns the current state.
func (c *Client) State() State { return c.state }

// Invite reports whether this is an INVITE client transaction.
func (c *Client) Invite() bool { return c.invite }

// Reliable reports whether the transport is reliable.
func (c *Client) Reliable() bool { return c.reliable }

// Deadline returns when Tick must next be called, or the zero time when no
// timer runs.
func (c *Client) Deadline() time.Time {
	return earliest(c.retrans.at, c.timeout.at, c.linger.at)
}

func (c *Client) terminate(out []Action) []Action {
	c.state = Terminated
	c.retrans.stop()
	c.timeout.stop()
	c.linger.stop()
	return append(out, Action{Kind: Terminate})
}

// Receive feeds a response matched to this transaction.
func (c *Client) Receive(resp *message.Response, now time.Time, out []Action) []Action {
	code := resp.StatusCode
	if c.invite {
		return c.receiveInvite(resp, code, now, out)
	}
	switch c.state {
	case Trying, Proceeding:
		if code < 200 {
			c.state = Proceeding
			return append(out, Action{Kind: PassUp, Msg: resp})
		}
		c.state = Completed
		c.retrans.stop()
		c.timeout.stop()
		out = append(out, Action{Kind: PassUp, Msg: resp})
		if c.reliable {
			return c.terminate(out)
		}
		c.linger.set(now, c.cfg.T4) // Timer K
		return out
	}
	// Completed: retransmitted finals are absorbed.
	return out
}

func (c *Client) receiveInvite(resp *message.Response, code int, now time.Time, out []Action) []Action {
	switch c.state {
	case Calling, Proceeding:
		switch {
		case code < 200:
			c.state = Proceeding
			c.retrans.stop()
			// RFC 3261 keeps Timer B only in Calling; once a provisional
			// response arrives the TU decides how long to wait.
			c.timeout.stop()
			return append(out, Action{Kind: PassUp, Msg: resp})
		case code < 300:
			c.state = Accepted
			c.retrans.stop()
			c.timeout.stop()
			c.linger.set(now, 64*c.cfg.T1) // Timer M
			return append(out, Action{Kind: PassUp, Msg: resp})
		default:
			c.state = Completed
			c.retrans.stop()
			c.timeout.stop()
			c.ack = NewAckForFailure(c.req, resp)
			// The ACK goes first: the TU may send a new INVITE at once
			// (after a 401/407), which should follow it on the wire.
			out = append(out, Action{Kind: Send, Msg: c.ack}, Action{Kind: PassUp, Msg: resp})
			if c.reliable {
				return c.terminate(out)
			}
			c.linger.set(now, 32*time.Second) // Timer D: at least 32 s
			return out
		}
	case Completed:
		if code >= 300 {
			return append(out, Action{Kind: Send, Msg: c.ack})
		}
	case Accepted:
		if code >= 200 && code < 300 {
			// Retransmitted or forked 2xx: the TU acknowledges each.
			return append(out, Action{Kind: PassUp, Msg: resp})
		}
	}
	return out
}

// Tick fires the timers that are due at now.
func (c *Client) Tick(now time.Time, out []Action) []Action {
	if c.state == Terminated {
		return out
	}
	if c.timeout.due(now) {
		// Timer B or F.
		out = append(out, Action{Kind: Fail, Err: fmt.Errorf("%w: no final response to %s after %v", ErrTimeout, c.req.Method, c.timeout.interval)})
		return c.terminate(out)
	}
	if c.linger.due(now) {
		// Timer D, K or M.
		return c.terminate(out)
	}
	if c.retrans.due(now) {
		out = append(out, Action{Kind: Send, Msg: c.req})
		next := 2 * c.retrans.interval
		if !c.invite {
			// Timer E: doubling up to T2; T2 once a provisional arrived.
			if c.state == Proceeding || next > c.cfg.T2 {
				next = c.cfg.T2
			}
		}
		c.retrans.set(now, next)
	}
	return out
}

// TransportError reports that sending a message of this transaction
// failed.
func (c *Client) TransportError(err error, out []Action) []Action {
	if c.state == Terminated {
		return out
	}
	if c.state == Accepted {
		// Nothing is sent in Accepted; a late error is of no use.
		return c.terminate(out)
	}
	out = append(out, Action{Kind: Fail, Err: fmt.Errorf("%w: %w", ErrTransport, err)})
	return c.terminate(out)
}

// NewAckForFailure builds the ACK a client transaction sends for a 3xx–6xx
// response to INVITE (RFC 3261 §17.1.1.3): the Request-URI, Call-ID, From,
// top Via, CSeq number and Route headers of the INVITE, and the To of the
// response.
func NewAckForFailure(invite *message.Request, resp *message.Response) *message.Request {
	ack := &message.Request{Method: "ACK", URI: invite.URI}
	src := &invite.Header
	via, _ := src.TopVia()
	cseq, _ := src.CSeq()
	ack.Header.Add("Via", via.String())
	ack.Header.Add("Max-Forwards", "70")
	ack.Header.Add("From", src.Get("From"))
	ack.Header.Add("To", resp.Header.Get("To"))
	ack.Header.Add("Call-ID", src.CallID())
	ack.Header.Add("CSeq", message.CSeq{Seq: cseq.Seq, Method: "ACK"}.String())
	for _, f := range src.Fields() {
		if message.CanonicalName(f.Name) == "Route" {
			ack.Header.Add("Route", f.Value)
		}
	}
	return ack
}

// NewCancel builds the CANCEL for a pending request (RFC 3261 §9.1): the
// same Request-URI, Call-ID, To, From, CSeq number, top Via and Route
// headers, with method CANCEL.
func NewCancel(req *message.Request) *message.Request {
	c := &message.Request{Method: "CANCEL", URI: req.URI}
	src := &req.Header
	via, _ := src.TopVia()
	cseq, _ := src.CSeq()
	c.Header.Add("Via", via.String())
	c.Header.Add("Max-Forwards", "70")
	c.Header.Add("From", src.Get("From"))
	c.Header.Add("To", src.Get("To"))
	c.Header.Add("Call-ID", src.CallID())
	c.Header.Add("CSeq", message.CSeq{Seq: cseq.Seq, Method: "CANCEL"}.String())
	for _, f := range src.Fields() {
		if message.CanonicalName(f.Name) == "Route" {
			c.Header.Add("Route", f.Value)
		}
	}
	return c
}
