package audio

import (
	"encoding/binary"
	"time"
)

// RFC 4733 telephone-event parameters shared by the handlers.
const (
	// DTMFVolume is the power level sent in telephone-event packets:
	// -10 dBm0.
	DTMFVolume = 10
	// DTMFEndRepeats is how many times the end packet of an event goes
	// out (RFC 4733 §2.5.1.4).
	DTMFEndRepeats = 3
	// DTMFDefaultDuration is a tone's length when none is asked.
	DTMFDefaultDuration = 100 * time.Millisecond
	// DTMFMinDuration and DTMFMaxDuration bound a tone's length; the
	// maximum stays well below the 16-bit duration field's 8.19 s.
	DTMFMinDuration = 40 * time.Millisecond
	DTMFMaxDuration = 6 * time.Second
	// DTMFGap is the audio sent between two tones.
	DTMFGap = 80 * time.Millisecond
	// DTMFPause is the silence a "," in a tone string stands for.
	DTMFPause = 2 * time.Second
	// DTMFTimeout is how long a received event may go without packets
	// before it is reported although none of its end packets came.
	DTMFTimeout = time.Second
)

// DTMFCode maps a tone character ("0"–"9", "*", "#", "A"–"D", case
// insensitive) to its RFC 4733 event code.
func DTMFCode(c rune) (byte, bool) {
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

// DTMFRune maps an RFC 4733 event code back to its character; codes
// above 15 (other telephone events) have none.
func DTMFRune(code byte) (rune, bool) {
	const chars = "0123456789*#ABCD"
	if int(code) < len(chars) {
		return rune(chars[code]), true
	}
	return 0, false
}

// DTMFEvent is one tone being sent: all its packets carry the RTP
// timestamp of its start (Start) and a duration that grows packet by
// packet (RFC 4733 §2.5.1), and its end packet is repeated
// DTMFEndRepeats times.
type DTMFEvent struct {
	// Code is the RFC 4733 event code.
	Code byte
	// Start is the RTP timestamp of the event.
	Start uint32
	// Samples is the event's whole length in clock ticks.
	Samples int

	elapsed  int // covered by the packets built so far
	ends     int // end packets built
	nPackets int
}

// Next builds the payload of the event's next packet into buf (at least
// 4 bytes), advancing the event by frame clock ticks. first reports the
// event's first packet (it carries the RTP marker bit), ended that this
// packet is the first end packet (the tone counts as sent), and done that
// the last end packet is built.
func (e *DTMFEvent) Next(buf []byte, frame int) (payload []byte, first, ended, done bool) {
	if e.ends == 0 {
		e.elapsed = min(e.elapsed+frame, e.Samples)
	}
	flags := byte(DTMFVolume)
	if e.elapsed >= e.Samples {
		flags |= 0x80 // E: the end
		e.ends++
		ended = e.ends == 1
	}
	payload = buf[:4]
	payload[0], payload[1] = e.Code, flags
	binary.BigEndian.PutUint16(payload[2:], uint16(min(e.elapsed, 0xffff)))
	first = e.nPackets == 0
	e.nPackets++
	return payload, first, ended, e.ends >= DTMFEndRepeats
}

// DTMFTone is a received tone: its character and its length.
type DTMFTone struct {
	Tone     rune
	Duration time.Duration
}

// DTMFReceiver turns received RFC 4733 packets into tones, once per
// event: when its first end packet arrives or, when every end packet was
// lost, when the next event starts or the event has had no packet for
// DTMFTimeout (Expire). Its zero value is ready; ClockRate 0 means 8000.
type DTMFReceiver struct {
	// ClockRate is the telephone-event clock, which converts durations.
	ClockRate int

	active   bool
	ts       uint32 // the current event's RTP timestamp
	code     byte
	samples  uint16
	reported bool
	last     time.Time // when its last packet came
}

// Packet takes one telephone-event payload with its RTP timestamp and
// returns up to two tones to report, appended to out: an earlier event
// that never ended, and this one if it has.
func (r *DTMFReceiver) Packet(out []DTMFTone, ts uint32, payload []byte, now time.Time) []DTMFTone {
	if len(payload) < 4 {
		return out
	}
	if r.active && ts != r.ts {
		if int32(ts-r.ts) < 0 {
			return out // a late packet of an earlier event
		}
		if ev, ok := r.flush(); ok {
			out = append(out, ev)
		}
	}
	if !r.active || ts != r.ts {
		*r = DTMFReceiver{ClockRate: r.ClockRate, active: true, ts: ts}
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

// Expire reports an event that has had no packet for DTMFTimeout.
func (r *DTMFReceiver) Expire(now time.Time) (DTMFTone, bool) {
	if r.active && !r.reported && now.Sub(r.last) >= DTMFTimeout {
		return r.flush()
	}
	return DTMFTone{}, false
}

// flush marks the current event reported and returns it, unless it was
// already, or is not a DTMF tone.
func (r *DTMFReceiver) flush() (DTMFTone, bool) {
	if !r.active || r.reported {
		return DTMFTone{}, false
	}
	r.reported = true
	c, ok := DTMFRune(r.code)
	rate := r.ClockRate
	if rate <= 0 {
		rate = SampleRate
	}
	return DTMFTone{c, time.Duration(r.samples) * time.Second / time.Duration(rate)}, ok
}
