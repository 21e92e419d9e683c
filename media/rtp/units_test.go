package rtp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// popAll pops until the buffer says there is nothing to play and returns
// what came out: the sequence numbers played (low 16 bits), -1 for a gap.
func popAll(j *jitterBuffer) []int {
	var out []int
	for {
		e, k := j.pop()
		switch k {
		case jbNone:
			return out
		case jbGap:
			out = append(out, -1)
		default:
			out = append(out, int(uint16(e.ext)))
		}
	}
}

func payload(b byte) []byte { return []byte{b, b} }

// TestJitterBufferReorders: packets pushed out of order come out in
// sequence once the buffer holds its depth.
func TestJitterBufferReorders(t *testing.T) {
	j := newJitterBuffer(3, 12)
	for _, seq := range []uint16{101, 100} {
		j.push(seq, uint32(seq)*160, PCMU, payload(byte(seq)))
	}
	_, k := j.pop()
	assert.Equal(t, jbNone, k, "buffering: fewer packets than the depth")
	for _, seq := range []uint16{104, 102, 103} {
		j.push(seq, uint32(seq)*160, PCMU, payload(byte(seq)))
	}
	assert.Equal(t, []int{100, 101, 102, 103, 104}, popAll(j))

	// It ran dry: it buffers again before playing.
	j.push(105, 0, PCMU, payload(1))
	_, k = j.pop()
	assert.Equal(t, jbNone, k)
	j.push(107, 0, PCMU, payload(1))
	j.push(106, 0, PCMU, payload(1))
	assert.Equal(t, []int{105, 106, 107}, popAll(j))
}

// TestJitterBufferGapsAndLate: a missing packet becomes a gap in its
// slot; when it comes after its slot it is dropped as late; a duplicate
// is dropped; a packet without audio plays as a gap.
func TestJitterBufferGapsAndLate(t *testing.T) {
	j := newJitterBuffer(2, 10)
	j.push(10, 0, PCMU, payload(1))
	j.push(12, 0, PCMU, payload(1))
	j.push(13, 0, PCMU, nil) // e.g. telephone-event
	j.push(12, 0, PCMU, payload(1))
	assert.Equal(t, uint64(1), j.dropped, "the duplicate")
	e, k := j.pop()
	assert.Equal(t, jbAudio, k)
	assert.Equal(t, uint16(10), uint16(e.ext))
	_, k = j.pop()
	assert.Equal(t, jbGap, k, "11 is missing")
	j.push(11, 0, PCMU, payload(1))
	assert.Equal(t, uint64(1), j.late, "11 came after its slot")
	e, k = j.pop()
	assert.Equal(t, jbAudio, k)
	assert.Equal(t, uint16(12), uint16(e.ext))
	_, k = j.pop()
	assert.Equal(t, jbGap, k, "13 carries no audio")
	assert.Zero(t, j.len())
}

// TestJitterBufferBounded: the buffer never holds more than its bound;
// the oldest packets go and playout skips ahead.
func TestJitterBufferBounded(t *testing.T) {
	j := newJitterBuffer(2, 5)
	for seq := uint16(0); seq < 20; seq++ {
		j.push(seq, 0, PCMU, payload(1))
		assert.LessOrEqual(t, j.len(), 5)
	}
	assert.Equal(t, uint64(15), j.dropped)
	assert.Equal(t, []int{15, 16, 17, 18, 19}, popAll(j))
}

// TestJitterBufferWraps: the 16-bit sequence number wraps around, in and
// out of order.
func TestJitterBufferWraps(t *testing.T) {
	j := newJitterBuffer(4, 10)
	for _, seq := range []uint16{65534, 0, 65535, 1, 2} {
		j.push(seq, 0, PCMU, payload(1))
	}
	assert.Equal(t, []int{65534, 65535, 0, 1, 2}, popAll(j))
}

// TestJitterBufferNewStream: a jump of thousands of packets is a new
// stream: the buffer starts over instead of counting everything late.
func TestJitterBufferNewStream(t *testing.T) {
	j := newJitterBuffer(1, 10)
	j.push(100, 0, PCMU, payload(1))
	assert.Equal(t, []int{100}, popAll(j))
	j.push(40000, 0, PCMU, payload(1))
	j.push(40001, 0, PCMU, payload(1))
	assert.Equal(t, []int{40000, 40001}, popAll(j))
	assert.Zero(t, j.late)
}

