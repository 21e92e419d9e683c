package rtp

import (
	"fmt"
	"io"

	"github.com/sipua/sip/media/audio"
	"github.com/sipua/sip/media/g722"
	"github.com/sipua/sip/media/wav"
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

// codecState is one direction's codec state: the G.722 coder and the
// rate conversion between the 8 kHz PCM of this package and G.722's
// 16 kHz. Each is owned by one goroutine.
type codecState struct {
	enc    *g722.Encoder
	dec    *g722.Decoder
	rs     *wav.Resampler // 8 kHz to the codec's rate (sending) or back (receiving)
	rate   int            // the codec rate rs converts to or from
	wide   []int16        // 16 or 48 kHz scratch
	narrow []int16        // 8 kHz scratch

	opus *OpusCodec
	oenc OpusEncoder
	odec OpusDecoder
	oerr error // making the Opus coder failed
}

// resampler returns the Resampler between 8 kHz and rate, in the
// direction given, made anew when the rate changed.
func (cs *codecState) resampler(rate int, up bool) *wav.Resampler {
	if cs.rs == nil || cs.rate != rate {
		from, to := SampleRate, rate
		if !up {
			from, to = rate, SampleRate
		}
		cs.rs, _ = wav.NewResampler(from, to) // both rates are in range
		cs.rate = rate
	}
	return cs.rs
}

// close frees the Opus coder.
func (cs *codecState) close() {
	if cs.oenc != nil {
		cs.oenc.Close()
		cs.oenc = nil
	}
	if cs.odec != nil {
		cs.odec.Close()
		cs.odec = nil
	}
}

// encode appends the payload of the 8 kHz samples pcm in codec c to out.
// G.722 takes len(pcm) bytes too: twice the samples at 16 kHz, one byte
// for two.
func (cs *codecState) encode(c Codec, pcm []int16, out []byte) ([]byte, error) {
	switch c {
	case Opus:
		if cs.oenc == nil {
			if cs.opus == nil || cs.oerr != nil {
				return nil, fmt.Errorf("rtp: no Opus encoder: %w", cs.oerr)
			}
			enc, err := cs.opus.NewEncoder()
			if err != nil {
				cs.oerr = err
				return nil, fmt.Errorf("rtp: Opus encoder: %w", err)
			}
			cs.oenc = enc
		}
		cs.wide = cs.resampler(48000, true).Resample(cs.wide[:0], pcm)
		return cs.oenc.Encode(out, cs.wide)
	case PCMA:
		for _, s := range pcm {
			out = append(out, audio.EncodeALaw(s))
		}
	case G722:
		if cs.enc == nil {
			cs.enc = g722.NewEncoder()
		}
		cs.wide = cs.resampler(16000, true).Resample(cs.wide[:0], pcm)
		out = cs.enc.Encode(out, cs.wide)
	default:
		for _, s := range pcm {
			out = append(out, audio.EncodeMuLaw(s))
		}
	}
	return out, nil
}

// decode writes the 8 kHz samples of payload in codec c into out and
// returns how many; out holds 1500 samples, more than any packet of up
// to 120 ms has at 8 kHz.
func (cs *codecState) decode(c Codec, payload []byte, out []int16) int {
	if c != Opus {
		payload = payload[:min(len(payload), len(out))]
	}
	switch c {
	case Opus:
		if cs.odec == nil {
			if cs.opus == nil || cs.oerr != nil {
				return 0
			}
			dec, err := cs.opus.NewDecoder()
			if err != nil {
				cs.oerr = err
				return 0
			}
			cs.odec = dec
		}
		wide, err := cs.odec.Decode(cs.wide[:0], payload)
		if err != nil {
			return 0
		}
		cs.wide = wide
		cs.narrow = cs.resampler(48000, false).Resample(cs.narrow[:0], wide)
		return copy(out, cs.narrow)
	case PCMA:
		for i, b := range payload {
			out[i] = audio.DecodeALaw(b)
		}
	case G722:
		if cs.dec == nil {
			cs.dec = g722.NewDecoder()
		}
		cs.wide = cs.dec.Decode(cs.wide[:0], payload)
		cs.narrow = cs.resampler(16000, false).Resample(cs.narrow[:0], cs.wide)
		return copy(out, cs.narrow)
	default:
		for i, b := range payload {
			out[i] = audio.DecodeMuLaw(b)
		}
	}
	return len(payload)
}
