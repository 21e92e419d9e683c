// Package g722 is an ITU-T G.722 (7 kHz audio coding within 64 kbit/s,
// SB-ADPCM) encoder and decoder in pure Go, written from the text of the
// Recommendation, for wideband telephony on plain RTP.
//
// The codec works on mono 16-bit linear PCM sampled at 16 kHz
// (SampleRate) and turns every two samples into one byte: a 20 ms frame
// of 320 samples becomes a 160-byte payload (FrameSamples, FrameBytes).
// Only the 64 kbit/s mode is produced and read (mode 1: six bits of the
// lower sub-band, two of the higher one per byte, the higher-band bits
// in the most significant positions), which is what RTP's static payload
// type 9 carries (RFC 3551). Note RFC 3551's rule for that payload type:
// its RTP clock rate, and the rate written in SDP's a=rtpmap, is 8000
// (RTPClockRate) although the audio is sampled at 16 kHz, so RTP
// timestamps advance by 160 for a 20 ms frame.
//
// An Encoder and a Decoder each keep the adaptive state of the two
// sub-band ADPCM coders and of the quadrature mirror filters; use one of
// each per direction of a call, and Reset them when the stream restarts
// (e.g. a new SSRC). They are not safe for concurrent use. The decoder
// accepts any bytes: every byte is a valid code word.
//
// The input signal is taken as 16-bit PCM as the ITU-T reference software
// (G.191) does; the quadrature mirror filters delay the audio by 22
// samples (1.375 ms) between Encode's input and Decode's output. The
// arithmetic is the Recommendation's 16-bit fixed point, saturating; the
// package's tests check it bit for bit against vectors from spandsp, the
// implementation baresip and many PBXs use (testdata/README.md).
package g722

// Rates and sizes of G.722 at 64 kbit/s.
const (
	// SampleRate is the rate of the PCM the codec encodes and decodes.
	SampleRate = 16000
	// RTPClockRate is the RTP timestamp rate of G.722 (RFC 3551 §4.5.2):
	// 8000, half the sampling rate, for historical reasons.
	RTPClockRate = 8000
	// PayloadType is G.722's static RTP payload type (RFC 3551).
	PayloadType = 9
	// FrameSamples is the number of samples in a 20 ms frame.
	FrameSamples = SampleRate / 50
	// FrameBytes is the size of a 20 ms frame once encoded: one byte
	// for every two samples.
	FrameBytes = FrameSamples / 2
)

// EncodedLen returns the number of bytes Encode produces for n samples
// (when no sample is pending from a previous call).
func EncodedLen(n int) int { return n / 2 }

// DecodedLen returns the number of samples Decode produces for n bytes.
func DecodedLen(n int) int { return 2 * n }

// Encoder encodes 16 kHz PCM into G.722 at 64 kbit/s. The zero value is
// not ready: use NewEncoder.
type Encoder struct {
	qmf     [24]int32 // transmit QMF delay line, newest first
	low     band
	high    band
	pending int16 // an odd sample kept for the next call
	hasPend bool
}

// NewEncoder returns an Encoder in the reset state of the
// Recommendation.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.Reset()
	return e
}

// Reset puts the encoder back into its initial state, as for a new
// stream, and drops any pending odd sample.
func (e *Encoder) Reset() {
	*e = Encoder{}
	e.low.reset(lowBand)
	e.high.reset(highBand)
}

// Encode appends the G.722 code words of pcm to dst and returns the
// extended slice: one byte for every two samples. When pcm has an odd
// number of samples (counting one left over from the previous call), the
// last one is kept and encoded with the next call; 20 ms frames of
// FrameSamples samples never leave one.
func (e *Encoder) Encode(dst []byte, pcm []int16) []byte {
	if e.hasPend && len(pcm) > 0 {
		dst = append(dst, e.encodePair(e.pending, pcm[0]))
		e.hasPend = false
		pcm = pcm[1:]
	}
	for len(pcm) >= 2 {
		dst = append(dst, e.encodePair(pcm[0], pcm[1]))
		pcm = pcm[2:]
	}
	if len(pcm) == 1 {
		e.pending, e.hasPend = pcm[0], true
	}
	return dst
}

// encodePair runs the transmit QMF on two consecutive samples (first,
// then second) and codes the two sub-band samples it yields.
func (e *Encoder) encodePair(first, second int16) byte {
	copy(e.qmf[2:], e.qmf[:22])
	e.qmf[0], e.qmf[1] = int32(second), int32(first)
	var even, odd int64 // the two polyphase halves of the filter
	for i := 0; i < 12; i++ {
		even += int64(qmfCoef[2*i]) * int64(e.qmf[2*i])
		odd += int64(qmfCoef[2*i+1]) * int64(e.qmf[2*i+1])
	}
	xl := limit(int32((even + odd) >> 14))
	xh := limit(int32((even - odd) >> 14))
	il := e.low.encodeLow(xl)
	ih := e.high.encodeHigh(xh)
	return byte(ih<<6 | il)
}

// Decoder decodes G.722 at 64 kbit/s into 16 kHz PCM. The zero value is
// not ready: use NewDecoder.
type Decoder struct {
	qmf  [24]int32 // receive QMF delay line, newest first
	low  band
	high band
}

// NewDecoder returns a Decoder in the reset state of the Recommendation.
func NewDecoder() *Decoder {
	d := &Decoder{}
	d.Reset()
	return d
}

// Reset puts the decoder back into its initial state, as for a new
// stream.
func (d *Decoder) Reset() {
	*d = Decoder{}
	d.low.reset(lowBand)
	d.high.reset(highBand)
}

// Decode appends the PCM of the G.722 code words in payload to dst and
// returns the extended slice: two samples for every byte. Every byte
// value is a valid code word, so Decode never fails.
func (d *Decoder) Decode(dst []int16, payload []byte) []int16 {
	for _, b := range payload {
		rl := d.low.decodeLow(int32(b & 0x3f))
		rh := d.high.decodeHigh(int32(b >> 6))
		copy(d.qmf[2:], d.qmf[:22])
		d.qmf[0] = sat(rl - rh)
		d.qmf[1] = sat(rl + rh)
		var even, odd int64
		for i := 0; i < 12; i++ {
			even += int64(qmfCoef[2*i]) * int64(d.qmf[2*i])
			odd += int64(qmfCoef[2*i+1]) * int64(d.qmf[2*i+1])
		}
		dst = append(dst, clamp16(even>>11), clamp16(odd>>11))
	}
	return dst
}

// qmfCoef are the 24 coefficients of the transmit and receive quadrature
// mirror filters (G.722 Table 6), in units of 2^-13.
var qmfCoef = [24]int32{
	3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876,
	3876, 951, -805, -210, 362, 32, -156, 12, 53, -11, -11, 3,
}

// clamp16 saturates v to the int16 range.
func clamp16(v int64) int16 {
	switch {
	case v > 32767:
		return 32767
	case v < -32768:
		return -32768
	}
	return int16(v)
}
