package sip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// The send path. The event loop never waits on the network: it hands
// messages to the transport's per-connection write queues (or to a UDP
// socket) with TrySendRequest and TrySendResponse, which return at once.
// What may wait (an RFC 3263 look-up, a dial, a TLS or WebSocket
// handshake, a response to a host name) runs on a goroutine of its own
// that posts its outcome back to the loop; meanwhile the messages of the
// transactions concerned wait on their route, and the transactions' timers
// go on running. A write that fails later, or a full queue, comes back to
// the transaction as a transport error.

// lookupTimeout bounds one RFC 3263 look-up, and a response sent to a host
// name off the loop.
const lookupTimeout = 5 * time.Second

// route is where a client transaction's messages go: the server
// connection, or the targets a next hop resolved to. A CANCEL shares its
// INVITE's route. Owned by the loop.
type route struct {
	upstream bool
	uri      message.URI        // the next hop, while it resolves
	targets  []transport.Target // resolved, in the order to try
	next     int                // index of the target in use
	udpOnly  bool               // a large request's TCP connection failed
	flow     transport.Flow     // the flow last sent on
	errs     []error            // why targets failed, for the final error
	waiting  bool               // a look-up or dial is under way
	// refusedSince is when ICMP first reported the UDP destination
	// unreachable (see failOnFlow).
	refusedSince time.Time
	pending      []pendingSend // messages waiting for it, in order
}

// pendingSend is a message waiting for its route: tx is nil for an ACK to
// a 2xx, which has no transaction.
type pendingSend struct {
	tx  transaction.Transaction
	msg message.Message
}

// String names the destination for errors.
func (rt *route) String() string {
	switch {
	case rt.flow.Proto != "":
		return rt.flow.Proto.String() + " " + rt.flow.Remote.String()
	case rt.upstream:
		return "the server"
	case rt.next < len(rt.targets):
		return rt.targets[rt.next].String()
	}
	return rt.uri.String()
}

// routeFor decides where a request goes: the server connection, or the
// next hop (RFC 3263), resolved now when that needs no DNS, else by a
// look-up started here. reliable is the transport's reliability, or a
// guess from the URI while it resolves (corrected with SetReliable).
func (co *core) routeFor(req *message.Request) (*route, bool, error) {
	if co.up != nil {
		f, ok := co.up.Flow()
		if !ok {
			return nil, false, fmt.Errorf("%w: not connected", ErrTransportClosed)
		}
		return &route{upstream: true}, f.Proto.Stream(), nil
	}
	uri := dialog.NextHop(req)
	targets, err := co.tp.ResolveNow(uri)
	if err == nil {
		return &route{targets: targets}, targets[0].Proto.Stream(), nil
	}
	if !errors.Is(err, transport.ErrPending) {
		return nil, false, fmt.Errorf("%w: %w", ErrTransportClosed, err)
	}
	rt := &route{uri: uri, waiting: true}
	co.background(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
		targets, err := co.tp.Resolve(ctx, uri)
		co.post(func() { co.resolved(rt, targets, err) })
	})
	return rt, guessReliable(uri), nil
}

// guessReliable tells from a URI alone whether its transport will be
// reliable: an explicit transport, or sips (TLS).
func guessReliable(u message.URI) bool {
	if tp, ok := u.Params.Get("transport"); ok {
		p, ok := transport.ParseProto(tp)
		return ok && p.Stream()
	}
	return u.Scheme == "sips"
}

// resolved takes the outcome of a route's look-up. Runs on the loop.
func (co *core) resolved(rt *route, targets []transport.Target, err error) {
	rt.waiting = false
	if err == nil && len(targets) == 0 {
		err = transport.ErrResolve
	}
	if err != nil {
		rt.errs = append(rt.errs, err)
		co.flush(rt)
		return
	}
	rt.targets = targets
	reliable := targets[0].Proto.Stream()
	now := time.Now()
	for _, p := range rt.pending {
		if c, ok := p.tx.(*transaction.Client); ok {
			co.layer.SetReliable(c, reliable, now)
		}
	}
	co.flush(rt)
}

// dialed takes the outcome of a dial to tg for rt. Runs on the loop.
func (co *core) dialed(rt *route, tg transport.Target, err error) {
	rt.waiting = false
	if err != nil {
		rt.errs = append(rt.errs, err)
		if rt.next < len(rt.targets) && rt.targets[rt.next].Proto == transport.UDP && tg.Proto == transport.TCP {
			// TCP for a large request (RFC 3261 §18.1.1) failed: UDP it is.
			rt.udpOnly = true
		} else {
			rt.next++
		}
	}
	co.flush(rt)
}

// flush sends what waited on rt, in order, until it waits again.
func (co *core) flush(rt *route) {
	p := rt.pending
	rt.pending = nil
	for i, ps := range p {
		if rt.waiting {
			rt.pending = append(rt.pending, p[i:]...)
			return
		}
		if ps.tx != nil && ps.tx.State() == transaction.Terminated {
			continue
		}
		if err := co.routeSend(rt, ps.tx, ps.msg); err != nil {
			co.sendFailed(ps.tx, ps.msg, err)
		}
	}
}

