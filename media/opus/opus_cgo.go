//go:build cgo

package opus

/*
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

// The libopus functions the package calls, looked up in the shared
// library at run time (their ABI is stable across libopus 1.x).
static void *(*p_encoder_create)(int32_t, int, int, int *);
static int32_t (*p_encode)(void *, const int16_t *, int, unsigned char *, int32_t);
static int (*p_encoder_ctl)(void *, int, ...);
static void (*p_encoder_destroy)(void *);
static void *(*p_decoder_create)(int32_t, int, int *);
static int (*p_decode)(void *, const unsigned char *, int32_t, int16_t *, int, int);
static int (*p_decoder_ctl)(void *, int, ...);
static void (*p_decoder_destroy)(void *);
static const char *(*p_get_version_string)(void);

// sipua_opus_load opens libopus and finds its functions: 0 on success,
// -1 when the library is missing, -2 when a function is.
static int sipua_opus_load(void) {
	void *h = dlopen("libopus.so.0", RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) h = dlopen("libopus.so", RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) return -1;
	p_encoder_create = dlsym(h, "opus_encoder_create");
	p_encode = dlsym(h, "opus_encode");
	p_encoder_ctl = dlsym(h, "opus_encoder_ctl");
	p_encoder_destroy = dlsym(h, "opus_encoder_destroy");
	p_decoder_create = dlsym(h, "opus_decoder_create");
	p_decode = dlsym(h, "opus_decode");
	p_decoder_ctl = dlsym(h, "opus_decoder_ctl");
	p_decoder_destroy = dlsym(h, "opus_decoder_destroy");
	p_get_version_string = dlsym(h, "opus_get_version_string");
	if (!p_encoder_create || !p_encode || !p_encoder_ctl || !p_encoder_destroy ||
	    !p_decoder_create || !p_decode || !p_decoder_ctl || !p_decoder_destroy ||
	    !p_get_version_string) return -2;
	return 0;
}

static void *sipua_encoder_create(int channels, int application, int *err) {
	return p_encoder_create(48000, channels, application, err);
}
static int32_t sipua_encode(void *e, const int16_t *pcm, int frame, unsigned char *out, int32_t max) {
	return p_encode(e, pcm, frame, out, max);
}
// sipua_encoder_set calls one of the encoder's int-valued SET requests.
static int sipua_encoder_set(void *e, int request, int32_t value) {
	return p_encoder_ctl(e, request, value);
}
static int sipua_encoder_reset(void *e) { return p_encoder_ctl(e, 4028); }
static void sipua_encoder_destroy(void *e) { p_encoder_destroy(e); }
static void *sipua_decoder_create(int channels, int *err) {
	return p_decoder_create(48000, channels, err);
}
static int sipua_decode(void *d, const unsigned char *data, int32_t len, int16_t *pcm, int frame) {
	return p_decode(d, data, len, pcm, frame, 0);
}
static int sipua_decoder_reset(void *d) { return p_decoder_ctl(d, 4028); }
static void sipua_decoder_destroy(void *d) { p_decoder_destroy(d); }
static const char *sipua_opus_version(void) { return p_get_version_string(); }
*/
import "C"

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"unsafe"
)

// libopus encoder requests (opus_defines.h).
const (
	setBitrate        = 4002
	setComplexity     = 4010
	setInbandFEC      = 4012
	setPacketLossPerc = 4014
	setDTX            = 4016
)

var (
	loadOnce sync.Once
	loadErr  error
	version  string
)

// load opens libopus once.
func load() error {
	loadOnce.Do(func() {
		switch C.sipua_opus_load() {
		case 0:
			version = C.GoString(C.sipua_opus_version())
		case -1:
			loadErr = fmt.Errorf("%w: cannot load libopus.so.0 (install libopus0, e.g. with interop/install.sh)", ErrUnavailable)
		default:
			loadErr = fmt.Errorf("%w: libopus.so.0 lacks an opus_* function", ErrUnavailable)
		}
	})
	return loadErr
}

// Available returns nil when libopus can be used, or an error wrapping
// ErrUnavailable that says why not.
func Available() error { return load() }

// Version returns libopus's version string, e.g. "libopus 1.3.1", or ""
// when it is not available.
func Version() string {
	if load() != nil {
		return ""
	}
	return version
}

