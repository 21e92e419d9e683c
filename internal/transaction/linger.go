package transaction

import (
	"math"
	"time"
	"unsafe"
)

// A server transaction spends most of its life after its call: 64·T1
// (32 s) in Completed (non-INVITE, Timer J) or Accepted (INVITE, Timer
// L), where all it does is absorb retransmissions of its request, answer
// them with its final response (non-INVITE), and pass ACKs up (INVITE).
// A server taking thousands of calls a second holds hundreds of
// thousands of them. As *Server objects, each with its key, response and
// source, the garbage collector marks every one of them on every cycle,
// which was the largest single cost of a busy UAS at steady state.
//
// The Layer therefore retires such a transaction: it lets the *Server go
// (its owner may still hold it, to send a 2xx again through it) and
// keeps a record with no pointer in it, in a queue ordered by deadline
// (every retired transaction waits the same 64·T1, so the queue is a FIFO
// and its timers cost nothing), with the bytes of its key and
// response in large byte chunks, and an index from the key's hash to the
// record. None of it holds a pointer the collector would follow.
//
// The index is a table of buckets, each the sequence number of the
// newest record whose hash falls in it, and each record links to the
// next older one of its bucket: records are only ever added at the new
// end and expire from the old end, so a chain is in age order and a
// look-up stops at the first link older than the oldest record held.
// Expiry therefore leaves the index alone, and a new request's look-up,
// nearly always a miss, reads one bucket.

// lingerChunk is the size of the chunks that hold the bytes of retired
// transactions. A transaction whose bytes do not fit in one is not
// retired.
const lingerChunk = 64 << 10

// retired is the record of a retired server transaction.
type retired struct {
	at    int64 // deadline: nanoseconds since lingerStore.epoch
	hash  uint64
	tuKey [2]uint64
	chunk uint32 // the absolute number of the chunk holding its bytes
	off   uint32 // where in the chunk: branch, host, method, response
	port  int32
	nb    uint16 // branch length
	nh    uint16 // host length
	nr    uint32 // response length (non-INVITE)
	nm    uint8  // method length
	// invite: an INVITE transaction in Accepted (ACKs go up, requests
	// are absorbed); else a non-INVITE in Completed (requests get the
	// response again).
	invite bool
	// link is how many records older the next record of its bucket is
	// (0: none).
	link uint32
}

// lingerStore holds the retired server transactions of a Layer.
type lingerStore struct {
	epoch time.Time
	// blocks hold the records, recBlock each: blocks[i] those numbered
	// from (firstBlock+i)*recBlock. A block is given back once its last
	// record has expired, so the store grows and shrinks without copying
	// (a ring resized at half a million records would stall the loop).
	blocks     [][]retired
	firstBlock uint64
	spareBlock []retired
	head       uint64 // the sequence number of the oldest record
	tail       uint64 // the sequence number of the next record
	// buckets[h&(len-1)] locates the newest record whose hash is h (see
	// bucket). Its length is zero or a power of two, at least 2 per
	// record.
	buckets []bucket

	chunks [][]byte // chunks[i] is chunk number first+i
	first  uint32
	used   int    // bytes used in the last chunk
	spare  []byte // a chunk freed, for the next one needed
	minted uint32 // chunks made or reused so far: the next chunk's number
}

// recBlock is the number of records in a block (64 KiB).
const recBlock = 1024

// rec returns the record numbered seq, which the store holds.
func (ls *lingerStore) rec(seq uint64) *retired {
	return &ls.blocks[seq/recBlock-ls.firstBlock][seq%recBlock]
}

// len returns the number of records held.
func (ls *lingerStore) len() int { return int(ls.tail - ls.head) }

// fits reports whether a transaction with this key and response can be
// retired.
func fits(k serverKey, resp []byte) bool {
	n := len(k.branch) + len(k.host) + len(k.method) + len(resp)
	return n <= lingerChunk && len(k.branch) <= math.MaxUint16 && len(k.host) <= math.MaxUint16 &&
		len(k.method) <= math.MaxUint8 && k.port >= math.MinInt32 && k.port <= math.MaxInt32
}

