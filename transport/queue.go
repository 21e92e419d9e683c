package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
)

// This file holds the sends that never wait on the network, for callers
// that run an event loop: TrySendRequest and TrySendResponse hand a
// message to an open connection's write queue (or a UDP socket) and
// return, and say with a PendingError when a connection must be dialled
// or a name looked up first, which the caller does off its loop with Dial
// and ResolveNow/Resolve.

// ErrPending reports that a send needs something that may wait on the
// network first: a connection to dial or a DNS name to look up. See
// PendingError.
var ErrPending = errors.New("transport: destination not ready (needs a dial or a DNS look-up)")

// ErrQueueFull reports a message refused because its connection's write
// queue is full (Config.WriteQueue): the peer does not read fast enough.
var ErrQueueFull = errors.New("transport: write queue full")

// PendingError is returned by TrySendRequest and TrySendResponse when the
// message cannot be handed over at once. It wraps ErrPending.
type PendingError struct {
	// Target is the connection to open with Dial before trying again; its
	// Addr is invalid when a name must be looked up first (Host).
	Target Target
}

// Error describes what is missing.
func (e *PendingError) Error() string {
	if !e.Target.Addr.IsValid() {
		return fmt.Sprintf("transport: %s must be looked up first: %v", e.Target.Host, ErrPending)
	}
	return fmt.Sprintf("transport: no connection to %v yet: %v", e.Target, ErrPending)
}

// Unwrap returns ErrPending.
func (e *PendingError) Unwrap() error { return ErrPending }

// SendOptions modify TrySendRequest.
type SendOptions struct {
	// NoTCPSwitch keeps a large request on UDP (see
	// UDPConfig.MaxRequestSize), after its TCP connection failed.
	NoTCPSwitch bool
	// OnFail, if set, is called with the error of a queued write that
	// failed after TrySendRequest or TrySendResponse returned (the
	// connection closed, the write timed out). It runs on the
	// connection's writer goroutine and must not block; for a UDP
	// response held by Transport.Batch, on a goroutine of its own.
	OnFail func(error)
}

// queued is one message waiting in a connection's write queue.
type queued struct {
	bp     *[]byte
	onFail func(error)
}

// enqueue hands bp (a pooled buffer the queue now owns) to c's writer
// goroutine. It never blocks.
func (c *conn) enqueue(bp *[]byte, onFail func(error)) error {
	c.qmu.Lock()
	if c.qclosed {
		c.qmu.Unlock()
		putBuf(bp)
		return fmt.Errorf("transport: connection %v closed: %w", c.f, ErrNoConnection)
	}
	if len(c.q) >= c.t.cfg.WriteQueue {
		c.qmu.Unlock()
		putBuf(bp)
		return fmt.Errorf("transport: %v: %w (%d messages)", c.f, ErrQueueFull, c.t.cfg.WriteQueue)
	}
	c.q = append(c.q, queued{bp: bp, onFail: onFail})
	c.qmu.Unlock()
	select {
	case c.qsig <- struct{}{}:
	default:
	}
	return nil
}

// writeLoop drains the write queue until the connection closes; what is
// left then fails with ErrNoConnection. The queue is a slice taken whole
// at each wake-up: it holds memory only while messages wait.
func (c *conn) writeLoop() {
	var batch []queued
	for {
		select {
		case <-c.qsig:
		case <-c.done:
			c.qmu.Lock()
			c.qclosed = true
			left := c.q
			c.q = nil
			c.qmu.Unlock()
			for _, q := range left {
				if q.onFail != nil {
					q.onFail(fmt.Errorf("transport: connection %v closed: %w", c.f, ErrNoConnection))
				}
				putBuf(q.bp)
			}
			return
		}
		for {
			c.qmu.Lock()
			batch, c.q = c.q, batch[:0]
			c.qmu.Unlock()
			if len(batch) == 0 {
				break
			}
			for i := 0; i < len(batch); {
				j := c.coalescable(batch[i:]) + i
				if j-i == 1 {
					c.writeQueued(batch[i])
				} else {
					c.writeCoalesced(batch[i:j])
				}
				clear(batch[i:j])
				i = j
			}
		}
	}
}

// coalesceMax bounds the bytes of queued messages written with one write.
const coalesceMax = 64 << 10

