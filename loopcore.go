package sip

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipua/sip/internal/dialog"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// core is the event loop and the state it owns: the transport, the
// transaction layer, the dialogs, the timers and the requests under way.
// Everything in it is read and written only by the holder of own, except
// the channels that feed the loop (post, call), the counters beside own
// and what is set before the loop starts (log, cfg, tp, listenAddrs).
// The loop goroutine (run) takes own for each turn; a goroutine that
// brings the loop work (a transport reader with a batch of messages, an
// application goroutine in an exported method) takes own and does the
// work itself when the loop is idle and nothing is queued before it
// (tryOwn), saving two goroutine switches; otherwise it queues the work.
// Either way the work is loop code: it never waits on the network, on
// the application or on the loop. Its methods that
// carry messages (layerSend, routeSend, respondNow, sendDirect in
// sendpath.go) never wait on the network: what may wait runs on a
// background goroutine that posts its outcome back.
//
// One core serves one or more UserAgents (accounts): a UserAgent made
// with NewUserAgent has a core of its own, those made with
// Stack.NewUserAgent share their Stack's. The UserAgent points at its core
// and adds the public face (options, delegates, state listeners, callback
// lanes) and its usages (sessions, registrations, subscriptions), which
// the loop owns too. Lookups by wire identity (client transactions,
// dialogs and their usages, claims) are the core's, so that a response or
// an in-dialog request finds its account; requests outside a dialog are
// dispatched to an account by the core (stack.go).
type core struct {
	log *slog.Logger
	cfg coreConfig

	// The loop: work queues what it is to do, quit ends it, loopDone
	// closes when it has ended.
	work     loopQueue
	quit     chan struct{}
	loopDone chan struct{}
	// own is held by whoever runs loop code: the loop goroutine or a
	// goroutine doing the loop's work in its place (tryOwn).
	own sync.Mutex
	// inline takes the callback lanes started by work a UDP reader does
	// in place, for the reader to run (receiveUDP).
	inline inlineLanes
	// queued counts the work queued and not yet run: work is done in
	// place only when none is, so that it never overtakes work queued
	// before it.
	queued atomic.Int64
	// wake tells the loop goroutine that there is queued work nobody
	// runs, or a timer earlier than the one it waits for.
	wake chan struct{}
	// armed is when the loop goroutine's timer fires; ended is set when
	// the loop has ended. Both under own.
	armed time.Time
	ended bool
	// inPlace counts the work done in place (tests).
	inPlace  atomic.Int64
	stopOnce sync.Once
	// batches are the batch events of receiveBatch: taken on a reader
	// goroutine, given back by the loop once handled.
	batches sync.Pool
	// calls are the loopCalls of UserAgent.call that have run, for
	// reuse.
	calls sync.Pool
	// bg are the goroutines doing what the loop must not wait for
	// (look-ups, dials); bgCtx ends when the core stops.
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc

	// Owned by the loop.
	tp       *transport.Transport
	up       *transport.Upstream
	layer    *transaction.Layer
	dialogs  *dialog.Set
	timers   timers
	outgoing map[*transaction.Client]*outgoing
	merged   map[mergeKey]struct{} // by request and account
	// mergeSeeds key the digests of mergeKey.
	mergeSeeds [2]maphash.Seed
	// mergedPeak is the most entries merged has held since it was last
	// made anew (a Go map keeps the buckets of its peak size).
	mergedPeak  int
	listenAddrs []listenAddr
	// usages are the dialogs' usages of every account, by dialog.
	usages map[dialog.ID]usage
	// claims may take a request with a To tag that matches no dialog
	// yet (a NOTIFY before the 2xx to its SUBSCRIBE); true: taken.
	claims map[any]func(tx *transaction.Server, req *message.Request) bool
	// accounts are the UserAgents attached (see stack.go).
	accounts accounts
	// upNow: the server connection is up; wasUp: it has been up before.
	upNow, wasUp bool
	// srcBoxes are the last flows received from, boxed for the
	// transaction layer's src (see boxedFlow), by remote port.
	srcBoxes [16]boxedFlow
}

// boxedFlow is a Flow and the same Flow in an interface.
type boxedFlow struct {
	flow transport.Flow
	box  any
}

// boxedFlow returns f in an interface, as the transaction layer takes a
// message's source. Boxing a Flow allocates, so the loop reuses the box
// of the last message from the same flow: a box is never written, so
// sharing it is safe, and a peer sends many messages from one socket.
func (c *core) boxedFlow(f transport.Flow) any {
	e := &c.srcBoxes[f.Remote.Port()%uint16(len(c.srcBoxes))]
	if e.box == nil || e.flow != f {
		e.flow, e.box = f, f
	}
	return e.box
}

// loopQueue is the loop's queue of work: a ring that grows as needed.
// Nothing waits to queue: a reader that finds the loop far behind helps
// it instead (receiveBatch).
type loopQueue struct {
	mu     sync.Mutex
	buf    []func() // its length is zero or a power of two
	head   int
	n      int
	closed bool // the loop has ended: nothing more is queued
}

// push queues f; false once the loop has ended.
func (q *loopQueue) push(f func()) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	if q.n == len(q.buf) {
		buf := make([]func(), max(2*len(q.buf), 64))
		for i := range q.n {
			buf[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
		}
		q.buf, q.head = buf, 0
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = f
	q.n++
	return true
}

// pop takes the oldest work, or nil.
func (q *loopQueue) pop() func() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil
	}
	f := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	return f
}

// close drops what is queued and refuses more; it returns how much it
// dropped.
func (q *loopQueue) close() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.n
	q.closed, q.buf, q.head, q.n = true, nil, 0, 0
	return n
}

