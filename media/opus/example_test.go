//go:build cgo

package opus_test

import (
	"fmt"
	"math"

	"github.com/sipua/sip/media/opus"
)

// Half a second of a 1 kHz tone is sent as Opus in 20 ms packets and
// decoded at the other end.
func Example() {
	if err := opus.Available(); err != nil {
		fmt.Println(err) // built without cgo, or libopus not installed
		return
	}
	enc, err := opus.NewEncoder(opus.EncoderOptions{Bitrate: 24000})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer enc.Close()
	dec, err := opus.NewDecoder(1)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dec.Close()

	frame := make([]int16, opus.FrameSamples)
	var packet []byte
	var out []int16
	sent := 0
	for n := 0; n < 25; n++ {
		for i := range frame {
			t := float64(n*opus.FrameSamples+i) / opus.SampleRate
			frame[i] = int16(8000 * math.Sin(2*math.Pi*1000*t))
		}
		if packet, err = enc.Encode(packet[:0], frame); err != nil {
			fmt.Println(err)
			return
		}
		sent += len(packet)
		// ... sent in RTP with a 48000 Hz clock, then received:
		if out, err = dec.Decode(out, packet); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println("about 24 kbit/s:", sent*8*2 > 12000 && sent*8*2 < 48000)
	fmt.Println("decoded samples:", len(out))
	// Output:
	// about 24 kbit/s: true
	// decoded samples: 24000
}
