package transaction

import (
	"hash/maphash"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestServerTableCollisions: servers whose keys share a hash are all
// found, and each is removed alone, wherever it sits in its chain.
func TestServerTableCollisions(t *testing.T) {
	for _, hash := range []func(serverKey) uint64{
		func(serverKey) uint64 { return 7 },                           // every key collides
		func(k serverKey) uint64 { return uint64(len(k.branch) % 3) }, // some do
		nil, // the keyed hash
	} {
		tb := newServerTable(maphash.MakeSeed())
		tb.hashOf = hash
		var all []*Server
		for i := range 50 {
			s := &Server{key: serverKey{branch: "z9hG4bK" + strconv.Itoa(i*37), host: "h", port: 5060, method: "BYE"}}
			tb.add(s)
			all = append(all, s)
		}
		assert.Equal(t, 50, tb.n)
		for _, s := range all {
			assert.Same(t, s, tb.get(s.key))
		}
		assert.Nil(t, tb.get(serverKey{branch: "z9hG4bKnone", host: "h", port: 5060, method: "BYE"}))
		// Remove from the middle, the head and the tail of chains.
		for _, i := range []int{25, 49, 0, 10, 11, 12} {
			assert.True(t, tb.remove(all[i]))
			assert.False(t, tb.remove(all[i]), "removed twice")
			assert.Nil(t, tb.get(all[i].key))
		}
		seen := 0
		tb.each(func(s *Server) {
			seen++
			assert.Same(t, s, tb.get(s.key))
		})
		assert.Equal(t, 44, seen)
		assert.Equal(t, 44, tb.n)
		assert.False(t, tb.remove(&Server{key: serverKey{branch: "z9hG4bKnone"}}), "never added")
	}
}
