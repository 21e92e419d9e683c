package g722_test

import (
	"fmt"
	"math"

	"github.com/sipua/sip/media/g722"
)

// One second of a 1 kHz tone is sent as G.722 in 20 ms RTP payloads and
// decoded at the other end.
func Example() {
	pcm := make([]int16, g722.SampleRate)
	for i := range pcm {
		pcm[i] = int16(10000 * math.Sin(2*math.Pi*1000*float64(i)/g722.SampleRate))
	}

	enc, dec := g722.NewEncoder(), g722.NewDecoder()
	var payload []byte
	var out []int16
	var timestamp uint32
	for off := 0; off < len(pcm); off += g722.FrameSamples {
		payload = enc.Encode(payload[:0], pcm[off:off+g722.FrameSamples])
		// ... sent with RTP payload type g722.PayloadType, then received:
		out = dec.Decode(out, payload)
		timestamp += g722.FrameSamples * g722.RTPClockRate / g722.SampleRate
	}

	var peak int16
	for _, s := range out[g722.SampleRate/2:] {
		peak = max(peak, s)
	}
	fmt.Println("payload bytes per 20 ms:", len(payload))
	fmt.Println("RTP timestamp after 1 s:", timestamp)
	fmt.Println("decoded samples:", len(out))
	fmt.Println("peak within 2%:", math.Abs(float64(peak)-10000) < 200)
	// Output:
	// payload bytes per 20 ms: 160
	// RTP timestamp after 1 s: 8000
	// decoded samples: 16000
	// peak within 2%: true
}
