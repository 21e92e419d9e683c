package audio_test

import (
	"fmt"
	"time"

	"github.com/sipua/sip/media/audio"
)

// A tone through G.711 and back, and a DTMF digit as RFC 4733 packets
// read by a receiver.
func Example() {
	pcm := make([]int16, 160) // 20 ms at 8 kHz
	_, _ = audio.Tone(1000).ReadSamples(pcm)
	fmt.Println(pcm[2], audio.DecodeMuLaw(audio.EncodeMuLaw(pcm[2])))

	code, _ := audio.DTMFCode('7')
	ev := &audio.DTMFEvent{Code: code, Samples: 800} // 100 ms
	var rx audio.DTMFReceiver
	buf := make([]byte, 4)
	for {
		p, _, _, done := ev.Next(buf, 160)
		for _, t := range rx.Packet(nil, ev.Start, p, time.Now()) {
			fmt.Printf("%c %v\n", t.Tone, t.Duration)
		}
		if done {
			break
		}
	}
	// Output:
	// 8000 7932
	// 7 100ms
}
