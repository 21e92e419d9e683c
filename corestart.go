package sip

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"time"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
	"github.com/sipua/sip/transport"
)

// coreConfig is what a core takes from the options of its owner: a
// UserAgent of its own (UserAgentOptions) or a Stack (StackOptions).
type coreConfig struct {
	log                  *slog.Logger
	transport            TransportOptions
	timers               Timers
	tracer               trace.Tracer
	observer             *Observer
	userAgentString      string
	acceptOnlyFromServer bool
	limits               Limits // normalized
	// shared: a Stack's core, whose requests outside a dialog are
	// dispatched by Request-URI (404 when no account matches); a
	// UserAgent's own core takes every request for its one account.
	shared bool
}

// newCore returns a core that is not running yet.
func newCore(cfg coreConfig) *core {
	return &core{log: cfg.log, cfg: cfg, quit: make(chan struct{}), loopDone: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// start opens the transport and its Listen addresses and starts the loop.
// On failure nothing runs: the core can be dropped.
func (c *core) start(ctx context.Context) error {
	// The loop's state is made here, while the Listen sockets already
	// deliver: own keeps their readers from doing loop work in place
	// (tryOwn) before it is whole; they queue it for the loop instead.
	c.own.Lock()
	defer c.own.Unlock()
	c.outgoing = map[*transaction.Client]*outgoing{}
	c.merged = map[mergeKey]struct{}{}
	c.mergeSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	c.usages = map[dialog.ID]usage{}
	c.claims = map[any]func(*transaction.Server, *message.Request) bool{}
	c.accounts.init()
	c.dialogs = dialog.NewSet()
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	t := c.cfg.timers
	c.layer = transaction.NewLayer(transaction.Config{T1: t.T1, T2: t.T2, T4: t.T4},
		transaction.Callbacks{
			Send:       c.layerSend,
			Request:    c.onRequest,
			Response:   c.onResponse,
			Failed:     c.onFailed,
			Terminated: c.onTerminated,
			Expired:    c.onExpired,
			Retransmit: func(tx transaction.Transaction) { c.obsTransaction(tx, true) },
		})
	to := c.cfg.transport
	c.tp = transport.New(transport.Config{
		OnMessages:      c.receiveBatch,
		OnMessagesThen:  c.receiveUDP,
		OnUnreachable:   func(f transport.Flow, err error) { c.post(func() { c.failOnFlow(f, err) }) },
		Logger:          c.log,
		Tracer:          c.cfg.tracer,
		TLSConfig:       to.TLSConfig,
		ServerTLSConfig: to.ServerTLSConfig,
		Keepalive:       transport.Keepalive{Interval: to.KeepaliveInterval, Timeout: to.KeepaliveTimeout},
		ListenPacket:    to.ListenPacket,
		DialContext:     to.DialContext,
		DNS:             to.DNS,
		Limits:          to.MessageLimits,
		MaxConns:        to.MaxConns,
		ReadTimeout:     to.ReadTimeout,
		IdleTimeout:     to.IdleTimeout,
		WriteQueue:      to.WriteQueue,
	})
	for _, l := range to.Listen {
		proto, hostport, err := parseListen(l)
		if err != nil {
			c.bgCancel()
			_ = c.tp.Close()
			return err
		}
		addr, err := c.tp.Listen(ctx, proto, hostport)
		if err != nil {
			c.bgCancel()
			_ = c.tp.Close()
			return fmt.Errorf("%w: listen %s: %w", ErrTransportClosed, l, err)
		}
		c.listenAddrs = append(c.listenAddrs, listenAddr{proto, addr})
	}
	go c.run()
	return nil
}

// servers returns the configured servers.
func (c *core) servers() []ServerOption {
	to := c.cfg.transport
	if len(to.Servers) == 0 && to.Server != "" {
		return []ServerOption{{Address: to.Server}}
	}
	return to.Servers
}

// connect starts the connection to the server, if one is configured
// (nil otherwise). The loop must be running.
func (c *core) connect() (*transport.Upstream, error) {
	servers := c.servers()
	if len(servers) == 0 {
		return nil, nil
	}
	to := c.cfg.transport
	cfg := transport.UpstreamConfig{
		Backoff: transport.Backoff{Min: to.ReconnectMin, Max: to.ReconnectMax, MaxAttempts: to.ReconnectAttempts},
		OnState: func(ev transport.StateEvent) { c.post(func() { c.onUpstream(ev) }) },
	}
	for _, s := range servers {
		cfg.Servers = append(cfg.Servers, transport.Server{Addr: s.Address, Priority: s.Priority, Weight: s.Weight})
	}
	up, err := c.tp.Connect(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	_ = c.call(context.Background(), func() { c.up = up })
	return up, nil
}

// stop closes the server connection, ends the loop, closes the transport
// and waits for the background goroutines. Idempotent.
func (c *core) stop() {
	c.stopOnce.Do(func() {
		_ = c.call(context.Background(), func() {
			if c.up != nil {
				_ = c.up.Close()
			}
		})
		close(c.quit)
		<-c.loopDone
		c.bgCancel()
		_ = c.tp.Close()
		c.bg.Wait()
	})
}

// onUpstream follows the server connection for every account.
func (c *core) onUpstream(ev transport.StateEvent) {
	c.obsUpstream(ev, c.wasUp)
	switch ev.State {
	case transport.Connected:
		c.upNow = true
		// On a new connection every account registers again: a Stack
		// spreads them out, reregisterBatch accounts every
		// reregisterSpacing, so that thousands of REGISTERs do not fill
		// the connection's write queue or flood the registrar at once.
		for i, ua := range c.accounts.list() {
			ua.onConnected(time.Duration(i/reregisterBatch) * reregisterSpacing)
		}
		c.wasUp = true
	case transport.Disconnected:
		was := c.upNow
		c.upNow = false
		accounts := c.accounts.list()
		for _, ua := range accounts {
			ua.onDisconnected(ev)
		}
		closed := errors.Is(ev.Err, transport.ErrClosed)
		if was && ev.Flow.Proto.Stream() && !closed {
			c.failOnFlow(ev.Flow, fmt.Errorf("%w: connection to the server %v lost: %w", transport.ErrNoConnection, ev.Flow, ev.Err))
		}
		for _, ua := range accounts {
			ua.afterDisconnected(ev)
		}
	}
}

// A Stack's accounts register again after a reconnect reregisterBatch at
// a time, reregisterSpacing apart: 10 000 accounts in about 2 s.
const (
	reregisterBatch   = 500
	reregisterSpacing = 100 * time.Millisecond
)

// failOnFlow fails with err the client transactions whose requests went
// out on flow f: a connection that is gone (their responses cannot come
// back on another one), or a UDP peer that ICMP reports unreachable (RFC
// 3261 §18.4). A UDP peer is given up only when it still refuses after
// icmpGrace: one that is (re)starting gets the retransmissions. Runs on
// the loop.
func (c *core) failOnFlow(f transport.Flow, err error) {
	now := time.Now()
	var lost []*transaction.Client
	for tx := range c.outgoing {
		rt, ok := tx.Dest().(*route)
		if !ok || rt.flow != f {
			continue
		}
		if f.Proto == transport.UDP {
			if rt.refusedSince.IsZero() {
				rt.refusedSince = now
			}
			if now.Sub(rt.refusedSince) < c.icmpGrace() {
				continue
			}
		}
		lost = append(lost, tx)
	}
	for _, tx := range lost {
		c.layer.TransportError(tx, err, now)
	}
}

// icmpGrace is how long a UDP destination may refuse (ICMP port
// unreachable) before the requests to it fail: 2·T1, so that the refusal
// of the third transmission (at 3·T1) fails them, with room for late
// timers.
func (c *core) icmpGrace() time.Duration {
	t1 := c.cfg.timers.T1
	if t1 <= 0 {
		t1 = 500 * time.Millisecond
	}
	return 2 * t1
}

// receiveBatch takes the messages of one transport read onto the loop as
// one event; the UDP answers they cause leave together (Transport.Batch).
// The transport reuses ins once this returns, so the messages are copied
// into a batch event of the core's pool, which the loop gives back when
// it has handled them: no allocation per read once the pool is warm.
func (c *core) receiveBatch(ins []transport.Incoming) {
	// A read that took more than one message found the socket with a
	// backlog: the reader then leaves the loop's work to the loop
	// goroutine and goes back to its socket, so that reading (and
	// parsing) and handling overlap on two cores. Otherwise it does the
	// work in place when the loop is free: no goroutine switch.
	busy := len(ins) > 1
	if !busy && c.tryOwn() {
		// The loop is idle: handle the message here, on the reader.
		c.receiveInPlace(ins)
		c.release()
		c.kick()
		return
	}
	c.queueBatch(ins, busy)
}

// receiveUDP is receiveBatch for a read from a UDP socket
// (transport.Config.OnMessagesThen): the callback lanes that the work
// done in place starts are left to the reader, which runs them next,
// rather than each waking a worker goroutine (the transport hands the
// socket to another reader if they take long).
//
// Unlike receiveBatch, it handles a read of several messages in place too
// when the loop is idle: the reader would otherwise wake the loop
// goroutine, and that goroutine wake a worker per lane, each switch
// costing more than the overlap of reading and handling gains (at 8000
// calls/s, 65-80 against 47-58 µs per call).
func (c *core) receiveUDP(ins []transport.Incoming) transport.Then {
	if c.tryOwn() {
		c.inline.begin()
		c.receiveInPlace(ins)
		run := c.inline.end()
		c.release()
		c.kick()
		if run == nil {
			return nil
		}
		return run
	}
	c.queueBatch(ins, len(ins) > 1)
	return nil
}

// receiveInPlace handles messages on the goroutine that read them. Under
// own.
func (c *core) receiveInPlace(ins []transport.Incoming) {
	c.tp.Batch(func() {
		for _, in := range ins {
			c.receive(in)
		}
	})
}

// queueBatch queues a read's messages for the loop; busy: they were read
// in a backlog, the loop goroutine takes them.
func (c *core) queueBatch(ins []transport.Incoming, busy bool) {
	be, _ := c.batches.Get().(*batchEvent)
	if be == nil {
		be = &batchEvent{c: c}
		be.run = be.handle
	}
	be.ins = append(be.ins[:0], ins...)
	if c.queued.Load() >= maxQueuedBatches {
		// The loop is far behind: help it, rather than queue without
		// bound (the socket's buffer then holds what comes next).
		c.own.Lock()
		for !c.ended && c.runQueued(maxEventRun) {
		}
		c.release()
	}
	if c.enqueue(be.run) {
		if busy {
			c.signal()
		} else {
			c.kick()
		}
	}
}

// maxQueuedBatches is how much work may be queued for the loop before a
// reader stops queueing more and helps run it.
const maxQueuedBatches = 256

// batchEvent is one read batch on its way to the loop (receiveBatch);
// run is handle, bound once so that posting it allocates nothing.
type batchEvent struct {
	c   *core
	ins []transport.Incoming
	run func()
}

// maxPooledBatch is the largest batch whose array goes back to the pool;
// a larger one (a BatchSize above the default) is left to the collector.
const maxPooledBatch = 64

// handle runs on the loop: it hands the batch's messages to receive and
// gives the event back to the pool, without references to the messages.
func (be *batchEvent) handle() {
	c := be.c
	c.tp.Batch(be.receiveAll)
	clear(be.ins)
	if cap(be.ins) > maxPooledBatch {
		be.ins = nil
	} else {
		be.ins = be.ins[:0]
	}
	c.batches.Put(be)
}

// receiveAll hands the batch's messages to the core, in order.
func (be *batchEvent) receiveAll() {
	for _, in := range be.ins {
		be.c.receive(in)
	}
}

// receive takes a message from the transport.
func (c *core) receive(in transport.Incoming) {
	req, _ := in.Msg.(*message.Request)
	var pe *message.ParseError
	if in.Err != nil {
		if pe = parseError(in.Err); pe != nil {
			req, _ = pe.Message.(*message.Request)
		}
	}
	if !c.admit(req, in.Flow) {
		return
	}
	if in.Err != nil {
		if pe != nil {
			if req, ok := pe.Message.(*message.Request); ok && req.Method != "ACK" && req.Header.Has("Via") {
				c.respondStateless(req, in.Flow, pe.Status, "")
			}
		}
		return
	}
	if err := in.Msg.Validate(); err != nil {
		if req, ok := in.Msg.(*message.Request); ok && req.Method != "ACK" {
			c.respondStateless(req, in.Flow, message.StatusCode(err), "")
		}
		c.log.Debug("sip: invalid message dropped", "err", err, "flow", in.Flow)
		return
	}
	c.layer.Receive(in.Msg, c.boxedFlow(in.Flow), in.Flow.Proto.Stream(), time.Now())
}

// parseError returns the *message.ParseError in err's chain, or nil. It
// is a function of its own so that the variable errors.As fills moves to
// the heap only for a message that failed to parse, not for every one.
func parseError(err error) *message.ParseError {
	var pe *message.ParseError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// newResponse builds a response with the core's Server header (that of
// the UserAgent of a core of its own, the Stack's otherwise).
func (c *core) newResponse(req *message.Request, code int, reason string) *message.Response {
	resp := message.NewResponse(req, code, reason, "")
	if c.cfg.userAgentString != "-" {
		resp.Header.Add("Server", c.cfg.userAgentString)
	}
	return resp
}

// respondStateless answers a request that cannot enter a transaction.
func (c *core) respondStateless(req *message.Request, flow transport.Flow, code int, reason string) {
	if err := c.respondNow(nil, c.newResponse(req, code, reason), flow); err != nil {
		c.log.Debug("sip: response not sent", "code", code, "err", err)
	}
}

// onRequest takes a request from the transaction layer and hands it to
// its account, or answers it when none matches.
func (c *core) onRequest(tx *transaction.Server, req *message.Request, src any) {
	ua := c.accountFor(req)
	if ua == nil {
		if tx == nil || req.Method == "ACK" {
			return
		}
		code := 404
		switch {
		case req.Header.ToTag() != "" || req.Method == "CANCEL":
			code = 481
		case req.Method == "OPTIONS" && req.URI.User == "":
			// A probe of the Stack itself (a load balancer's health
			// check, a keepalive): it is up.
			code = 200
		}
		if err := c.layer.Respond(tx, c.newResponse(req, code, ""), time.Now()); err != nil {
			c.log.Debug("sip: response not sent", "code", code, "err", err)
		}
		return
	}
	ua.onRequest(tx, req, src)
}

// onResponse hands the responses of client transactions to the account
// that sent the request.
func (c *core) onResponse(tx *transaction.Client, resp *message.Response) {
	if tx == nil {
		return // stray response: nothing of ours waits for it
	}
	o := c.outgoing[tx]
	if o == nil || o.ended || o.ua == nil || o.ua.detached {
		return
	}
	o.ua.onResponse(tx, resp)
}

func (c *core) onFailed(tx transaction.Transaction, err error) {
	cl, ok := tx.(*transaction.Client)
	if !ok {
		c.log.Debug("sip: server transaction failed", "method", tx.Method(), "err", err)
		return
	}
	o := c.outgoing[cl]
	if o == nil || o.ua == nil || o.ua.detached {
		return
	}
	switch {
	case errors.Is(err, transaction.ErrTimeout):
		o.fail(fmt.Errorf("%w: %s to %v: %w", ErrTimeout, tx.Method(), cl.Dest(), err))
	default:
		o.fail(fmt.Errorf("%w: %w", ErrTransportClosed, err))
	}
}

func (c *core) onTerminated(tx transaction.Transaction) {
	c.obsTransaction(tx, false)
	switch t := tx.(type) {
	case *transaction.Client:
		delete(c.outgoing, t)
	case *transaction.Server:
		c.forgetMerged(t.TUKey())
	}
}

// onExpired is onTerminated for a server transaction the Layer had
// retired (it only absorbed retransmissions, and kept no *Server).
func (c *core) onExpired(method string, tuKey [2]uint64) {
	if o := c.cfg.observer; o != nil && o.TransactionEnded != nil {
		o.TransactionEnded(TransactionEvent{Method: method})
	}
	c.forgetMerged(tuKey)
}

// forgetMerged drops the merged-request key k of a transaction that
// ended. Only the transaction that put a key in the map holds it: a
// request with a key in the map gets 482 and no key.
func (c *core) forgetMerged(k mergeKey) {
	if k == (mergeKey{}) {
		return
	}
	delete(c.merged, k)
	c.shrinkMerged()
}

// shrinkMerged makes the merged-request map anew once it holds an
// eighth of their peak: a map keeps the buckets of its largest size, so
// after a burst of calls the heap would stay that of the burst. Each
// rebuild copies at most an eighth of the entries the peak added, so the
// cost per transaction stays constant.
func (c *core) shrinkMerged() {
	n := len(c.merged)
	if c.mergedPeak < 256 || n > c.mergedPeak/8 {
		return
	}
	merged := make(map[mergeKey]struct{}, n)
	for k, v := range c.merged {
		merged[k] = v
	}
	c.merged, c.mergedPeak = merged, n
}

// obsTransaction reports a transaction's end, or a retransmission.
func (c *core) obsTransaction(tx transaction.Transaction, retransmission bool) {
	o := c.cfg.observer
	if o == nil {
		return
	}
	f := o.TransactionEnded
	if retransmission {
		f = o.Retransmission
	}
	if f == nil {
		return
	}
	_, client := tx.(*transaction.Client)
	f(TransactionEvent{Method: tx.Method(), Client: client})
}

// obsUpstream reports the server connection's state.
func (c *core) obsUpstream(ev transport.StateEvent, reconnect bool) {
	o := c.cfg.observer
	if o == nil || o.Connection == nil {
		return
	}
	switch ev.State {
	case transport.Connected:
		o.Connection(ConnectionEvent{Server: ev.Server, Up: true, Reconnect: reconnect})
	case transport.Disconnected:
		o.Connection(ConnectionEvent{Server: ev.Server, Err: ev.Err})
	}
}
