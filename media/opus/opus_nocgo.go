//go:build !cgo

package opus

import "fmt"

// errNoCgo is what every constructor returns without cgo.
var errNoCgo = fmt.Errorf("%w: built without cgo (CGO_ENABLED=0)", ErrUnavailable)

// Available returns nil when libopus can be used, or an error wrapping
// ErrUnavailable that says why not: without cgo, always that error.
func Available() error { return errNoCgo }

// Version returns libopus's version string, or "" when it is not
// available: without cgo, always "".
func Version() string { return "" }

// Encoder encodes PCM frames into Opus packets. Without cgo none can be
// made.
type Encoder struct{ channels int }

// NewEncoder returns an error wrapping ErrUnavailable: the package was
// built without cgo. Bad options are reported as ErrInvalid first.
func NewEncoder(opts EncoderOptions) (*Encoder, error) {
	if _, err := opts.check(); err != nil {
		return nil, err
	}
	return nil, errNoCgo
}

// Channels returns the encoder's channel count.
func (e *Encoder) Channels() int { return e.channels }

// Encode returns an error wrapping ErrUnavailable.
func (e *Encoder) Encode(dst []byte, pcm []int16) ([]byte, error) { return dst, errNoCgo }

// SetBitrate returns an error wrapping ErrUnavailable.
func (e *Encoder) SetBitrate(bps int) error { return errNoCgo }

// Reset returns an error wrapping ErrUnavailable.
func (e *Encoder) Reset() error { return errNoCgo }

// Close does nothing.
func (e *Encoder) Close() {}

// Decoder decodes Opus packets into PCM. Without cgo none can be made.
type Decoder struct{ channels int }

// NewDecoder returns an error wrapping ErrUnavailable: the package was
// built without cgo. A bad channel count is reported as ErrInvalid first.
func NewDecoder(channels int) (*Decoder, error) {
	if err := checkChannels(channels); err != nil {
		return nil, err
	}
	return nil, errNoCgo
}

// Channels returns the decoder's channel count.
func (d *Decoder) Channels() int { return d.channels }

// Decode returns an error wrapping ErrUnavailable.
func (d *Decoder) Decode(dst []int16, packet []byte) ([]int16, error) { return dst, errNoCgo }

// Reset returns an error wrapping ErrUnavailable.
func (d *Decoder) Reset() error { return errNoCgo }

// Close does nothing.
func (d *Decoder) Close() {}
