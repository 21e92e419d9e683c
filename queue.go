package sip

import (
	"bytes"
	"container/heap"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// callbackQueue is a lane of user callbacks: it runs them one at a time,
// in order, on a goroutine that serves it only while there is work, and
// never while a lock is held. A slow callback delays the callbacks after
// it on its lane, not the stack and not the other lanes: the UserAgent
// has a lane of its own, and each Session one (see lanes).
type callbackQueue struct {
	set     *lanes // nil: a lane of its own, not waited for by Stop
	mu      sync.Mutex
	fs      []func()
	running bool
	// first holds the callbacks of a lane that has few waiting at once
	// (most have at most four), so that a push allocates no array.
	first [4]func()
}

func (q *callbackQueue) push(f func()) {
	q.mu.Lock()
	if q.fs == nil {
		q.fs = q.first[:0]
	}
	q.fs = append(q.fs, f)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if !start {
		return
	}
	if q.set == nil {
		go q.drain()
		return
	}
	q.set.dispatch(q)
}

// drain runs the callbacks of q until it is empty.
func (q *callbackQueue) drain() {
	for {
		q.mu.Lock()
		if len(q.fs) == 0 {
			q.fs = nil            // an idle lane holds no array but first
			q.first = [4]func(){} // nor callbacks moved out of it by a growth
			q.running = false
			// Under q.mu: a push that starts the lane again dispatches
			// it after this end.
			q.set.end(q)
			q.mu.Unlock()
			return
		}
		f := q.fs[0]
		q.fs[0] = nil
		q.fs = q.fs[1:]
		if len(q.fs) == 0 {
			q.fs = q.first[:0] // the next pushes fill first from its start
		}
		q.mu.Unlock()
		f()
	}
}

// maxIdleWorkers bounds the goroutines a UserAgent keeps waiting for a
// lane to run, whatever the number of calls: under load a burst of new
// calls (one read batch, the loop catching up after a GC) runs hundreds
// of lanes at once. Each waits between workerIdle and twice that (one
// reaper timer for all, not a timer per worker reset at every lane): a
// UserAgent with nothing to do keeps none.
const (
	maxIdleWorkers = 256
	workerIdle     = 50 * time.Millisecond
)

// lanes follows the running lanes of a UserAgent so that Stop can wait
// until every callback has returned, except those that are themselves
// waiting in Stop: a callback may call Stop (that would otherwise wait
// for the lane it runs on, for ever). Its lanes run on worker goroutines
// that outlive a lane's work: one that has drained a lane waits for the
// next lane with work, up to maxIdleWorkers of them, until Stop. Handing
// a lane to a waiting worker costs less than starting a goroutine and
// finding its id.
type lanes struct {
	mu      sync.Mutex
	cond    sync.Cond
	running map[*callbackQueue]int64 // the goroutine of each busy lane (0: not yet running)
	inStop  map[int64]int            // goroutines inside Stop
	idle    []idleWorker             // waiting workers, the longest waiting first; a nil lane ends one
	closed  bool                     // Stop has ended the workers: none waits any more
	exiting sync.WaitGroup           // idle workers told to end (by close or reap)
	gen     uint64                   // reaper rounds so far
	reaper  *time.Timer              // runs reap while workers wait; nil before the first
	reaping bool                     // reaper is armed
	// runs counts the lanes handed to a worker: the hops from the loop
	// to the application (the tests check which calls need none).
	runs atomic.Int64
	// inline, when set, takes the lanes that a UDP reader runs itself
	// (see inlineLanes).
	inline *inlineLanes
}

func (l *lanes) lock() {
	l.mu.Lock()
	if l.running == nil {
		l.running = map[*callbackQueue]int64{}
		l.inStop = map[int64]int{}
		l.cond.L = &l.mu
	}
}

// idleWorker is a worker waiting for a lane: id is its goroutine, gen
// the reaper round in which it began to wait.
type idleWorker struct {
	ch  chan *callbackQueue
	id  int64
	gen uint64
}

// dispatch marks q running and runs it on a waiting worker, or on a new
// one.
func (l *lanes) dispatch(q *callbackQueue) {
	l.runs.Add(1)
	if l.inline.take(l, q) {
		return
	}
	l.toWorker(q)
}

// toWorker runs q, a lane about to start (or collected by inline), on a
// waiting worker, or on a new one.
func (l *lanes) toWorker(q *callbackQueue) {
	l.lock()
	if n := len(l.idle); n > 0 {
		w := l.idle[n-1]
		l.idle[n-1] = idleWorker{}
		l.idle = l.idle[:n-1]
		l.running[q] = w.id
		l.mu.Unlock()
		w.ch <- q // buffered: never blocks
		return
	}
	l.running[q] = 0 // until the new goroutine knows its id
	l.mu.Unlock()
	go l.work(q)
}

// work is a worker goroutine: it runs q, then the lanes handed to it
// while it waits, until it is not wanted any more: Stop, idle for
// workerIdle (reap), or enough others waiting.
func (l *lanes) work(q *callbackQueue) {
	w := idleWorker{id: goid()}
	l.started(q, w.id)
	for {
		q.drain()
		l.lock()
		if l.closed || len(l.idle) >= maxIdleWorkers {
			l.mu.Unlock()
			return
		}
		if w.ch == nil {
			w.ch = make(chan *callbackQueue, 1)
		}
		w.gen = l.gen
		l.idle = append(l.idle, w)
		l.armReaper()
		l.mu.Unlock()
		if q = <-w.ch; q == nil {
			l.exiting.Done()
			return
		}
	}
}

// armReaper starts the reaper timer if it is not running. Under mu.
func (l *lanes) armReaper() {
	if l.reaping {
		return
	}
	l.reaping = true
	if l.reaper == nil {
		l.reaper = time.AfterFunc(workerIdle, l.reap)
		return
	}
	l.reaper.Reset(workerIdle)
}

// reap ends the workers that have waited since before the last round
// (workerIdle to 2·workerIdle), and runs again while any wait.
func (l *lanes) reap() {
	l.lock()
	if l.closed {
		l.reaping = false
		l.mu.Unlock()
		return
	}
	l.gen++
	n := 0
	for n < len(l.idle) && l.idle[n].gen+2 <= l.gen {
		n++
	}
	l.exiting.Add(n)
	for _, w := range l.idle[:n] {
		w.ch <- nil // buffered: never blocks
	}
	l.idle = slices.Delete(l.idle, 0, n)
	l.reaping = false
	if len(l.idle) > 0 {
		l.armReaper()
	}
	l.mu.Unlock()
}

// close ends the waiting workers and waits for them; a lane that starts
// later runs on a worker that ends when the lane is empty. Called by Stop
// once every lane is idle.
func (l *lanes) close() {
	l.lock()
	l.closed = true
	if l.reaper != nil {
		l.reaper.Stop()
		l.reaping = false
	}
	idle := l.idle
	l.idle = nil
	l.exiting.Add(len(idle))
	l.mu.Unlock()
	for _, w := range idle {
		w.ch <- nil
	}
	l.exiting.Wait()
}

func (l *lanes) started(q *callbackQueue, id int64) {
	l.lock()
	l.running[q] = id
	l.cond.Broadcast()
	l.mu.Unlock()
}

func (l *lanes) end(q *callbackQueue) {
	if l == nil {
		return
	}
	l.lock()
	delete(l.running, q)
	l.cond.Broadcast()
	l.mu.Unlock()
}

// enterStop marks the calling goroutine as inside Stop until the
// returned function is called.
func (l *lanes) enterStop() (leave func()) {
	id := goid()
	l.inline.relieveGoroutine(id)
	l.lock()
	l.inStop[id]++
	l.cond.Broadcast()
	l.mu.Unlock()
	return func() {
		l.lock()
		if l.inStop[id]--; l.inStop[id] == 0 {
			delete(l.inStop, id)
		}
		l.mu.Unlock()
	}
}

// wait blocks until every lane is idle or runs a callback that is inside
// Stop.
func (l *lanes) wait() {
	l.lock()
	defer l.mu.Unlock()
	for l.busy() {
		l.cond.Wait()
	}
}

func (l *lanes) busy() bool {
	for _, id := range l.running {
		if id == 0 || l.inStop[id] == 0 {
			return true
		}
	}
	return false
}

// goid returns the calling goroutine's id, read from its stack header
// ("goroutine 18 [running]:"). It tells a lane's goroutine apart from
// others; nothing else depends on it.
func goid() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	var id int64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + int64(c-'0')
	}
	return id
}

