package rtp

import (
	"encoding/binary"
	"time"
)

// RFC 4733 sending parameters.
const (
	dtmfVolume      = 10 // -10 dBm0
	dtmfEndRepeats  = 3  // the end packet goes out three times (RFC 4733 §2.5.1.4)
	dtmfDefault     = 100 * time.Millisecond
	dtmfMinDuration = 40 * time.Millisecond
	dtmfMaxDuration = 6 * time.Second       // well below the 16-bit duration field's 8.19 s
	dtmfGap         = 80 * time.Millisecond // audio between two tones
	dtmfPause       = 2 * time.Second       // ","
	// dtmfTimeout reports a received event whose end packets were all
	// lost, once no packet of it has come for this long.
	dtmfTimeout = time.Second
)

// tone is a queued DTMF tone: an RFC 4733 event code and its length in
// samples, or a pause.
type tone struct {
	code    byte
	pause   bool
	samples int
}

// dtmfEvent is the tone being sent: all its packets carry the RTP
// timestamp of its start, and a duration that grows packet by packet
// (RFC 4733 §2.5.1).
type dtmfEvent struct {
	code     byte
	start    uint32 // RTP timestamp of the event
	samples  int    // its whole length
	elapsed  int    // covered by the packets sent so far
	ends     int    // end packets sent
	nPackets int
}

// next returns the payload of the event's next packet into buf (4
// bytes) and whether it is the first (marker bit), advancing the event
// by frame samples. done reports that the last end packet is built.
func (e *dtmfEvent) next(buf []byte, frame int) (payload []byte, first, done bool) {
	if e.ends == 0 {
		e.elapsed = min(e.elapsed+frame, e.samples)
	}
	flags := byte(dtmfVolume)
	if e.elapsed >= e.samples {
		flags |= 0x80 // E: the end
		e.ends++
	}
	payload = buf[:4]
	payload[0], payload[1] = e.code, flags
	binary.BigEndian.PutUint16(payload[2:], uint16(min(e.elapsed, 0xffff)))
	first = e.nPackets == 0
	e.nPackets++
	return payload, first, e.ends >= dtmfEndRepeats
}

// dtmfCode maps a tone character to its RFC 4733 event code.
func dtmfCode(c rune) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return byte(c - '0'), true
	case c == '*':
		return 10, true
	case c == '#':
		return 11, true
	case c >= 'A' && c <= 'D':
		return byte(c-'A') + 12, true
	case c >= 'a' && c <= 'd':
		return byte(c-'a') + 12, true
	}
	return 0, false
}

// dtmfRune maps an RFC 4733 event code back to its character; codes
// above 15 (other telephone events) have none.
func dtmfRune(code byte) (rune, bool) {
	const chars = "0123456789*#ABCD"
	if int(code) < len(chars) {
		return rune(chars[code]), true
	}
	return 0, false
}

// received is a DTMF tone to report.
type received struct {
	tone     rune
	duration time.Duration
}

// dtmfReceiver turns RFC 4733 packets into tones, once per event: when
// its first end packet arrives, or, when every end packet was lost, when
// the next event starts or the event has been silent for dtmfTimeout.
type dtmfReceiver struct {
	active   bool
	ts       uint32 // the current event's RTP timestamp
	code     byte
	samples  uint16
	reported bool
	last     time.Time // when its last packet came
}

// packet takes one telephone-event payload and returns up to two tones
// to report: an earlier event that never ended, and this one if it has.
func (r *dtmfReceiver) packet(ts uint32, payload []byte, now time.Time) []received {
	if len(payload) < 4 {
		return nil
	}
	var out []received
	if r.active && ts != r.ts {
		if int32(ts-r.ts) < 0 {
			return nil // a late packet of an earlier event
		}
		if ev, ok := r.flush(); ok {
			out = append(out, ev)
		}
	}
	if !r.active || ts != r.ts {
		*r = dtmfReceiver{active: true, ts: ts}
	}
	r.last = now
	if r.reported {
		return out
	}
	r.code = payload[0]
	r.samples = max(r.samples, binary.BigEndian.Uint16(payload[2:]))
	if payload[1]&0x80 != 0 {
		if ev, ok := r.flush(); ok {
			out = append(out, ev)
		}
	}
	return out
}

// expire reports an event that has had no packet for dtmfTimeout.
func (r *dtmfReceiver) expire(now time.Time) (received, bool) {
	if r.active && !r.reported && now.Sub(r.last) >= dtmfTimeout {
		return r.flush()
	}
	return received{}, false
}

// flush marks the current event reported and returns it, unless it was
// already, or is not a DTMF tone.
func (r *dtmfReceiver) flush() (received, bool) {
	if !r.active || r.reported {
		return received{}, false
	}
	r.reported = true
	c, ok := dtmfRune(r.code)
	return received{c, time.Duration(r.samples) * time.Second / SampleRate}, ok
}