// room returns n bytes of chunk space and where they are.
func (ls *lingerStore) room(n int) (b []byte, chunk, off uint32) {
	if len(ls.chunks) == 0 || ls.used+n > lingerChunk {
		c := ls.spare
		ls.spare = nil
		if c == nil {
			c = make([]byte, lingerChunk)
		}
		if len(ls.chunks) == 0 {
			ls.first = ls.minted
		}
		ls.chunks = append(ls.chunks, c)
		ls.minted++
		ls.used = 0
	}
	chunk = ls.first + uint32(len(ls.chunks)) - 1
	off = uint32(ls.used)
	ls.used += n
	return ls.chunks[len(ls.chunks)-1][off : off+uint32(n) : off+uint32(n)], chunk, off
}

// add retires a transaction with key k (whose hash is h), deadline at,
// transaction-user key tu and, for a non-INVITE transaction, final
// response resp. fits(k, resp) must hold.
func (ls *lingerStore) add(k serverKey, h uint64, at time.Time, tu [2]uint64, invite bool, resp []byte) {
	if ls.len() == 0 && len(ls.buckets) == 0 {
		ls.epoch = at
	}
	if len(ls.blocks) == 0 || ls.tail%recBlock == 0 {
		b := ls.spareBlock
		ls.spareBlock = nil
		if b == nil {
			b = make([]retired, recBlock)
		}
		if len(ls.blocks) == 0 {
			ls.firstBlock = ls.tail / recBlock
		}
		ls.blocks = append(ls.blocks, b)
	}
	n := len(k.branch) + len(k.host) + len(k.method) + len(resp)
	b, chunk, off := ls.room(n)
	b = append(b[:0], k.branch...)
	b = append(b, k.host...)
	b = append(b, k.method...)
	_ = append(b, resp...)
	seq := ls.tail
	ls.tail++
	*ls.rec(seq) = retired{
		at: int64(at.Sub(ls.epoch)), hash: h, tuKey: tu, chunk: chunk, off: off, port: int32(k.port),
		nb: uint16(len(k.branch)), nh: uint16(len(k.host)), nm: uint8(len(k.method)), nr: uint32(len(resp)), invite: invite,
	}
	if len(ls.buckets) < 2*ls.len() {
		ls.rebucket(4 * ls.len()) // links the new record too
	} else {
		ls.link(seq)
	}
}

// bucket is one bucket of the index: in its low 48 bits 1 + the
// sequence number of the newest record that fell in it (0, or an expired
// record's: none), in bit 48 whether an older record did too while that
// one was held (it may have expired since), and above it the top 15
// bits of the newest record's hash. A look-up that finds the bucket
// empty, or holding one record of another hash, misses without reading
// a record.
type bucket uint64

const (
	bucketSeq  = 1<<48 - 1
	bucketMore = 1 << 48
)

func (b bucket) seq() uint64 { return uint64(b) & bucketSeq }

func tagOf(h uint64) bucket { return bucket(h>>49) << 49 }

// link puts record seq at the head of its bucket.
func (ls *lingerStore) link(seq uint64) {
	r := ls.rec(seq)
	b := &ls.buckets[r.hash&uint64(len(ls.buckets)-1)]
	r.link = 0
	nb := tagOf(r.hash) | bucket(seq+1)&bucketSeq
	if s := b.seq(); s > ls.head { // a record held: s-1 >= head
		if d := seq - (s - 1); d <= math.MaxUint32 {
			r.link = uint32(d)
			nb |= bucketMore
		}
	}
	*b = nb
}

// rebucket makes the index anew with room for n records, linking the
// records held, oldest first.
func (ls *lingerStore) rebucket(n int) {
	size := 1024
	for size < n {
		size *= 2
	}
	ls.buckets = make([]bucket, size)
	for seq := ls.head; seq != ls.tail; seq++ {
		ls.link(seq)
	}
}

// bytes returns the bytes of r: branch, host, method, response.
func (ls *lingerStore) bytes(r *retired) []byte {
	c := ls.chunks[r.chunk-ls.first]
	n := uint32(r.nb) + uint32(r.nh) + uint32(r.nm) + r.nr
	return c[r.off : r.off+n : r.off+n]
}

