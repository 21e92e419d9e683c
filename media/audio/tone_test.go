package audio

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestToneRatio: a tone is found at its frequency and not at others;
// silence and noise hold no tone.
func TestToneRatio(t *testing.T) {
	pcm := make([]int16, 160)
	_, _ = Tone(1000).ReadSamples(pcm)
	assert.Greater(t, ToneRatio(pcm, 1000, SampleRate), 0.9)
	assert.Less(t, ToneRatio(pcm, 440, SampleRate), 0.05)
	assert.Less(t, ToneRatio(pcm, 2000, SampleRate), 0.05)
	assert.Zero(t, ToneRatio(make([]int16, 160), 1000, SampleRate))
	var x uint32 = 1
	for i := range pcm {
		x = x*1664525 + 1013904223
		pcm[i] = int16(x >> 16)
	}
	assert.Less(t, ToneRatio(pcm, 1000, SampleRate), 0.2)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/SampleRate))
	}
	assert.Greater(t, ToneRatio(pcm, 440, SampleRate), 0.9)
}
