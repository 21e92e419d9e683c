package sip

import (
	"container/heap"
	"sync"
	"time"
)

// callbackQueue runs user callbacks one at a time, in order, on a goroutine
// that exists only while there is work, and never while a lock is held:
// a slow callback delays the callbacks after it, not the stack.
type callbackQueue struct {
	mu      sync.Mutex
	fs      []func()
	running bool
	wg      sync.WaitGroup
}

func (q *callbackQueue) push(f func()) {
	q.mu.Lock()
	q.fs = append(q.fs, f)
	start := !q.running
	q.running = true
	if start {
		q.wg.Add(1)
	}
	q.mu.Unlock()
	if start {
		go q.drain()
	}
}

func (q *callbackQueue) drain() {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		if len(q.fs) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		f := q.fs[0]
		q.fs[0] = nil
		q.fs = q.fs[1:]
		q.mu.Unlock()
		f()
	}
}

// wait blocks until the queue is empty and its goroutine has ended.
func (q *callbackQueue) wait() { q.wg.Wait() }

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