// get returns the record of the transaction with key k (hash h), or nil.
// When two records have the same key (one retired twice), the newer
// answers.
func (ls *lingerStore) get(k serverKey, h uint64) *retired {
	if len(ls.buckets) == 0 {
		return nil
	}
	b := ls.buckets[h&uint64(len(ls.buckets)-1)]
	s := b.seq()
	if s <= ls.head || (b&bucketMore == 0 && b&^(bucketMore|bucketSeq) != tagOf(h)) {
		return nil
	}
	for s > ls.head { // s-1 >= head: a record held
		seq := s - 1
		r := ls.rec(seq)
		if r.hash == h {
			b := ls.bytes(r)
			nb, nh, nm := int(r.nb), int(r.nh), int(r.nm)
			if int(r.port) == k.port && string(b[:nb]) == k.branch && string(b[nb:nb+nh]) == k.host &&
				string(b[nb+nh:nb+nh+nm]) == k.method {
				return r
			}
		}
		if r.link == 0 {
			return nil
		}
		s = seq - uint64(r.link) + 1
	}
	return nil
}

// method returns the method of r, as a string of its own.
func (ls *lingerStore) method(r *retired) string {
	b := ls.bytes(r)
	m := b[int(r.nb)+int(r.nh) : int(r.nb)+int(r.nh)+int(r.nm)]
	return methodName(unsafe.String(unsafe.SliceData(m), len(m)))
}

// response returns the final response bytes of r (nil for an INVITE).
func (ls *lingerStore) response(r *retired) []byte {
	b := ls.bytes(r)
	return b[int(r.nb)+int(r.nh)+int(r.nm):]
}

// next returns the earliest deadline; ok is false when the store is
// empty.
func (ls *lingerStore) next() (time.Time, bool) {
	if ls.len() == 0 {
		return time.Time{}, false
	}
	return ls.epoch.Add(time.Duration(ls.rec(ls.head).at)), true
}

// expire drops the records whose deadline is at or before now, oldest
// first, calling f with each one's method and transaction-user key
// first. f must not add records.
func (ls *lingerStore) expire(now time.Time, f func(method string, tu [2]uint64)) {
	if ls.len() == 0 {
		return
	}
	t := int64(now.Sub(ls.epoch))
	for ls.head != ls.tail {
		r := ls.rec(ls.head)
		if r.at > t {
			break
		}
		method, tu := ls.method(r), r.tuKey
		ls.head++
		ls.release()
		if f != nil {
			f(method, tu)
		}
	}
	ls.shrink()
}

// release frees the chunks no record uses any more.
func (ls *lingerStore) release() {
	if ls.head == ls.tail {
		return // shrink lets all go
	}
	if ls.head%recBlock == 0 {
		// The oldest block is spent.
		ls.spareBlock = ls.blocks[0]
		ls.blocks[0] = nil
		ls.blocks = ls.blocks[1:]
		ls.firstBlock++
	}
	first := ls.rec(ls.head).chunk
	for ls.first < first {
		ls.dropChunk()
	}
}

func (ls *lingerStore) dropChunk() {
	ls.spare = ls.chunks[0]
	ls.chunks[0] = nil
	ls.chunks = ls.chunks[1:]
	ls.first++
}

// shrink gives back the room of a burst: all of it when the store is
// empty, most of the index when it holds a sixteenth of its room.
func (ls *lingerStore) shrink() {
	if ls.len() == 0 {
		*ls = lingerStore{head: ls.head, tail: ls.tail, minted: ls.minted}
		return
	}
	if len(ls.buckets) >= 2*shrinkAfter && len(ls.buckets) > 32*ls.len() {
		ls.rebucket(4 * ls.len())
	}
	if cap(ls.chunks) > 64 && len(ls.chunks) < cap(ls.chunks)/4 {
		ls.chunks = append([][]byte(nil), ls.chunks...)
	}
	if cap(ls.blocks) > 64 && len(ls.blocks) < cap(ls.blocks)/4 {
		ls.blocks = append([][]retired(nil), ls.blocks...)
	}
}
