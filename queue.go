package sip

import (
	"bytes"
	"container/heap"
	"runtime"
	"sync"
	"time"
)

// callbackQueue is a lane of user callbacks: it runs them one at a time,
// in order, on a goroutine that exists only while there is work, and
// never while a lock is held. A slow callback delays the callbacks after
// it on its lane, not the stack and not the other lanes: the UserAgent
// has a lane of its own, and each Session one (see lanes).
type callbackQueue struct {
	set     *lanes // nil: a lane of its own, not waited for by Stop
	mu      sync.Mutex
	fs      []func()
	running bool
}

func (q *callbackQueue) push(f func()) {
	q.mu.Lock()
	q.fs = append(q.fs, f)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		q.set.begin(q)
		go q.drain()
	}
}

func (q *callbackQueue) drain() {
	q.set.started(q, goid())
	for {
		q.mu.Lock()
		if len(q.fs) == 0 {
			q.running = false
			q.mu.Unlock()
			q.set.end(q)
			return
		}
		f := q.fs[0]
		q.fs[0] = nil
		q.fs = q.fs[1:]
		q.mu.Unlock()
		f()
	}
}

// lanes follows the running lanes of a UserAgent so that Stop can wait
// until every callback has returned, except those that are themselves
// waiting in Stop: a callback may call Stop (that would otherwise wait
// for the lane it runs on, for ever).
type lanes struct {
	mu      sync.Mutex
	cond    sync.Cond
	running map[*callbackQueue]int64 // the goroutine of each busy lane (0: not yet running)
	inStop  map[int64]int            // goroutines inside Stop
}

func (l *lanes) lock() {
	l.mu.Lock()
	if l.running == nil {
		l.running = map[*callbackQueue]int64{}
		l.inStop = map[int64]int{}
		l.cond.L = &l.mu
	}
}

func (l *lanes) begin(q *callbackQueue) {
	if l == nil {
		return
	}
	l.lock()
	l.running[q] = 0
	l.mu.Unlock()
}

func (l *lanes) started(q *callbackQueue, id int64) {
	if l == nil {
		return
	}
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
