package transaction

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

// retireLayer is a Layer whose TU answers every request with code and
// tags each transaction with a TU key of its own; sent records what goes
// out, expired the Expired calls.
type retireLayer struct {
	l       *Layer
	sent    []string // "dest tx=bool first-line"
	raw     []string // the responses sent, whole
	expired []string // "method key"
	servers []*Server
	n       uint64
	now     time.Time // when the TU answers
}

func newRetireLayer(t *testing.T, code int, body string) *retireLayer {
	r := &retireLayer{now: t0}
	r.l = NewLayer(Config{}, Callbacks{
		Send: func(tx Transaction, m message.Message, dest any) error {
			resp := m.(*message.Response)
			r.sent = append(r.sent, fmt.Sprintf("%v tx=%v %d", dest, tx != nil, resp.StatusCode))
			r.raw = append(r.raw, string(resp.AppendTo(nil)))
			return nil
		},
		Request: func(tx *Server, req *message.Request, src any) {
			if tx == nil {
				r.sent = append(r.sent, fmt.Sprintf("up %s from %v", req.Method, src))
				return
			}
			r.n++
			tx.SetTUKey([2]uint64{r.n, 0})
			r.servers = append(r.servers, tx)
			resp := respTo(req, code)
			if body != "" {
				resp.Body = []byte(body)
				resp.Header.Set("Content-Type", "text/plain")
			}
			require.NoError(t, r.l.Respond(tx, resp, r.now))
		},
		Terminated: func(tx Transaction) {
			r.expired = append(r.expired, "terminated "+tx.Method())
		},
		Expired: func(method string, tu [2]uint64) {
			r.expired = append(r.expired, fmt.Sprintf("%s %d", method, tu[0]))
		},
	})
	return r
}

// TestRetiredNonInvite: a non-INVITE server transaction that has sent its
// final response over UDP is retired: the Layer keeps no *Server for it,
// a retransmission gets the same bytes (sent where the retransmission came
// from), it counts in Len until Timer J, and its end comes to Expired with
// its method and TU key.
func TestRetiredNonInvite(t *testing.T) {
	r := newRetireLayer(t, 200, "")
	bye := newReq(t, "BYE", "z9hG4bKbye1")
	r.l.Receive(bye, "alice", false, t0)
	require.Len(t, r.servers, 1)
	assert.Equal(t, []string{"alice tx=true 200"}, r.sent)
	assert.Equal(t, Completed, r.servers[0].State())
	assert.Zero(t, r.l.servers.n, "no *Server left in the table")
	assert.Nil(t, r.l.timers, "nor in the deadline heap")
	_, n := r.l.Len()
	assert.Equal(t, 1, n)
	d, ok := r.l.NextDeadline()
	require.True(t, ok)
	assert.Equal(t, t0.Add(64*500*time.Millisecond), d, "Timer J")
	assert.True(t, r.l.Matches(bye))

	// The retransmission comes from another port (a NAT rebinding):
	// the response goes there.
	r.l.Receive(newReq(t, "BYE", "z9hG4bKbye1"), "alice2", false, t0.Add(time.Second))
	require.Len(t, r.raw, 2)
	assert.Equal(t, "alice2 tx=false 200", r.sent[1])
	assert.Equal(t, r.raw[0], r.raw[1], "the same bytes")
	assert.Len(t, r.servers, 1, "not passed up again")
	// An ACK or a CANCEL never matches a non-INVITE.
	r.l.Receive(newReq(t, "ACK", "z9hG4bKbye1"), "alice", false, t0.Add(time.Second))
	assert.Equal(t, "up ACK from alice", r.sent[2])

	r.l.Tick(d.Add(-time.Nanosecond))
	assert.Empty(t, r.expired)
	r.l.Tick(d)
	assert.Equal(t, []string{"BYE 1"}, r.expired)
	_, n = r.l.Len()
	assert.Zero(t, n)
	_, ok = r.l.NextDeadline()
	assert.False(t, ok)
	// Now the same branch starts a new transaction.
	r.l.Receive(newReq(t, "BYE", "z9hG4bKbye1"), "alice", false, d)
	assert.Len(t, r.servers, 2)
}

