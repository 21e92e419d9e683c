package sip

import "sync"

// listeners is the set of listeners of one kind of event of an object
// (its state changes, say), in the order they were added. It never calls
// a listener itself: notify hands one call per listener, in order, to the
// queue its owner gives (a callback lane), so listeners never run under
// the owner's locks or on the event loop. The zero value is an empty set.
type listeners[T any] struct {
	mu   sync.Mutex
	ls   []listener[T]
	next uint64
}

type listener[T any] struct {
	id uint64
	f  func(T)
}

// add appends f and returns a function removing it; calling that more
// than once is harmless. Calls already handed to the queue still run.
func (l *listeners[T]) add(f func(T)) (remove func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	id := l.next
	l.ls = append(l.ls, listener[T]{id: id, f: f})
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, x := range l.ls {
			if x.id == id {
				// A new slice: a snapshot taken by notify keeps its own.
				l.ls = append(l.ls[:i:i], l.ls[i+1:]...)
				return
			}
		}
	}
}

// notify hands a call of every listener with v to push, in the order the
// listeners were added.
func (l *listeners[T]) notify(v T, push func(func())) {
	l.mu.Lock()
	ls := l.ls
	l.mu.Unlock()
	for _, x := range ls {
		f := x.f
		push(func() { f(v) })
	}
}

// stateBox holds the state of an object and its state listeners. set
// queues the listeners on the callback lane it is given, under the state's
// lock so that they see the states in the order they were set; the lane
// runs them later, outside every lock.
type stateBox[S comparable] struct {
	mu sync.Mutex
	s  S
	ls listeners[S]
}

func (b *stateBox[S]) get() S {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.s
}

func (b *stateBox[S]) listen(f func(S)) (remove func()) { return b.ls.add(f) }

// set moves to s, unless the state is s already or final, and queues
// the listeners on q. It reports whether the state changed.
func (b *stateBox[S]) set(s, final S, q *callbackQueue) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.s == s || b.s == final {
		return false
	}
	b.s = s
	b.ls.notify(s, q.push)
	return true
}
