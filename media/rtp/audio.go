package rtp

import (
	"io"

	"github.com/sipua/sip/media/audio"
)

// SampleRate is the rate of the samples an AudioSource produces and
// OnAudio receives: 8 kHz, the G.711 rate and clock.
const SampleRate = audio.SampleRate

// AudioSource produces the audio a Handler sends: mono 16-bit linear PCM
// at SampleRate. It is media/audio's, so one source type serves every
// handler. The handler reads one packet's worth (160 samples at 20 ms)
// per packet from its sending goroutine, so ReadSamples should not block;
// after an error (io.EOF at the end of a file) the handler sends silence.
type AudioSource = audio.AudioSource

// AudioSourceFunc adapts a function to AudioSource.
type AudioSourceFunc = audio.AudioSourceFunc

// Tone returns an endless sine wave of the given frequency at about
// -12 dBFS, e.g. Tone(440) for a test tone.
func Tone(hz float64) AudioSource { return audio.Tone(hz) }

// PCM16 returns a source reading little-endian signed 16-bit mono samples
// at SampleRate from r (raw audio, or a WAV file's data chunk).
func PCM16(r io.Reader) AudioSource { return audio.PCM16(r) }

// encode writes the G.711 codes of pcm into out (len(out) >= len(pcm)).
func encode(c Codec, pcm []int16, out []byte) {
	if c == PCMA {
		for i, s := range pcm {
			out[i] = audio.EncodeALaw(s)
		}
		return
	}
	for i, s := range pcm {
		out[i] = audio.EncodeMuLaw(s)
	}
}

// decode writes the linear samples of the G.711 payload into out
// (len(out) >= len(payload)).
func decode(c Codec, payload []byte, out []int16) {
	if c == PCMA {
		for i, b := range payload {
			out[i] = audio.DecodeALaw(b)
		}
		return
	}
	for i, b := range payload {
		out[i] = audio.DecodeMuLaw(b)
	}
}