// TestNotRetired: over a reliable transport a non-INVITE transaction ends
// at its final response; a non-2xx to INVITE retransmits (Timer G) and is
// not retired; a response too large for a chunk keeps its *Server.
func TestNotRetired(t *testing.T) {
	r := newRetireLayer(t, 200, "")
	r.l.Receive(newReq(t, "BYE", "z9hG4bKrel"), "alice", true, t0)
	assert.Equal(t, []string{"terminated BYE"}, r.expired)
	assert.Zero(t, r.l.lingering.len())

	r = newRetireLayer(t, 486, "")
	r.l.Receive(newReq(t, "INVITE", "z9hG4bKbusy"), "alice", false, t0)
	assert.Equal(t, Completed, r.servers[0].State())
	assert.Zero(t, r.l.lingering.len())
	assert.Equal(t, 1, r.l.servers.n)

	r = newRetireLayer(t, 200, strings.Repeat("x", lingerChunk))
	r.l.Receive(newReq(t, "MESSAGE", "z9hG4bKbig"), "alice", false, t0)
	assert.Zero(t, r.l.lingering.len())
	assert.Equal(t, 1, r.l.servers.n)
	r.l.Receive(newReq(t, "MESSAGE", "z9hG4bKbig"), "alice", false, t0.Add(time.Second))
	require.Len(t, r.raw, 2)
	assert.Equal(t, r.raw[0], r.raw[1])
	r.l.Tick(t0.Add(time.Minute))
	assert.Equal(t, []string{"terminated MESSAGE"}, r.expired)
}

// TestRetiredHashCollision: records whose keys share a hash (forced here;
// the hash is keyed per Layer) never answer for each other: each answers
// its own retransmissions, and the earlier one's expiry leaves the later
// one's place in the index.
func TestRetiredHashCollision(t *testing.T) {
	r := newRetireLayer(t, 200, "")
	r.l.servers.hashOf = func(serverKey) uint64 { return 42 }
	r.l.Receive(newReq(t, "OPTIONS", "z9hG4bKone"), "alice", false, t0)
	r.now = t0.Add(time.Second)
	r.l.Receive(newReq(t, "OPTIONS", "z9hG4bKtwo"), "alice", false, r.now)
	assert.Equal(t, 2, r.l.lingering.len())
	r.l.Receive(newReq(t, "OPTIONS", "z9hG4bKtwo"), "alice", false, t0.Add(2*time.Second))
	assert.Len(t, r.servers, 2, "two matched its record")
	assert.Len(t, r.raw, 3)
	r.l.Receive(newReq(t, "OPTIONS", "z9hG4bKone"), "alice", false, t0.Add(2*time.Second))
	assert.Len(t, r.servers, 2, "one matched its record, behind two's")
	assert.Len(t, r.raw, 4)
	r.l.Tick(t0.Add(32 * time.Second))
	assert.Equal(t, []string{"OPTIONS 1"}, r.expired)
	r.l.Receive(newReq(t, "OPTIONS", "z9hG4bKtwo"), "alice", false, t0.Add(32*time.Second))
	assert.Len(t, r.servers, 2, "two's record still answers")
	r.l.Receive(newReq(t, "OPTIONS", "z9hG4bKother"), "alice", false, t0.Add(32*time.Second))
	assert.Len(t, r.servers, 3, "a key that only shares the hash is a new transaction")
}

