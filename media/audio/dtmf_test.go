package audio

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// te builds a telephone-event payload.
func te(code byte, end bool, dur uint16) []byte {
	p := []byte{code, 10, 0, 0}
	if end {
		p[1] |= 0x80
	}
	binary.BigEndian.PutUint16(p[2:], dur)
	return p
}

// TestDTMFReceiver: one report per event, at its first end packet; the
// repeated end packets and late packets report nothing; an event whose
// end packets were all lost is reported when the next starts, or after a
// silence.
func TestDTMFReceiver(t *testing.T) {
	var r DTMFReceiver
	now := time.Now()
	var got []DTMFTone
	feed := func(ts uint32, p []byte) { got = append(got, r.Packet(nil, ts, p, now)...) }

	feed(1000, te(5, false, 160))
	feed(1000, te(5, false, 320))
	assert.Empty(t, got)
	feed(1000, te(5, true, 800))
	feed(1000, te(5, true, 800))
	feed(1000, te(5, true, 800))
	require.Len(t, got, 1)
	assert.Equal(t, DTMFTone{'5', 100 * time.Millisecond}, got[0])

	// '#' loses its end packets; '*' starts.
	got = nil
	feed(3000, te(11, false, 160))
	feed(3000, te(11, false, 320))
	feed(1000, te(5, true, 800)) // late, of the first event
	feed(5000, te(10, false, 160))
	require.Len(t, got, 1)
	assert.Equal(t, DTMFTone{'#', 40 * time.Millisecond}, got[0])

	// '*' loses its end too, and nothing follows: the timeout reports it.
	_, ok := r.Expire(now.Add(DTMFTimeout / 2))
	assert.False(t, ok)
	ev, ok := r.Expire(now.Add(DTMFTimeout))
	assert.True(t, ok)
	assert.Equal(t, DTMFTone{'*', 20 * time.Millisecond}, ev)
	_, ok = r.Expire(now.Add(2 * DTMFTimeout))
	assert.False(t, ok, "once")

	// Events above 15 (not DTMF) are not reported.
	got = nil
	feed(9000, te(32, true, 800))
	assert.Empty(t, got)
}

// TestDTMFEventPackets: the packets of a 100 ms event at 20 ms: growing
// durations, the end bit on the last three, the marker on the first.
func TestDTMFEventPackets(t *testing.T) {
	e := &DTMFEvent{Code: 11, Samples: 800}
	buf := make([]byte, 4)
	var durs []int
	var ends, firsts int
	for i := 0; ; i++ {
		p, first, _, done := e.Next(buf, 160)
		durs = append(durs, int(binary.BigEndian.Uint16(p[2:])))
		assert.Equal(t, byte(11), p[0])
		if p[1]&0x80 != 0 {
			ends++
		}
		if first {
			firsts++
			assert.Zero(t, i)
		}
		if done {
			break
		}
		require.Less(t, i, 20)
	}
	assert.Equal(t, []int{160, 320, 480, 640, 800, 800, 800}, durs)
	assert.Equal(t, 3, ends)
	assert.Equal(t, 1, firsts)
}

// TestDTMFCodes maps characters to RFC 4733 event codes and back.
func TestDTMFCodes(t *testing.T) {
	for i, c := range "0123456789*#ABCD" {
		code, ok := DTMFCode(c)
		require.True(t, ok)
		assert.Equal(t, byte(i), code)
		r, ok := DTMFRune(code)
		require.True(t, ok)
		assert.Equal(t, c, r)
	}
	code, ok := DTMFCode('b')
	assert.True(t, ok)
	assert.Equal(t, byte(13), code)
	_, ok = DTMFCode('x')
	assert.False(t, ok)
}
