package audio

import (
	"encoding/binary"
	"io"
	"math"
)

// SampleRate is the rate of the samples an AudioSource produces: 8 kHz,
// the G.711 rate.
const SampleRate = 8000

// AudioSource produces the audio a Handler sends: mono 16-bit linear PCM
// at SampleRate. The handler reads 160 samples (20 ms) every 20 ms from
// its sending goroutine, so ReadSamples should not block; short reads are
// retried, and after an error (io.EOF at the end of a file) the handler
// sends silence.
type AudioSource interface {
	// ReadSamples fills p with the next samples and returns how many it
	// wrote, as io.Reader does with bytes.
	ReadSamples(p []int16) (n int, err error)
}

// AudioSourceFunc adapts a function to AudioSource.
type AudioSourceFunc func(p []int16) (int, error)

// ReadSamples calls f.
func (f AudioSourceFunc) ReadSamples(p []int16) (int, error) { return f(p) }

// Tone returns an endless sine wave of the given frequency at about
// -12 dBFS, e.g. Tone(440) for a test tone.
func Tone(hz float64) AudioSource {
	step := 2 * math.Pi * hz / SampleRate
	var phase float64
	return AudioSourceFunc(func(p []int16) (int, error) {
		for i := range p {
			p[i] = int16(8000 * math.Sin(phase))
			phase += step
			if phase >= 2*math.Pi {
				phase -= 2 * math.Pi
			}
		}
		return len(p), nil
	})
}

// PCM16 returns a source reading little-endian signed 16-bit mono samples
// at SampleRate from r (raw audio, or a WAV file's data chunk).
func PCM16(r io.Reader) AudioSource {
	var buf []byte
	return AudioSourceFunc(func(p []int16) (int, error) {
		if cap(buf) < 2*len(p) {
			buf = make([]byte, 2*len(p))
		}
		b := buf[:2*len(p)]
		n, err := io.ReadFull(r, b)
		n /= 2
		for i := range n {
			p[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
		}
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return n, err
	})
}

// MuLaw returns a source reading G.711 µ-law bytes (one a sample, at
// SampleRate) from r.
func MuLaw(r io.Reader) AudioSource {
	var buf []byte
	return AudioSourceFunc(func(p []int16) (int, error) {
		if cap(buf) < len(p) {
			buf = make([]byte, len(p))
		}
		b := buf[:len(p)]
		n, err := io.ReadFull(r, b)
		for i := range n {
			p[i] = DecodeMuLaw(b[i])
		}
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return n, err
	})
}
