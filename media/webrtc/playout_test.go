package webrtc

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"

	"github.com/sipua/sip/media"
)

func pkt(seq uint16, b byte) *rtp.Packet {
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = b
	}
	return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, SSRC: 1}, Payload: payload}
}

// TestPlayoutOrder: the jitter buffer waits for its depth, plays in
// sequence order whatever the arrival order, plays a gap for a missing
// packet, drops duplicates and late packets, and skips other codecs.
func TestPlayoutOrder(t *testing.T) {
	// running keeps push from starting the goroutine: pop by hand.
	p := &playout{h: &Handler{}, running: true}
	for _, s := range []uint16{65535, 1, 0} {
		p.push(pion.MimeTypePCMU, pkt(s, byte(s)))
	}
	p.push(pion.MimeTypePCMU, pkt(1, 1))                                                   // duplicate
	p.push("audio/opus", pkt(3, 3))                                                        // not decoded
	p.push(pion.MimeTypePCMU, &rtp.Packet{Header: rtp.Header{SequenceNumber: 4, SSRC: 1}}) // empty
	var got []int
	for range 4 {
		e, gap, ok := p.pop()
		switch {
		case !ok:
			got = append(got, -2)
		case gap:
			got = append(got, -1)
		default:
			got = append(got, int(e.payload[0]))
		}
		if len(got) == 3 {
			p.push(pion.MimeTypePCMU, pkt(0, 0)) // late now
		}
	}
	// 65535 (payload 255), 0, 1, then a gap (2 missing).
	want := []int{255, 0, 1, -1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("played %v, want %v", got, want)
		}
	}
	if p.dropped != 1 || p.late != 1 {
		t.Errorf("dropped %d, late %d; want 1 and 1", p.dropped, p.late)
	}
	// Dry: back to buffering.
	for range playoutDryGaps {
		p.pop()
	}
	if _, _, ok := p.pop(); ok {
		t.Error("still playing with nothing buffered")
	}
}

// goertzel returns the relative power of hz in samples.
func goertzel(samples []int16, hz float64) float64 {
	k := 2 * math.Cos(2*math.Pi*hz/SampleRate)
	var s1, s2, energy float64
	for _, x := range samples {
		v := float64(x)
		s := v + k*s1 - s2
		s2, s1 = s1, s
		energy += v * v
	}
	if energy == 0 {
		return 0
	}
	return (s1*s1 + s2*s2 - k*s1*s2) / (energy * float64(len(samples)) / 2)
}

// TestDecodedAudio: a sends a 440 Hz tone as PCMU, b's
// OnAudio gets it decoded, in real time, 160 samples at a time.
func TestDecodedAudio(t *testing.T) {
	a := newHandler(t, Config{})
	b := newHandler(t, Config{})
	a.SetAudioSource(Tone(440))
	var mu sync.Mutex
	var got []int16
	sizes := map[int]int{}
	b.OnAudio(func(s []int16) {
		mu.Lock()
		got = append(got, s...)
		sizes[len(s)]++
		mu.Unlock()
	})
	exchange(t, a, b, media.Options{}, media.Options{})
	waitFor(t, "connected", 5*time.Second, connected(a, b))
	waitFor(t, "a second of decoded audio", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= SampleRate
	})
	mu.Lock()
	tail := append([]int16(nil), got[len(got)-4000:]...)
	mu.Unlock()
	p440, p1000 := goertzel(tail, 440), goertzel(tail, 1000)
	t.Logf("decoded %d samples in frames of %v; 440 Hz power %.3f, 1 kHz %.3f", len(got), sizes, p440, p1000)
	if p440 < 0.5 || p1000 > 0.05 {
		t.Errorf("the decoded audio is not a 440 Hz tone: 440 Hz %.3f, 1 kHz %.3f", p440, p1000)
	}
	if len(sizes) != 1 || sizes[160] == 0 {
		t.Errorf("frame sizes %v, want 160 samples each", sizes)
	}
}
