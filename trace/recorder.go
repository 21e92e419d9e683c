package trace

import "sync"

// DefaultRecorderMax is the number of events a Recorder keeps by default.
const DefaultRecorderMax = 10000

// Recorder is a Tracer that keeps a copy (Event.Clone) of each event it
// sees, up to a limit, so that they can be looked at after the fact: for
// example drawn as a call ladder with NewLadder. It is safe for concurrent
// use.
type Recorder struct {
	mu      sync.Mutex
	max     int
	events  []Event
	dropped int
}

// NewRecorder returns a Recorder that keeps at most max events
// (DefaultRecorderMax when max <= 0); later events are counted by Dropped,
// not kept.
func NewRecorder(max int) *Recorder {
	if max <= 0 {
		max = DefaultRecorderMax
	}
	return &Recorder{max: max}
}

// Trace keeps a copy of ev.
func (r *Recorder) Trace(ev Event) {
	r.mu.Lock()
	full := len(r.events) >= r.max
	if full {
		r.dropped++
	}
	r.mu.Unlock()
	if full {
		return
	}
	ev = ev.Clone() // outside the lock: it parses
	r.mu.Lock()
	if len(r.events) < r.max {
		r.events = append(r.events, ev)
	} else {
		r.dropped++
	}
	r.mu.Unlock()
}

// Events returns the events kept so far, in the order they were traced.
// The slice is the caller's; the events must not be modified.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Dropped returns how many events came after the Recorder was full.
func (r *Recorder) Dropped() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// CallIDs returns the Call-IDs of the messages kept, each once, in the
// order they were first seen.
func (r *Recorder) CallIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	seen := map[string]bool{}
	for i := range r.events {
		id := r.events[i].CallID()
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// Reset forgets the events kept and the dropped count.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events, r.dropped = nil, 0
}
