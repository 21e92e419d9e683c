package rtp

// jbEntry is one received packet waiting in the jitter buffer.
type jbEntry struct {
	ext     uint64 // extended sequence number
	ts      uint32
	codec   Codec
	payload []byte // G.711 codes; nil for a packet that carries no audio
}

// jbKind says what pop returned.
type jbKind uint8

const (
	jbNone  jbKind = iota // nothing to play: still buffering, or empty
	jbAudio               // a packet's audio
	jbGap                 // a slot with no audio: a lost packet, or one carrying none (telephone-event)
)

// jitterBuffer reorders received packets by sequence number and plays
// them out with a bounded delay. It holds depth packets before it starts
// (and again after it runs dry); then every pop returns the next packet
// in sequence, or a gap when that packet is missing (lost, or later than
// its playout time: it is dropped when it comes). It never holds more
// than max packets: beyond, the oldest are dropped and playout skips
// ahead. It is not safe for concurrent use.
type jitterBuffer struct {
	depth, max int

	entries []jbEntry // sorted by ext
	highest uint64    // highest extended sequence number pushed
	init    bool
	started bool   // playout has begun: next is meaningful
	playing bool   // playing, as opposed to buffering
	next    uint64 // the extended sequence number to play next

	late, dropped uint64 // packets discarded: too late, or overflow and duplicates
}

func newJitterBuffer(depth, maxPackets int) *jitterBuffer {
	depth = max(depth, 1)
	return &jitterBuffer{depth: depth, max: max(maxPackets, depth+1)}
}

// maxJump is the sequence-number jump (either way) taken as a new stream
// rather than loss or reordering: the buffer starts over.
const maxJump = 1000

// extend returns the extended sequence number of seq, near the highest
// seen so far.
func (j *jitterBuffer) extend(seq uint16) uint64 {
	if !j.init {
		j.init = true
		j.highest = 1<<32 + uint64(seq) // room below for reordered packets
		return j.highest
	}
	ext := uint64(int64(j.highest) + int64(int16(seq-uint16(j.highest))))
	j.highest = max(j.highest, ext)
	return ext
}

// reset forgets everything: a new stream (SSRC) starts.
func (j *jitterBuffer) reset() {
	clear(j.entries)
	j.entries = j.entries[:0]
	j.init, j.started, j.playing = false, false, false
}

// push stores a packet. payload is kept, not copied.
func (j *jitterBuffer) push(seq uint16, ts uint32, codec Codec, payload []byte) {
	ext := j.extend(seq)
	if d := int64(ext) - int64(j.next); j.started && (d > maxJump || d < -maxJump) {
		j.reset()
		ext = j.extend(seq)
	}
	if j.started && ext < j.next {
		j.late++
		return
	}
	// Insert in order; packets mostly arrive in order, so search from the end.
	i := len(j.entries)
	for i > 0 && j.entries[i-1].ext > ext {
		i--
	}
	if i > 0 && j.entries[i-1].ext == ext {
		j.dropped++ // a duplicate
		return
	}
	j.entries = append(j.entries, jbEntry{})
	copy(j.entries[i+1:], j.entries[i:])
	j.entries[i] = jbEntry{ext: ext, ts: ts, codec: codec, payload: payload}
	if over := len(j.entries) - j.max; over > 0 {
		j.dropped += uint64(over)
		clear(j.entries[:over])
		j.entries = append(j.entries[:0], j.entries[over:]...)
		if j.started {
			j.next = j.entries[0].ext
		}
	}
}

// pop returns what plays in the next slot.
func (j *jitterBuffer) pop() (jbEntry, jbKind) {
	if !j.playing {
		if len(j.entries) < j.depth {
			return jbEntry{}, jbNone
		}
		j.playing, j.started, j.next = true, true, j.entries[0].ext
	}
	if len(j.entries) == 0 {
		j.playing = false // ran dry: buffer again
		return jbEntry{}, jbNone
	}
	e := j.entries[0]
	if e.ext != j.next {
		j.next++ // the packet of this slot is missing
		return jbEntry{ext: j.next - 1}, jbGap
	}
	j.entries[0] = jbEntry{}
	j.entries = j.entries[1:]
	j.next++
	if e.payload == nil {
		return e, jbGap
	}
	return e, jbAudio
}

// len returns the number of packets held.
func (j *jitterBuffer) len() int { return len(j.entries) }
