package wav_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/media/wav"
)

// A prompt read from a WAV file is played to a call, and what the call
// receives is recorded to another WAV file. The handler here is never
// connected, so the recording stays empty.
func Example() {
	dir, _ := os.MkdirTemp("", "wav-example")
	defer os.RemoveAll(dir)
	prompt := filepath.Join(dir, "prompt.wav")

	// Half a second of 440 Hz, written as a WAV file.
	tone := make([]int16, wav.SampleRate/2)
	_, _ = rtp.Tone(440).ReadSamples(tone)
	if err := wav.WriteFile(prompt, tone); err != nil {
		fmt.Println(err)
		return
	}

	samples, err := wav.ReadFile(prompt) // any rate and channel count, converted to 8 kHz mono
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("prompt: %d samples, level %.2f\n", len(samples), wav.ToneLevel(samples, 440))

	h, err := rtp.New(rtp.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	h.SetAudioSource(wav.NewSource(samples, false)) // played once, then silence
	rec, err := wav.Create(filepath.Join(dir, "received.wav"))
	if err != nil {
		fmt.Println(err)
		return
	}
	h.OnAudio(func(s []int16) { _ = rec.WriteSamples(s) })
	h.Close()
	if err := rec.Close(); err != nil { // reports any write error of the recording
		fmt.Println(err)
	}
	fmt.Println("recorded", rec.Samples(), "samples")
	// Output:
	// prompt: 4000 samples, level 0.17
	// recorded 0 samples
}

// An 8 kHz prompt is converted to 16 kHz for a G.722 call.
func ExampleResample() {
	prompt := make([]int16, wav.SampleRate) // one second at 8 kHz
	_, _ = rtp.Tone(440).ReadSamples(prompt)
	wide, err := wav.Resample(prompt, wav.SampleRate, 16000)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(prompt), "samples at 8 kHz,", len(wide), "at 16 kHz")
	// Output:
	// 8000 samples at 8 kHz, 16000 at 16 kHz
}