// TestRTCPRoundTrip: SR, RR, SDES and BYE as built here parse back.
func TestRTCPRoundTrip(t *testing.T) {
	blocks := []reportBlock{{ssrc: 7, fractionLost: 25, totalLost: -3, highestSeq: 70000, jitter: 12, lsr: 0xabcd1234, dlsr: 65536}}
	si := senderInfo{ntp: ntpTime(time.Unix(1700000000, 500000000)), rtpTS: 1234, packets: 50, octets: 8000}
	b := appendSR(nil, 42, si, blocks)
	assert.Len(t, b, 28+24)
	b = appendSDES(b, 42, "sipua-abc")
	assert.Zero(t, len(b)%4)
	b = appendBYE(b, 42)
	rs, err := parseRTCP(b)
	require.NoError(t, err)
	require.Len(t, rs, 3)
	assert.Equal(t, rtcpReport{typ: rtcpSR, ssrc: 42, sr: si, blocks: blocks}, rs[0])
	assert.Equal(t, rtcpReport{typ: rtcpSDES, ssrc: 42}, rs[1])
	assert.Equal(t, rtcpReport{typ: rtcpBYE, ssrc: 42}, rs[2])
	assert.Equal(t, uint64(2208988800+1700000000), si.ntp>>32)
	assert.Equal(t, uint64(1<<31), si.ntp&0xffffffff, "half a second")

	b = appendRR(nil, 9, nil)
	b = appendSDES(b, 9, "x")
	rs, err = parseRTCP(b)
	require.NoError(t, err)
	assert.Equal(t, rtcpReport{typ: rtcpRR, ssrc: 9}, rs[0])

	_, err = parseRTCP([]byte{0x80, 200, 0, 10, 1, 2, 3, 4})
	assert.Error(t, err, "length beyond the packet")
	_, err = parseRTCP([]byte{0x40, 201, 0, 1, 0, 0, 0, 1})
	assert.Error(t, err, "version 1")
}

// TestRxStats: loss, reordering, wrap-around and jitter per RFC 3550.
func TestRxStats(t *testing.T) {
	var r rxStats
	assert.True(t, r.seq(1, 65530))
	for _, s := range []uint16{65531, 65533, 65532, 65535, 0, 2} { // 65534 and 1 lost
		assert.False(t, r.seq(1, s))
	}
	assert.Equal(t, uint32(1<<16+2), r.extendedMax())
	assert.Equal(t, int64(2), r.lost())
	b := r.block(0, 0)
	assert.Equal(t, int32(2), b.totalLost)
	assert.Equal(t, uint8(2*256/9), b.fractionLost)
	b = r.block(0, 0)
	assert.Zero(t, b.fractionLost, "no loss since the last report")

	assert.True(t, r.seq(2, 5), "a new SSRC starts over")
	assert.Zero(t, r.lost())

	// Packets 20 ms apart arriving alternately 0 and 10 ms late: the
	// jitter converges towards 80 timestamp units (10 ms).
	var j rxStats
	j.seq(1, 0)
	for i := range 400 {
		late := uint32(0)
		if i%2 == 1 {
			late = 80
		}
		j.arrival(uint32(i*160), uint32(i*160)+late+5000)
	}
	assert.InDelta(t, 80, j.jitter, 5)
}

// TestMOSEstimate: the E-model's known points: a clean G.711 call on a
// LAN rates ~4.4; loss and delay lower it; 150 ms one-way is still good.
func TestMOSEstimate(t *testing.T) {
	clean := mosEstimate(0, 40*time.Millisecond, PCMU)
	assert.InDelta(t, 4.4, clean, 0.05)
	assert.Less(t, mosEstimate(0.01, 40*time.Millisecond, PCMU), clean)
	assert.Less(t, mosEstimate(0.05, 40*time.Millisecond, PCMU), 3.0)
	assert.Greater(t, mosEstimate(0, 150*time.Millisecond, PCMU), 4.0)
	assert.Less(t, mosEstimate(0, 400*time.Millisecond, PCMU), 3.7)
	assert.Equal(t, 1.0, mosEstimate(1, time.Second, PCMU))
}
