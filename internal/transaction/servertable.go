package transaction

import "hash/maphash"

// serverTable holds the server transactions of a Layer by key. Its map is
// keyed by a hash of the key, and servers whose keys share a hash are
// chained through Server.next: a slot is 16 bytes instead of the key's
// 56 plus the value, which counts because a server transaction lingers
// for 64·T1 after its call (two per call a server takes in those 32 s),
// and the slots hold no strings for the collector to follow.
type serverTable struct {
	seed maphash.Seed
	m    map[uint64]*Server
	n    int // servers held
	// hashOf, when set, replaces the keyed hash (tests: collisions).
	hashOf func(serverKey) uint64
}

func newServerTable(seed maphash.Seed) serverTable {
	return serverTable{seed: seed, m: map[uint64]*Server{}}
}

func (t *serverTable) hash(k serverKey) uint64 {
	if t.hashOf != nil {
		return t.hashOf(k)
	}
	return maphash.Comparable(t.seed, k)
}

// get returns the server with key k, or nil.
func (t *serverTable) get(k serverKey) *Server { return t.getHashed(k, t.hash(k)) }

// getHashed is get of a key whose hash is h.
func (t *serverTable) getHashed(k serverKey, h uint64) *Server {
	for s := t.m[h]; s != nil; s = s.next {
		if s.key == k {
			return s
		}
	}
	return nil
}

// add puts s in the table under s.key, which no server in it has.
func (t *serverTable) add(s *Server) { t.addHashed(s, t.hash(s.key)) }

// addHashed is add of a server whose key's hash is h.
func (t *serverTable) addHashed(s *Server, h uint64) {
	s.next = t.m[h]
	t.m[h] = s
	t.n++
}

// remove takes s out of the table; false if it was not in it.
func (t *serverTable) remove(s *Server) bool {
	h := t.hash(s.key)
	p := t.m[h]
	switch {
	case p == nil:
		return false
	case p == s:
		if s.next == nil {
			delete(t.m, h)
		} else {
			t.m[h] = s.next
		}
	default:
		for p.next != nil && p.next != s {
			p = p.next
		}
		if p.next == nil {
			return false
		}
		p.next = s.next
	}
	s.next = nil
	t.n--
	return true
}

// each calls f for every server in the table.
func (t *serverTable) each(f func(*Server)) {
	for _, s := range t.m {
		for ; s != nil; s = s.next {
			f(s)
		}
	}
}
