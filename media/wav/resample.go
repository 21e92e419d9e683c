package wav

import (
	"fmt"
	"math"
)

// The rate converter: a windowed-sinc (Kaiser window) low-pass FIR filter
// evaluated at each output sample's position in the input, which both
// interpolates and, when the rate goes down, removes what the new rate
// cannot carry (anti-aliasing), or, when it goes up, the images of the
// old spectrum (anti-imaging).
const (
	// resampleCutoff places the filter's cutoff (-6 dB) at this fraction
	// of the lower rate's Nyquist frequency: 3.6 kHz for 8 kHz, 7.2 kHz
	// for 16 kHz.
	resampleCutoff = 0.9
	// resampleZeros is the number of zero crossings of the sinc kept on
	// each side: the filter's length, and so the width of its transition
	// band (about 0.1 of the lower rate's Nyquist frequency here).
	resampleZeros = 24
	// resampleBeta is the Kaiser window's β: about 80 dB of stopband
	// attenuation.
	resampleBeta = 7.86
	// resampleSteps is the resolution of the kernel table, in points per
	// zero crossing; values between points are interpolated linearly.
	resampleSteps = 512
)

// kernel is the filter's impulse response as a function of u, the
// distance from the center in zero crossings (0 to resampleZeros),
// tabulated: kernel[i] = h(i/resampleSteps).
var kernel = func() []float64 {
	t := make([]float64, resampleZeros*resampleSteps+2)
	i0b := besselI0(resampleBeta)
	for i := range t {
		u := float64(i) / resampleSteps
		if u >= resampleZeros {
			break // zero
		}
		s := 1.0
		if u != 0 {
			s = math.Sin(math.Pi*u) / (math.Pi * u)
		}
		r := u / resampleZeros
		t[i] = s * besselI0(resampleBeta*math.Sqrt(1-r*r)) / i0b
	}
	return t
}()

// besselI0 is the modified Bessel function of the first kind, order 0,
// by its power series.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / 2) / float64(k)
		sum += term * term
		if term*term < sum*1e-17 {
			break
		}
	}
	return sum
}

// converter converts a stream from rate from to rate to. Output sample n
// sits at input position n*from/to.
type converter struct {
	from, to int64
	scale    float64 // zero crossings per input sample: 2·cutoff/from
	half     int64   // input samples used on each side of a position

	// Output positions fall on at most to/gcd(from, to) distinct
	// fractions of an input sample (phases); when there are few, the
	// weights of each are computed once, when first needed.
	step   int64       // gcd(from, to): frac is a multiple of it
	phases [][]float64 // nil: computed for every sample
}

// maxCachedWeights bounds the weights a converter keeps (256 KiB).
const maxCachedWeights = 32 << 10

// newConverter returns a converter between two rates (both positive).
func newConverter(from, to int) *converter {
	cutoff := resampleCutoff * float64(min(from, to)) / 2
	scale := 2 * cutoff / float64(from)
	c := &converter{
		from:  int64(from),
		to:    int64(to),
		scale: scale,
		half:  int64(math.Ceil(resampleZeros / scale)),
	}
	a, b := c.from, c.to
	for b != 0 {
		a, b = b, a%b
	}
	c.step = a
	if n := c.to / c.step; n*2*c.half <= maxCachedWeights {
		c.phases = make([][]float64, n)
	}
	return c
}

