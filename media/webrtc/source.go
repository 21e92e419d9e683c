package webrtc

import (
	"io"

	"github.com/sipua/sip/media/audio"
)

// SampleRate is the rate of the samples an AudioSource produces: 8 kHz,
// the G.711 rate.
const SampleRate = audio.SampleRate

// AudioSource produces the audio a Handler sends: mono 16-bit linear PCM
// at SampleRate. It is media/audio's, shared by every handler. The
// handler reads 160 samples (20 ms) every 20 ms from its sending
// goroutine, so ReadSamples should not block; short reads are retried,
// and after an error (io.EOF at the end of a file) the handler sends
// silence.
type AudioSource = audio.AudioSource

// AudioSourceFunc adapts a function to AudioSource.
type AudioSourceFunc = audio.AudioSourceFunc

// Tone returns an endless sine wave of the given frequency at about
// -12 dBFS, e.g. Tone(440) for a test tone.
func Tone(hz float64) AudioSource { return audio.Tone(hz) }

// PCM16 returns a source reading little-endian signed 16-bit mono samples
// at SampleRate from r (raw audio, or a WAV file's data chunk).
func PCM16(r io.Reader) AudioSource { return audio.PCM16(r) }

// MuLaw returns a source reading G.711 µ-law bytes (one a sample, at
// SampleRate) from r.
func MuLaw(r io.Reader) AudioSource { return audio.MuLaw(r) }
