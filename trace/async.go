package trace

import (
	"sync"
	"sync/atomic"
)

// DefaultAsyncQueue is NewAsync's queue size when none is given.
const DefaultAsyncQueue = 1024

// Async is a Tracer that hands events to another Tracer on a goroutine of
// its own, for a Tracer too slow to run on the UserAgent's sending and
// receiving goroutines (a file on a network disk, a remote collector).
// Each event is copied (Event.Clone) into a bounded queue and passed on in
// the order it was traced. When the queue is full the event is dropped
// and counted, never waited for: tracing cannot slow the UserAgent down,
// and Dropped tells what was lost. Close drains the queue and ends the
// goroutine. An Async is safe for concurrent use.
type Async struct {
	next    Tracer
	queue   chan Event
	done    chan struct{}
	dropped atomic.Int64

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
}

// NewAsync starts an Async passing events to next, with a queue of size
// events (DefaultAsyncQueue when size <= 0).
func NewAsync(next Tracer, size int) *Async {
	if size <= 0 {
		size = DefaultAsyncQueue
	}
	a := &Async{next: next, queue: make(chan Event, size), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *Async) run() {
	defer close(a.done)
	for ev := range a.queue {
		a.next.Trace(ev)
	}
}

// Trace queues a copy of ev, or drops it if the queue is full or the
// Async closed.
func (a *Async) Trace(ev Event) {
	ev = ev.Clone()
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		a.dropped.Add(1)
		return
	}
	select {
	case a.queue <- ev:
	default:
		a.dropped.Add(1)
	}
}

// Dropped returns how many events were dropped: queue full, or traced
// after Close.
func (a *Async) Dropped() int64 { return a.dropped.Load() }

// Close stops taking events, waits until those queued have been passed
// to the next Tracer, and ends the goroutine. Later calls do nothing.
func (a *Async) Close() error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.queue)
	}
	a.mu.Unlock()
	<-a.done
	return nil
}