// opusError turns a negative libopus return code into an error.
func opusError(op string, code C.int) error {
	switch code {
	case -1:
		return fmt.Errorf("%w: %s: bad argument", ErrInvalid, op)
	case -4:
		return fmt.Errorf("%w: %s: invalid packet", ErrCorrupt, op)
	case -2:
		return fmt.Errorf("opus: %s: buffer too small", op)
	}
	return fmt.Errorf("opus: %s: libopus error %d", op, int(code))
}

// validFrame reports whether n samples per channel is an Opus frame
// length at 48 kHz: 2.5, 5, 10, 20, 40 or 60 ms.
func validFrame(n int) bool {
	switch n {
	case 120, 240, 480, 960, 1920, 2880:
		return true
	}
	return false
}

// handle owns a libopus state and frees it once.
type handle struct {
	mu  sync.Mutex
	ptr unsafe.Pointer
}

// Encoder encodes PCM frames into Opus packets.
type Encoder struct {
	h        *handle
	channels int
	cleanup  runtime.Cleanup
}

// NewEncoder returns an Encoder with the given options. It returns an
// error wrapping ErrUnavailable when libopus cannot be used, or ErrInvalid
// for bad options.
func NewEncoder(opts EncoderOptions) (*Encoder, error) {
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}
	if err := load(); err != nil {
		return nil, err
	}
	var code C.int
	ptr := C.sipua_encoder_create(C.int(opts.Channels), C.int(opts.Application), &code)
	if ptr == nil || code != 0 {
		return nil, opusError("creating an encoder", code)
	}
	h := &handle{ptr: ptr}
	e := &Encoder{h: h, channels: opts.Channels}
	e.cleanup = runtime.AddCleanup(e, freeEncoder, h)
	set := func(req, v int) {
		if err == nil {
			if c := C.sipua_encoder_set(ptr, C.int(req), C.int32_t(v)); c != 0 {
				err = opusError(fmt.Sprintf("setting encoder request %d to %d", req, v), c)
			}
		}
	}
	if opts.Bitrate != 0 {
		set(setBitrate, opts.Bitrate)
	}
	if opts.Complexity != 0 {
		set(setComplexity, opts.Complexity)
	}
	if opts.FEC {
		set(setInbandFEC, 1)
	}
	if opts.PacketLossPercent != 0 {
		set(setPacketLossPerc, opts.PacketLossPercent)
	}
	if opts.DTX {
		set(setDTX, 1)
	}
	if err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// freeEncoder frees an encoder's C state.
func freeEncoder(h *handle) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ptr != nil {
		C.sipua_encoder_destroy(h.ptr)
		h.ptr = nil
	}
}

// Channels returns the encoder's channel count.
func (e *Encoder) Channels() int { return e.channels }

// Encode encodes one frame and appends the Opus packet to dst, returning
// the extended slice. pcm holds the frame's samples, interleaved when
// stereo: FrameSamples per channel for 20 ms, or the count of another
// Opus frame length (2.5 to 60 ms); another length returns an error
// wrapping ErrInvalid. The packet is at most MaxPacketBytes long.
func (e *Encoder) Encode(dst []byte, pcm []int16) ([]byte, error) {
	if len(pcm)%e.channels != 0 || !validFrame(len(pcm)/e.channels) {
		return dst, fmt.Errorf("%w: %d samples of %d channel(s) are not an Opus frame (%d per channel for 20 ms)",
			ErrInvalid, len(pcm), e.channels, FrameSamples)
	}
	e.h.mu.Lock()
	defer e.h.mu.Unlock()
	if e.h.ptr == nil {
		return dst, ErrClosed
	}
	dst = slices.Grow(dst, MaxPacketBytes)
	out := dst[len(dst) : len(dst)+MaxPacketBytes]
	n := C.sipua_encode(e.h.ptr, (*C.int16_t)(unsafe.Pointer(&pcm[0])), C.int(len(pcm)/e.channels),
		(*C.uchar)(unsafe.Pointer(&out[0])), C.int32_t(len(out)))
	runtime.KeepAlive(pcm)
	if n < 0 {
		return dst, opusError("encoding", C.int(n))
	}
	return dst[:len(dst)+int(n)], nil
}