// coalescable returns how many messages at the head of qs go in one write:
// on TCP and TLS, as many as fit coalesceMax (at least one); on WebSocket
// one, since each message is a frame of its own.
func (c *conn) coalescable(qs []queued) int {
	if c.ws != nil {
		return 1
	}
	n, size := 1, len(*qs[0].bp)
	for n < len(qs) && size+len(*qs[n].bp) <= coalesceMax {
		size += len(*qs[n].bp)
		n++
	}
	return n
}

// writeCoalesced writes several queued messages of a byte stream with one
// write (one system call, one TLS record when they fit) instead of one
// each. A failure closes the connection, so it fails them all.
func (c *conn) writeCoalesced(qs []queued) {
	bp := getBuf()
	b := (*bp)[:0]
	for _, q := range qs {
		b = append(b, *q.bp...)
	}
	*bp = b
	err := c.write(context.Background(), b)
	putBuf(bp)
	for _, q := range qs {
		if err != nil {
			if c.t.cfg.Tracer != nil {
				c.t.trace(trace.SendFailed, c.f, *q.bp, nil, err)
			}
			if q.onFail != nil {
				q.onFail(err)
			}
		}
		putBuf(q.bp)
	}
}

func (c *conn) writeQueued(q queued) {
	err := c.write(context.Background(), *q.bp)
	if err != nil {
		if c.t.cfg.Tracer != nil {
			c.t.trace(trace.SendFailed, c.f, *q.bp, nil, err)
		}
		if q.onFail != nil {
			q.onFail(err)
		}
	}
	putBuf(q.bp)
}