// sendFailed reports a send that failed after the layer's Send returned.
// Runs on the loop.
func (co *core) sendFailed(tx transaction.Transaction, m message.Message, err error) {
	if tx == nil {
		co.log.Debug("sip: send failed", "msg", firstLine(m), "err", err)
		return
	}
	co.layer.TransportError(tx, err, time.Now())
}

// failLater returns the OnFail of a queued write of tx: the error goes to
// the transaction on the loop.
func (co *core) failLater(tx transaction.Transaction, m message.Message) func(error) {
	return func(err error) { co.post(func() { co.sendFailed(tx, m, err) }) }
}

// layerSend carries out the transaction layer's sends. It never waits on
// the network. Runs on the loop.
func (co *core) layerSend(tx transaction.Transaction, m message.Message, dest any) error {
	switch d := dest.(type) {
	case transport.Flow:
		resp, ok := m.(*message.Response)
		if !ok {
			return fmt.Errorf("sip: request to a flow")
		}
		return co.respondNow(tx, resp, d)
	case *route:
		return co.routeSend(d, tx, m)
	}
	return fmt.Errorf("sip: unknown destination %T", dest)
}

// routeSend sends a request of tx (nil for an ACK to a 2xx) on rt: to the
// target in use, the next one when a target fails, or, when a target needs
// a dial, after the dial completes off the loop. Runs on the loop.
func (co *core) routeSend(rt *route, tx transaction.Transaction, m message.Message) error {
	if rt.waiting {
		if !slices.ContainsFunc(rt.pending, func(p pendingSend) bool { return p.tx == tx && p.msg == m }) {
			rt.pending = append(rt.pending, pendingSend{tx, m})
		}
		return nil
	}
	req, ok := m.(*message.Request)
	if !ok {
		return fmt.Errorf("sip: response on a client route")
	}
	opts := transport.SendOptions{NoTCPSwitch: rt.udpOnly, OnFail: co.failLater(tx, m)}
	if rt.upstream {
		f, ok := co.up.Flow()
		if !ok {
			return fmt.Errorf("%w: not connected", transport.ErrNoConnection)
		}
		f, err := co.tp.TrySendRequest(req, f.Target(), opts)
		if err == nil {
			rt.flow = f
		}
		return err
	}
	for rt.next < len(rt.targets) {
		tg := rt.targets[rt.next]
		f, err := co.tp.TrySendRequest(req, tg, opts)
		if err == nil {
			rt.flow = f
			return nil
		}
		var pe *transport.PendingError
		if errors.As(err, &pe) {
			rt.waiting = true
			rt.pending = append(rt.pending, pendingSend{tx, m})
			dt := pe.Target
			co.background(func(ctx context.Context) {
				_, err := co.tp.Dial(ctx, dt)
				co.post(func() { co.dialed(rt, dt, err) })
			})
			return nil
		}
		rt.errs = append(rt.errs, err)
		if errors.Is(err, transport.ErrClosed) || errors.Is(err, transport.ErrMessageTooLarge) || errors.Is(err, transport.ErrQueueFull) {
			return err
		}
		rt.next++
	}
	if len(rt.errs) == 0 {
		return fmt.Errorf("%w: no target for %s", transport.ErrResolve, rt)
	}
	return errors.Join(rt.errs...)
}

// respondNow sends a response of tx (nil: a stateless one) to a request
// that came on flow, without waiting on the network: when the way back
// needs a look-up or a new connection, that happens on a goroutine of its
// own, whose failure comes back to tx. An error is one known at once.
// Runs on the loop.
func (co *core) respondNow(tx transaction.Transaction, resp *message.Response, flow transport.Flow) error {
	_, err := co.tp.TrySendResponse(resp, flow, co.failLater(tx, resp))
	if errors.Is(err, transport.ErrPending) {
		co.background(func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
			defer cancel()
			if _, err := co.tp.SendResponse(ctx, resp, flow); err != nil {
				co.post(func() { co.sendFailed(tx, resp, err) })
			}
		})
		return nil
	}
	return err
}

// sendDirect sends a request outside any transaction (an ACK to a 2xx).
// Runs on the loop.
func (co *core) sendDirect(req *message.Request) {
	if !req.Header.Has("Max-Forwards") {
		req.Header.Add("Max-Forwards", "70")
	}
	rt, _, err := co.routeFor(req)
	if err != nil {
		co.log.Debug("sip: no route", "method", req.Method, "err", err)
		return
	}
	if err := co.routeSend(rt, nil, req); err != nil {
		co.log.Debug("sip: send failed", "method", req.Method, "err", err)
	}
}

// firstLine returns the start line of m, for logs.
func firstLine(m message.Message) string {
	switch m := m.(type) {
	case *message.Request:
		return m.Method + " " + m.URI.String()
	case *message.Response:
		return fmt.Sprintf("%d %s", m.StatusCode, m.Reason)
	}
	return fmt.Sprintf("%T", m)
}