// timerEntry is one pending core timer.
type timerEntry struct {
	at    time.Time
	f     func()
	index int // -1 once fired or stopped
}

// timers is the core's own deadline heap (registration refresh, 2xx
// retransmission, back-off …), next to the transaction layer's.
type timers []*timerEntry

func (t timers) Len() int           { return len(t) }
func (t timers) Less(i, j int) bool { return t[i].at.Before(t[j].at) }
func (t timers) Swap(i, j int) {
	t[i], t[j] = t[j], t[i]
	t[i].index = i
	t[j].index = j
}
func (t *timers) Push(x any) {
	e := x.(*timerEntry)
	e.index = len(*t)
	*t = append(*t, e)
}
func (t *timers) Pop() any {
	old := *t
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*t = old[:len(old)-1]
	e.index = -1
	return e
}

func (t *timers) add(at time.Time, f func()) *timerEntry {
	e := &timerEntry{at: at, f: f}
	heap.Push(t, e)
	return e
}

// push adds an entry its owner keeps (and may push again once it has
// fired or been stopped).
func (t *timers) push(e *timerEntry) { heap.Push(t, e) }

func (t *timers) stop(e *timerEntry) {
	if e != nil && e.index >= 0 {
		heap.Remove(t, e.index)
	}
}

// due pops and returns the entries due at now.
func (t *timers) due(now time.Time) []*timerEntry {
	var out []*timerEntry
	for len(*t) > 0 && !(*t)[0].at.After(now) {
		out = append(out, heap.Pop(t).(*timerEntry))
	}
	return out
}