// TestLingerStoreModel runs the store against a map through growth,
// wrap-around, chunk turnover and shrinking: every live record is found
// with its own bytes, none that expired is, chunks no record uses are
// given back.
func TestLingerStoreModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var ls lingerStore
	type rec struct {
		k    serverKey
		resp string
		at   time.Time
		seq  uint64
	}
	var live []rec // in deadline order
	now := t0
	var seq uint64
	var expired []uint64
	check := func() {
		require.Equal(t, len(live), ls.len())
		if len(live) > 0 {
			assert.GreaterOrEqual(t, len(ls.buckets), 2*len(live))
		}
		var linked int
		for _, b := range ls.buckets {
			for s := b.seq(); s > ls.head; {
				linked++
				r := ls.rec(s - 1)
				if r.link == 0 {
					break
				}
				s -= uint64(r.link)
			}
		}
		require.Equal(t, len(live), linked, "every record held is in one chain, once")
		assert.Nil(t, ls.get(serverKey{branch: "none"}, seq+1<<40), "a miss")
		for _, r := range live {
			got := ls.get(r.k, uint64(r.seq))
			require.NotNil(t, got, "record %d", r.seq)
			assert.Equal(t, r.resp, string(ls.response(got)))
			assert.Equal(t, r.seq, got.tuKey[0])
			assert.Equal(t, r.k.method, ls.method(got))
		}
		if len(live) > 0 {
			first := ls.rec(ls.head).chunk
			assert.Equal(t, ls.first, first, "no chunk before the oldest record's")
		}
	}
	for round := range 40 {
		adds := rng.IntN(3000)
		for range adds {
			seq++
			k := serverKey{branch: fmt.Sprintf("z9hG4bK%d", seq), host: "h" + strings.Repeat("x", rng.IntN(40)), port: rng.IntN(70000), method: []string{"BYE", "INVITE", "FROB"}[rng.IntN(3)]}
			resp := strings.Repeat(string(rune('a'+seq%26)), rng.IntN(2000))
			at := now.Add(32 * time.Second)
			require.True(t, fits(k, []byte(resp)))
			ls.add(k, seq, at, [2]uint64{seq, 0}, k.method == "INVITE", []byte(resp))
			live = append(live, rec{k, resp, at, seq})
			now = now.Add(time.Duration(rng.IntN(20)) * time.Millisecond)
		}
		check()
		now = now.Add(time.Duration(rng.IntN(40)) * time.Second)
		ls.expire(now, func(method string, tu [2]uint64) { expired = append(expired, tu[0]) })
		i := 0
		for i < len(live) && !live[i].at.After(now) {
			assert.Equal(t, live[i].seq, expired[0])
			expired = expired[1:]
			assert.Nil(t, ls.get(live[i].k, live[i].seq))
			i++
		}
		assert.Empty(t, expired)
		live = live[i:]
		check()
		if len(live) == 0 {
			assert.Nil(t, ls.blocks, "round %d: an empty store holds nothing", round)
			assert.Nil(t, ls.chunks)
		} else {
			assert.LessOrEqual(t, len(ls.blocks), len(live)/recBlock+2, "spent blocks are given back")
		}
	}
}

// BenchmarkRetiredMiss: the look-up every new request makes among the
// retired transactions of a server taking 8000 calls/s (about 500 000 of
// them), which nearly always misses.
func BenchmarkRetiredMiss(b *testing.B) {
	var ls lingerStore
	rng := rand.New(rand.NewPCG(3, 4))
	resp := make([]byte, 300)
	for i := range 500_000 {
		k := serverKey{branch: fmt.Sprintf("z9hG4bK%d", i), host: "192.0.2.1", port: 5060, method: "BYE"}
		ls.add(k, rng.Uint64(), t0.Add(time.Duration(i)), [2]uint64{}, false, resp)
	}
	hashes := make([]uint64, 1<<20) // read in order: the misses are in the store, not here
	for i := range hashes {
		hashes[i] = rng.Uint64()
	}
	k := serverKey{branch: "z9hG4bKnew", host: "192.0.2.1", port: 5060, method: "BYE"}
	b.ResetTimer()
	for i := range b.N {
		if ls.get(k, hashes[i%len(hashes)]) != nil {
			b.Fatal("hit")
		}
	}
}

// BenchmarkRetiredTurnover: the store at steady state with 500 000
// records (8000 calls/s): each op retires one transaction, expires the
// oldest and looks up one new request (a miss), as a busy UAS does.
func BenchmarkRetiredTurnover(b *testing.B) {
	var ls lingerStore
	rng := rand.New(rand.NewPCG(5, 6))
	resp := make([]byte, 300)
	const live = 500_000
	branches := make([]string, 1<<16)
	for i := range branches {
		branches[i] = fmt.Sprintf("z9hG4bK%d", i)
	}
	add := func(i int) {
		k := serverKey{branch: branches[i%len(branches)], host: "192.0.2.1", port: 5060, method: "BYE"}
		ls.add(k, rng.Uint64(), t0.Add(time.Duration(i)), [2]uint64{}, false, resp)
	}
	for i := range live {
		add(i)
	}
	k := serverKey{branch: "z9hG4bKnew", host: "192.0.2.1", port: 5060, method: "BYE"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		add(live + i)
		ls.expire(t0.Add(time.Duration(i)), nil)
		if ls.get(k, rng.Uint64()) != nil {
			b.Fatal("hit")
		}
	}
}