// linkNow returns the link for target if it needs no dial: a UDP socket
// (opened if need be, which does not wait on the network) or an open
// stream connection. Otherwise it returns a *PendingError.
func (t *Transport) linkNow(target Target) (link, error) {
	if target.Proto == UDP {
		l, err := t.udpLinkNow(target)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	if !target.Addr.IsValid() {
		return nil, fmt.Errorf("transport: send to %v: invalid address: %w", target, ErrUnsupported)
	}
	target.Addr = netip.AddrPortFrom(target.Addr.Addr().Unmap(), target.Addr.Port())
	switch target.Proto {
	case TCP, TLS, WS, WSS:
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.closed {
			return nil, ErrClosed
		}
		if target.ConnID != 0 {
			c := t.byID[target.ConnID]
			if c == nil || c.isClosed() {
				return nil, fmt.Errorf("transport: connection %d to %v: %w", target.ConnID, target.Addr, ErrNoConnection)
			}
			return c, nil
		}
		if c := t.conns[connKey{target.Proto, target.Addr}]; c != nil && !c.isClosed() {
			return c, nil
		}
		return nil, &PendingError{Target: target}
	}
	return nil, fmt.Errorf("transport: send over %q: %w", target.Proto, ErrUnsupported)
}

// udpLinkNow is linkNow for a UDP target, without boxing the link in an
// interface (that allocates, for every message sent).
func (t *Transport) udpLinkNow(target Target) (udpLink, error) {
	if !target.Addr.IsValid() {
		return udpLink{}, fmt.Errorf("transport: send to %v: invalid address: %w", target, ErrUnsupported)
	}
	target.Addr = netip.AddrPortFrom(target.Addr.Addr().Unmap(), target.Addr.Port())
	s, err := t.udpFor(context.Background(), target)
	if err != nil {
		return udpLink{}, err
	}
	return udpLink{s: s, to: target.Addr}, nil
}

// Dial opens the connection to target (or joins a dial to it already
// under way), so that TrySendRequest can use it; for UDP it opens a
// socket if none fits. It waits on the network: call it off an event
// loop. It returns the flow.
func (t *Transport) Dial(ctx context.Context, target Target) (Flow, error) {
	l, err := t.link(ctx, target)
	if err != nil {
		return Flow{}, err
	}
	return l.flow(), nil
}

// TrySendRequest is SendRequest to one target without waiting on the
// network: over UDP the datagram is handed to the socket; over a stream
// the message is put in the connection's write queue, from which the
// connection's writer goroutine writes it (a later failure goes to
// opts.OnFail). When the target has no open connection it returns a
// *PendingError naming the target to Dial; a full queue gives
// ErrQueueFull. req is modified (its top Via) and serialized before
// TrySendRequest returns, so the caller keeps ownership of it.
func (t *Transport) TrySendRequest(req *message.Request, tg Target, opts SendOptions) (Flow, error) {
	if tg.Proto == UDP && t.cfg.UDP.MaxRequestSize > 0 && tg.ConnID == 0 && !opts.NoTCPSwitch {
		if n := estimateSize(req); n > t.cfg.UDP.MaxRequestSize {
			tg.Proto = TCP
		}
	}
	if tg.Proto == UDP {
		l, err := t.udpLinkNow(tg)
		if err != nil {
			return Flow{}, err
		}
		f := l.flow()
		host, port := t.sentBy(f)
		setVia(&req.Header, f.Proto, host, port)
		return f, t.writeUDP(l, req, opts.OnFail, false)
	}
	l, err := t.linkNow(tg)
	if err != nil {
		return Flow{}, err
	}
	f := l.flow()
	host, port := t.sentBy(f)
	setVia(&req.Header, f.Proto, host, port)
	return f, t.writeNow(l, req, opts.OnFail, false)
}

// writeNow serializes msg and writes it to a UDP socket (or, with
// holdable, holds it for the end of a Batch), or queues it on a stream
// connection. Requests are not held: a UDP request that fails at once
// (no route to an IPv6 target) must say so, so that the caller can try
// the next target.
func (t *Transport) writeNow(l link, msg message.Message, onFail func(error), holdable bool) error {
	switch l := l.(type) {
	case *conn:
		bp := getBuf()
		*bp = msg.AppendTo((*bp)[:0])
		if t.cfg.Tracer != nil {
			t.trace(trace.Sent, l.f, *bp, msg, nil)
		}
		return l.enqueue(bp, onFail)
	case udpLink:
		return t.writeUDP(l, msg, onFail, holdable)
	}
	return t.writeMsg(context.Background(), l, msg)
}

// writeUDP is writeNow over UDP.
func (t *Transport) writeUDP(l udpLink, msg message.Message, onFail func(error), holdable bool) error {
	bp := getBuf()
	b := msg.AppendTo((*bp)[:0])
	*bp = b
	if t.cfg.Tracer != nil {
		t.trace(trace.Sent, l.flow(), b, msg, nil)
	}
	if holdable && len(b) <= maxUDPPayload && t.hold(held{s: l.s, to: l.to, bp: bp, onFail: onFail}) {
		return nil
	}
	err := l.write(context.Background(), b)
	if err != nil && t.cfg.Tracer != nil {
		t.trace(trace.SendFailed, l.flow(), b, msg, err)
	}
	putBuf(bp)
	return err
}

// TrySendResponse is SendResponse without waiting on the network: on the
// request's connection when it is open, else to the Via address over an
// open connection or a UDP socket. When that needs a DNS look-up or a new
// connection it returns a *PendingError: call SendResponse off the loop.
func (t *Transport) TrySendResponse(resp *message.Response, flow Flow, onFail func(error)) (Flow, error) {
	if flow.Proto.Stream() && flow.ID != 0 {
		t.mu.Lock()
		c := t.byID[flow.ID]
		t.mu.Unlock()
		if c != nil && !c.isClosed() {
			return flow, t.writeNow(c, resp, onFail, true)
		}
	}
	tg, err := t.responseTarget(context.Background(), resp, flow, false)
	if err != nil {
		return Flow{}, err
	}
	if tg.Proto == UDP {
		l, err := t.udpLinkNow(tg)
		if err != nil {
			return Flow{}, err
		}
		return l.flow(), t.writeUDP(l, resp, onFail, true)
	}
	l, err := t.linkNow(tg)
	if err != nil {
		return Flow{}, err
	}
	return l.flow(), t.writeNow(l, resp, onFail, true)
}

// ResolveNow is Resolve for URIs that need no DNS look-up (a numeric
// host); for others it returns a *PendingError: call Resolve off the
// loop.
func (t *Transport) ResolveNow(u message.URI) ([]Target, error) {
	var d noDNS
	ts, err := resolve(context.Background(), &d, u)
	if d.asked {
		return nil, &PendingError{Target: Target{Host: u.Host}}
	}
	return ts, err
}

// noDNS answers no query and notes that one was asked.
type noDNS struct{ asked bool }

func (d *noDNS) LookupSRV(context.Context, string, string, string) (string, []*net.SRV, error) {
	d.asked = true
	return "", nil, ErrPending
}

func (d *noDNS) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	d.asked = true
	return nil, ErrPending
}