func (t timers) next() (time.Time, bool) {
	if len(t) == 0 {
		return time.Time{}, false
	}
	return t[0].at, true
}

// inlineLanes collects the lanes that work done in place on a UDP reader
// starts (lanes.dispatch), so that the reader runs them itself once it
// has let go of the loop (transport.Then) instead of waking a worker for
// each: a call's callbacks then cost no goroutine switch. The transport
// relieves a reader whose callbacks take long, so they delay no other
// call by more than its UDPConfig.Relief. It is shared by the lanes of
// every UserAgent on the core.
type inlineLanes struct {
	active atomic.Bool // a reader is collecting
	mu     sync.Mutex
	lanes  []inlineLane
	// ids caches the goroutine id of each reader (by its number), which
	// the lanes record for Stop (goid is slow).
	ids map[uint64]int64
	// runs are the runs in progress, by the goroutine id of their reader.
	runs map[int64]*inlineRun
	// ran counts the lanes readers ran (for tests).
	ran atomic.Int64
}

type inlineLane struct {
	set *lanes
	q   *callbackQueue
}

// begin starts collecting. Under core.own.
func (il *inlineLanes) begin() { il.active.Store(true) }

// end stops collecting and returns what was collected, or nil. Under
// core.own.
func (il *inlineLanes) end() *inlineRun {
	il.mu.Lock()
	il.active.Store(false)
	if len(il.lanes) == 0 {
		il.mu.Unlock()
		return nil
	}
	// A run is not reused: the transport may call Relieve after Run
	// returned.
	run := &inlineRun{il: il}
	run.lanes = append(run.first[:0], il.lanes...)
	clear(il.lanes)
	il.lanes = il.lanes[:0]
	il.mu.Unlock()
	return run
}

// take collects q, a lane of l about to start, when a reader is
// collecting; false: dispatch it to a worker.
func (il *inlineLanes) take(l *lanes, q *callbackQueue) bool {
	if il == nil || !il.active.Load() {
		return false
	}
	il.mu.Lock()
	defer il.mu.Unlock()
	if !il.active.Load() {
		return false
	}
	l.lock()
	l.running[q] = 0 // busy for Stop from now: the reader records its id
	l.mu.Unlock()
	il.lanes = append(il.lanes, inlineLane{l, q})
	return true
}

// goidOf returns the goroutine id of the reader numbered reader, which
// is the calling goroutine.
func (il *inlineLanes) goidOf(reader uint64) int64 {
	il.mu.Lock()
	id, ok := il.ids[reader]
	il.mu.Unlock()
	if ok {
		return id
	}
	id = goid()
	il.mu.Lock()
	if il.ids == nil || len(il.ids) >= 64 {
		il.ids = map[uint64]int64{} // readers come and go (relief)
	}
	il.ids[reader] = id
	il.mu.Unlock()
	return id
}

// inlineRun is the lanes a reader runs after its work in place, one
// after the other. Those it has not started when the reader is relieved
// (a lane that takes long: transport.Then.Relieve), or when one of its
// callbacks calls Stop, go to workers: a slow callback delays another
// call's by UDPConfig.Relief at most.
type inlineRun struct {
	il    *inlineLanes
	mu    sync.Mutex
	lanes []inlineLane
	next  int  // the next lane to start
	gone  bool // the rest went to workers
	first [2]inlineLane
}

// Run runs the lanes on the reader (transport.Then).
func (r *inlineRun) Run(reader uint64) {
	id := r.il.goidOf(reader)
	r.il.mu.Lock()
	if r.il.runs == nil {
		r.il.runs = map[int64]*inlineRun{}
	}
	r.il.runs[id] = r
	r.il.mu.Unlock()
	for {
		r.mu.Lock()
		if r.gone || r.next == len(r.lanes) {
			r.mu.Unlock()
			break
		}
		x := r.lanes[r.next]
		r.lanes[r.next] = inlineLane{}
		r.next++
		r.mu.Unlock()
		x.set.started(x.q, id)
		r.il.ran.Add(1)
		x.q.drain()
	}
	r.il.mu.Lock()
	delete(r.il.runs, id)
	r.il.mu.Unlock()
}

// Relieve hands the lanes not started yet to workers (none once Run has
// returned).
func (r *inlineRun) Relieve() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gone = true
	for ; r.next < len(r.lanes); r.next++ {
		x := r.lanes[r.next]
		r.lanes[r.next] = inlineLane{}
		x.set.toWorker(x.q)
	}
}

// relieveGoroutine relieves the run of the reader whose goroutine is id,
// if it runs one: its callback is calling Stop, which waits for the
// lanes behind it.
func (il *inlineLanes) relieveGoroutine(id int64) {
	if il == nil {
		return
	}
	il.mu.Lock()
	r := il.runs[id]
	il.mu.Unlock()
	if r != nil {
		r.Relieve()
	}
}