// SetBitrate changes the target bitrate (bits per second, MinBitrate to
// MaxBitrate) for the following frames.
func (e *Encoder) SetBitrate(bps int) error {
	if bps < MinBitrate || bps > MaxBitrate {
		return fmt.Errorf("%w: bitrate %d bit/s (%d to %d)", ErrInvalid, bps, MinBitrate, MaxBitrate)
	}
	e.h.mu.Lock()
	defer e.h.mu.Unlock()
	if e.h.ptr == nil {
		return ErrClosed
	}
	if c := C.sipua_encoder_set(e.h.ptr, setBitrate, C.int32_t(bps)); c != 0 {
		return opusError("setting the bitrate", c)
	}
	return nil
}

// Reset puts the encoder back into its initial state (its options kept),
// as for a new stream.
func (e *Encoder) Reset() error {
	e.h.mu.Lock()
	defer e.h.mu.Unlock()
	if e.h.ptr == nil {
		return ErrClosed
	}
	if c := C.sipua_encoder_reset(e.h.ptr); c != 0 {
		return opusError("resetting the encoder", c)
	}
	return nil
}

// Close frees the encoder; later calls return ErrClosed. It is safe to
// call more than once.
func (e *Encoder) Close() {
	e.cleanup.Stop()
	freeEncoder(e.h)
}

// Decoder decodes Opus packets into PCM.
type Decoder struct {
	h        *handle
	channels int
	last     int // samples per channel of the last frame, for concealment
	cleanup  runtime.Cleanup
}

// NewDecoder returns a Decoder producing 48 kHz PCM with the given
// channel count (1 or 2; a stereo stream decodes to mono and the other
// way round as needed). It returns an error wrapping ErrUnavailable when
// libopus cannot be used.
func NewDecoder(channels int) (*Decoder, error) {
	if err := checkChannels(channels); err != nil {
		return nil, err
	}
	if err := load(); err != nil {
		return nil, err
	}
	var code C.int
	ptr := C.sipua_decoder_create(C.int(channels), &code)
	if ptr == nil || code != 0 {
		return nil, opusError("creating a decoder", code)
	}
	h := &handle{ptr: ptr}
	d := &Decoder{h: h, channels: channels, last: FrameSamples}
	d.cleanup = runtime.AddCleanup(d, freeDecoder, h)
	return d, nil
}

// freeDecoder frees a decoder's C state.
func freeDecoder(h *handle) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ptr != nil {
		C.sipua_decoder_destroy(h.ptr)
		h.ptr = nil
	}
}

// Channels returns the decoder's channel count.
func (d *Decoder) Channels() int { return d.channels }

// Decode decodes one Opus packet and appends its samples (interleaved
// when stereo) to dst, returning the extended slice. An empty packet
// stands for a lost one: the decoder conceals it with as many samples as
// the previous packet had. A packet libopus rejects returns an error
// wrapping ErrCorrupt, and dst unchanged.
func (d *Decoder) Decode(dst []int16, packet []byte) ([]int16, error) {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if d.h.ptr == nil {
		return dst, ErrClosed
	}
	frame := MaxFrameSamples
	var data *C.uchar
	if len(packet) > 0 {
		data = (*C.uchar)(unsafe.Pointer(&packet[0]))
	} else {
		frame = d.last
	}
	dst = slices.Grow(dst, frame*d.channels)
	out := dst[len(dst) : len(dst)+frame*d.channels]
	n := C.sipua_decode(d.h.ptr, data, C.int32_t(len(packet)), (*C.int16_t)(unsafe.Pointer(&out[0])), C.int(frame))
	runtime.KeepAlive(packet)
	if n < 0 {
		return dst, opusError("decoding", n)
	}
	if len(packet) > 0 {
		d.last = int(n)
	}
	return dst[:len(dst)+int(n)*d.channels], nil
}

// Reset puts the decoder back into its initial state, as for a new
// stream.
func (d *Decoder) Reset() error {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if d.h.ptr == nil {
		return ErrClosed
	}
	if c := C.sipua_decoder_reset(d.h.ptr); c != 0 {
		return opusError("resetting the decoder", c)
	}
	d.last = FrameSamples
	return nil
}

// Close frees the decoder; later calls return ErrClosed. It is safe to
// call more than once.
func (d *Decoder) Close() {
	d.cleanup.Stop()
	freeDecoder(d.h)
}