// weights returns the filter's 2·half weights for an output at fraction
// frac/to past an input sample, for the input samples from half-1 before
// it to half after it, normalized to a sum of 1 (a gain of exactly 1 at
// 0 Hz for every position).
func (c *converter) weights(frac int64, w []float64) []float64 {
	t := float64(frac) / float64(c.to)
	w = w[:0]
	var sum float64
	for k := -c.half + 1; k <= c.half; k++ {
		u := math.Abs(float64(k)-t) * c.scale * resampleSteps
		v := 0.0
		if i := int(u); i < len(kernel)-1 {
			v = kernel[i] + (u-float64(i))*(kernel[i+1]-kernel[i])
		}
		w = append(w, v)
		sum += v
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}

// position returns where output sample n sits in the input: the input
// sample at or before it, and the fraction of a sample past it (in units
// of 1/to).
func (c *converter) position(n int64) (idx, frac int64) {
	pos := n * c.from
	return pos / c.to, pos % c.to
}

// sample computes the output sample at input position idx + frac/to from
// in, which holds the input samples from number base on; samples outside
// in count as silence (before the start, after the end).
func (c *converter) sample(in []int16, base, idx, frac int64) int16 {
	if c.from == c.to {
		if k := idx - base; k >= 0 && k < int64(len(in)) {
			return in[k]
		}
		return 0
	}
	var w []float64
	if c.phases != nil {
		p := frac / c.step
		if c.phases[p] == nil {
			c.phases[p] = c.weights(frac, make([]float64, 0, 2*c.half))
		}
		w = c.phases[p]
	} else {
		var buf [2048]float64 // 2·half is at most 1280 for outputs of 8 kHz and up
		w = c.weights(frac, buf[:0])
	}
	// The input samples the weights apply to: in[lo-base:] on, with
	// silence outside in.
	lo := idx - c.half + 1
	first, last := max(lo, base), min(idx+c.half, base+int64(len(in))-1)
	var acc float64
	for k := first; k <= last; k++ {
		acc += w[k-lo] * float64(in[k-base])
	}
	return int16(max(math.MinInt16, min(math.MaxInt16, math.Round(acc))))
}

// Resample converts mono samples from one rate to another (each from
// MinSampleRate to MaxSampleRate) with the low-pass filter the Reader
// uses: e.g. 8 kHz G.711 audio to 16 kHz for G.722, or 16 kHz to 8 kHz.
// The result has len(samples)·to/from samples (rounded up) and is aligned
// with the input: the filter adds no delay. Equal rates return a copy.
func Resample(samples []int16, from, to int) ([]int16, error) {
	for _, r := range []int{from, to} {
		if r < MinSampleRate || r > MaxSampleRate {
			return nil, fmt.Errorf("%w: sample rate %d Hz (%d to %d Hz)", ErrUnsupported, r, MinSampleRate, MaxSampleRate)
		}
	}
	c := newConverter(from, to)
	out := make([]int16, 0, (int64(len(samples))*int64(to)+int64(from)-1)/int64(from))
	for n := int64(0); ; n++ {
		idx, frac := c.position(n)
		if idx >= int64(len(samples)) {
			return out, nil
		}
		out = append(out, c.sample(samples, 0, idx, frac))
	}
}

// Resampler converts a stream of mono samples from one rate to another
// piece by piece, e.g. the 20 ms frames of a call: 8 kHz audio to the
// 16 kHz of G.722 or the 48 kHz of Opus, and what those decode back to
// 8 kHz. It uses the same filter as Resample, but as a stream it cannot
// look ahead: its output lags the input by Delay output samples (under
// 4 ms), during which it starts with silence. Every input sample yields
// its share of output at once, so 20 ms in gives 20 ms out whenever both
// rates are multiples of 50 Hz. A Resampler is not safe for concurrent
// use.
type Resampler struct {
	c     *converter
	shift int64   // the lag, in input samples
	in    []int16 // input samples from number base on
	base  int64
	total int64 // input samples received
	n     int64 // output samples produced
}

// NewResampler returns a Resampler from rate from to rate to (each from
// MinSampleRate to MaxSampleRate). Equal rates pass samples through
// unchanged, without delay.
func NewResampler(from, to int) (*Resampler, error) {
	for _, r := range []int{from, to} {
		if r < MinSampleRate || r > MaxSampleRate {
			return nil, fmt.Errorf("%w: sample rate %d Hz (%d to %d Hz)", ErrUnsupported, r, MinSampleRate, MaxSampleRate)
		}
	}
	r := &Resampler{c: newConverter(from, to)}
	if from != to {
		r.shift = r.c.half
	}
	return r, nil
}

// Delay returns how many output samples the output lags the input by.
func (r *Resampler) Delay() int {
	return int((r.shift*r.c.to + r.c.from - 1) / r.c.from)
}

// Resample appends the output samples for in to dst and returns the
// extended slice.
func (r *Resampler) Resample(dst, in []int16) []int16 {
	r.in = append(r.in, in...)
	r.total += int64(len(in))
	c := r.c
	for {
		idx, frac := c.position(r.n)
		if idx >= r.total {
			break
		}
		// The output sits shift input samples earlier than its position,
		// so the filter's last input sample, idx-shift+half, is in.
		dst = append(dst, c.sample(r.in, r.base, idx-r.shift, frac))
		r.n++
	}
	// Keep what the next output needs: from its first input sample on.
	idx, _ := c.position(r.n)
	if drop := min(idx-r.shift-c.half+1-r.base, int64(len(r.in))); drop > 0 {
		r.in = append(r.in[:0], r.in[drop:]...)
		r.base += drop
	}
	return dst
}

// Reset drops the samples held back, as for a new stream.
func (r *Resampler) Reset() {
	r.in = r.in[:0]
	r.base, r.total, r.n = 0, 0, 0
}