// enqueue queues f for the loop, after the work queued before it; false
// once the loop has ended.
func (c *core) enqueue(f func()) bool {
	c.queued.Add(1)
	if !c.work.push(f) {
		c.queued.Add(-1)
		return false
	}
	return true
}

// post hands f to the event loop: the loop goroutine runs it, or a
// goroutine doing the loop's work in place when it gets to it. It is
// dropped once the loop has ended. The caller may hold locks of its own:
// post never runs loop code itself.
func (c *core) post(f func()) {
	if c.enqueue(f) {
		c.signal()
	}
}

// signal wakes the loop goroutine, if it is not awake already.
func (c *core) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// maxInPlace is the most queued work a goroutine runs in place in one
// go (kick) before it leaves the rest to the loop goroutine: a reader
// must get back to its socket.
const maxInPlace = 64

// kick runs queued work here while the loop is free: called by the
// goroutines that may do the loop's work in place (a transport reader,
// one in an exported method; not one that may hold a lock of its own),
// after they queued work, or after work in place (someone may have queued
// work while they held own, and gave up on taking it).
func (c *core) kick() {
	for c.queued.Load() != 0 && c.own.TryLock() {
		if c.ended {
			c.own.Unlock()
			return
		}
		c.inPlace.Add(1)
		more := c.runQueued(maxInPlace)
		c.release()
		if more {
			c.signal() // the loop goroutine takes the rest
			return
		}
	}
}

// runQueued runs up to limit queued works in one Transport.Batch (so
// that the UDP answers they cause leave together) and reports whether
// work is left. Under own.
func (c *core) runQueued(limit int) (more bool) {
	c.tp.Batch(func() {
		for range limit {
			f := c.work.pop()
			if f == nil {
				return
			}
			c.queued.Add(-1)
			f()
		}
		more = c.queued.Load() != 0
	})
	return more
}

// tryOwn takes own if the loop is idle, has not ended and has nothing
// queued: the caller may then run loop code in place, and must call
// release and then kick after it. It reports whether it took own.
func (c *core) tryOwn() bool {
	if c.queued.Load() != 0 || !c.own.TryLock() {
		return false
	}
	if c.ended || c.queued.Load() != 0 {
		c.own.Unlock()
		return false
	}
	c.inPlace.Add(1)
	return true
}

// release gives own back after work done in place, waking the loop
// goroutine if the work set a timer earlier than the one it waits for.
func (c *core) release() {
	if next, ok := c.nextDeadline(); ok && next.Before(c.armed) {
		c.signal()
	}
	c.own.Unlock()
}

// nextDeadline returns the earliest timer of the loop. Under own.
func (c *core) nextDeadline() (time.Time, bool) {
	next, ok := c.layer.NextDeadline()
	if t, ok2 := c.timers.next(); ok2 && (!ok || t.Before(next)) {
		next, ok = t, true
	}
	return next, ok
}

// call runs f on the event loop and waits for it, or for ctx.
func (c *core) call(ctx context.Context, f func()) error {
	if c.wake == nil {
		return ErrNotStarted
	}
	select {
	case <-c.quit:
		return ErrStopped
	default:
	}
	if ctx.Err() != nil {
		return canceled(ctx)
	}
	done := make(chan struct{})
	if !c.enqueue(func() { f(); close(done) }) {
		return ErrStopped
	}
	c.kick()
	var err error
	select {
	case <-done:
		return nil
	case <-c.quit:
		err = ErrStopped
	case <-ctx.Done():
		err = canceled(ctx)
	}
	// f may have run although the stop or the context came first to
	// this select: what it did counts.
	select {
	case <-done:
		return nil
	default:
		return err
	}
}

// run is the event loop.
func (c *core) run() {
	defer close(c.loopDone)
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	// armed is when tm fires. It is moved only to an earlier deadline:
	// a timer that fires early (its deadline went away or moved later)
	// costs one empty pass, while resetting it after every event costs a
	// runtime timer update and often a netpoller wake-up.
	c.own.Lock()
	c.armed = time.Now().Add(time.Hour)
	c.own.Unlock()
	for {
		c.own.Lock()
		next, ok := c.nextDeadline()
		var reset time.Duration
		if ok && next.Before(c.armed) {
			reset = max(time.Until(next), 1)
			c.armed = next
		}
		c.own.Unlock()
		if reset > 0 {
			tm.Reset(reset)
		}
		if c.queued.Load() != 0 {
			// Queued by someone who found own taken just now.
			c.signal()
		}
		select {
		case <-c.wake:
			c.own.Lock()
			c.runQueued(maxEventRun)
			c.own.Unlock()
			if c.queued.Load() != 0 {
				// Left over, or queued by someone who found own
				// taken: another turn, after a look at the timers.
				c.signal()
			}
		case <-tm.C:
			c.own.Lock()
			c.armed = time.Now().Add(time.Hour)
			tm.Reset(time.Hour)
			now := time.Now()
			c.layer.Tick(now)
			for _, e := range c.timers.due(now) {
				e.f()
			}
			c.runQueued(maxEventRun)
			c.own.Unlock()
			if c.queued.Load() != 0 {
				c.signal()
			}
		case <-c.quit:
			c.own.Lock()
			c.ended = true
			c.queued.Add(-int64(c.work.close()))
			c.own.Unlock()
			return
		}
	}
}

// maxEventRun is the most queued work the loop goroutine runs in one
// turn, between looks at its timers.
const maxEventRun = 64

// background runs f on a goroutine that Stop waits for; ctx ends when the
// core stops.
func (c *core) background(f func(ctx context.Context)) {
	c.bg.Go(func() { f(c.bgCtx) })
}
