// Package opus encodes and decodes Opus (RFC 6716) audio for RTP
// (RFC 7587) through libopus, the reference implementation, called with
// cgo. It is a package of its own so that the rest of the module stays
// pure Go: nothing else in the module imports it, and a program links
// libopus only when it imports this package.
//
// libopus is not linked at build time: the package loads the shared
// library (libopus.so.0, Debian's libopus0, which libopus-dev and most
// audio software pull in) the first time an Encoder or Decoder is made,
// so the package builds wherever cgo works, without the library's
// headers. When cgo is off (CGO_ENABLED=0), or the library cannot be
// loaded, NewEncoder and NewDecoder return an error wrapping
// ErrUnavailable, and Available says why; a media handler then leaves
// Opus out of its offers and answers.
//
// Audio is 16-bit linear PCM at 48 kHz (SampleRate), mono or stereo
// (samples interleaved left, right). An RTP stream of Opus always uses
// the 48000 Hz clock and "opus/48000/2" in SDP whatever the channel count
// (RFC 7587 §7). A frame is 2.5, 5, 10, 20, 40 or 60 ms; 20 ms
// (FrameSamples per channel) is the usual one.
//
// Encoders and Decoders hold C memory: Close frees it (a finalizer-like
// cleanup frees what is forgotten). Their methods may be called from
// several goroutines but run one at a time.
package opus

import (
	"errors"
	"fmt"
)

// Rates and sizes.
const (
	// SampleRate is the rate of the PCM the package encodes and
	// decodes, and Opus's RTP clock rate.
	SampleRate = 48000
	// FrameSamples is the number of samples per channel in a 20 ms
	// frame.
	FrameSamples = SampleRate / 50
	// MaxFrameSamples is the most samples per channel one packet
	// decodes to (120 ms).
	MaxFrameSamples = SampleRate * 120 / 1000
	// MaxPacketBytes is the size of the largest packet Encode writes.
	MaxPacketBytes = 4000
)

// Errors of this package; the errors returned wrap them.
var (
	// ErrUnavailable reports that libopus cannot be used: the package
	// was built without cgo, or the shared library is not installed.
	ErrUnavailable = errors.New("opus: libopus is not available")
	// ErrInvalid reports an invalid argument: a channel count other
	// than 1 or 2, a frame length Opus does not have, a bitrate out of
	// range.
	ErrInvalid = errors.New("opus: invalid argument")
	// ErrCorrupt reports a packet libopus cannot decode.
	ErrCorrupt = errors.New("opus: corrupt packet")
	// ErrClosed reports use of a closed Encoder or Decoder.
	ErrClosed = errors.New("opus: closed")
)

// Application tells the encoder what the audio is for (libopus's
// OPUS_APPLICATION_*).
type Application int

// The applications.
const (
	// VoIP favours speech intelligibility; the default.
	VoIP Application = 2048
	// Audio favours faithfulness to the input, e.g. music.
	Audio Application = 2049
)

// Bitrate bounds libopus accepts, in bits per second.
const (
	MinBitrate = 500
	MaxBitrate = 512000
)

// EncoderOptions configure an Encoder. The zero value is a mono VoIP
// encoder at libopus's default bitrate.
type EncoderOptions struct {
	// Channels is 1 (mono, the default when 0) or 2 (stereo).
	Channels int
	// Bitrate is the target bitrate in bits per second, from MinBitrate
	// to MaxBitrate; 0 leaves libopus's default (about 32 kbit/s for
	// 20 ms mono VoIP frames).
	Bitrate int
	// Application is VoIP (the default when 0) or Audio.
	Application Application
	// Complexity is libopus's complexity from 1 (cheapest) to 10 (best,
	// the default when 0).
	Complexity int
	// FEC turns on in-band forward error correction (RFC 7587's
	// useinbandfec=1), with PacketLossPercent the expected loss it
	// protects against.
	FEC               bool
	PacketLossPercent int
	// DTX turns on discontinuous transmission: during silence the
	// encoder produces tiny packets, about every 400 ms (RFC 7587's
	// usedtx=1).
	DTX bool
}

// check validates the options and fills in the defaults.
func (o EncoderOptions) check() (EncoderOptions, error) {
	if o.Channels == 0 {
		o.Channels = 1
	}
	if o.Application == 0 {
		o.Application = VoIP
	}
	switch {
	case o.Channels != 1 && o.Channels != 2:
		return o, fmt.Errorf("%w: %d channels (1 or 2)", ErrInvalid, o.Channels)
	case o.Bitrate != 0 && (o.Bitrate < MinBitrate || o.Bitrate > MaxBitrate):
		return o, fmt.Errorf("%w: bitrate %d bit/s (%d to %d)", ErrInvalid, o.Bitrate, MinBitrate, MaxBitrate)
	case o.Application != VoIP && o.Application != Audio:
		return o, fmt.Errorf("%w: application %d", ErrInvalid, o.Application)
	case o.Complexity < 0 || o.Complexity > 10:
		return o, fmt.Errorf("%w: complexity %d (1 to 10)", ErrInvalid, o.Complexity)
	case o.PacketLossPercent < 0 || o.PacketLossPercent > 100:
		return o, fmt.Errorf("%w: packet loss %d%%", ErrInvalid, o.PacketLossPercent)
	}
	return o, nil
}

// checkChannels validates a decoder's channel count.
func checkChannels(channels int) error {
	if channels != 1 && channels != 2 {
		return fmt.Errorf("%w: %d channels (1 or 2)", ErrInvalid, channels)
	}
	return nil
}
