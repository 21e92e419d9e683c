package g722

import "math"

// The sub-band ADPCM coders of G.722 §3 and §4, in the 16-bit
// fixed-point arithmetic of the Recommendation: every sum saturates to
// the int16 range, every product of a signal and a coefficient is scaled
// by 2^-15.

// bandKind selects the lower (6-bit) or higher (2-bit) sub-band coder.
type bandKind uint8

const (
	lowBand bandKind = iota
	highBand
)

// band is the state of one sub-band ADPCM coder: the quantizer scale
// factor and its logarithm, and the adaptive predictor (two poles, six
// zeros) with its signal history. The encoder and the decoder of a band
// keep the same state and update it the same way.
type band struct {
	kind bandKind
	det  int32    // quantizer scale factor (DETL, DETH)
	nb   int32    // its logarithm (NBL, NBH)
	s    int32    // predicted signal (SL, SH)
	sz   int32    // zero-section part of the prediction (SZL, SZH)
	a    [3]int32 // pole coefficients a[1], a[2] (AL, AH)
	b    [7]int32 // zero coefficients b[1]..b[6] (BL, BH)
	d    [7]int32 // quantized differences d[0] (newest) .. d[6] (DLT, DH)
	p    [3]int32 // partially reconstructed signal p[0..2] (PLT, PH)
	r    [3]int32 // reconstructed signal r[0..2] (RLT, RH)
}

// reset sets the initial state of §3.8 (reset): everything zero, the
// scale factor at its minimum.
func (b *band) reset(kind bandKind) {
	*b = band{kind: kind}
	b.det = scaleFactor(kind, 0)
}

// sat saturates v to the int16 range, as the Recommendation's additions
// do.
func sat(v int32) int32 {
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return v
}

// mul is the fixed-point product a·b·2^-15, saturated.
func mul(a, b int32) int32 { return sat(a * b >> 15) }

// limit bounds a sub-band signal to the 15-bit range of the
// Recommendation's LIMIT block.
func limit(v int32) int32 {
	switch {
	case v > 16383:
		return 16383
	case v < -16384:
		return -16384
	}
	return v
}

// magnitude returns |e| in one's complement, as the quantizers compare
// it: e for e >= 0, -e-1 for e < 0.
func magnitude(e int32) int32 {
	if e < 0 {
		return ^e
	}
	return e
}

// Lower sub-band quantizer (Table 2): the decision levels q6 (in units
// of the scale factor, ×2^-12), and the 6-bit code words for the 30
// intervals of a negative and of a positive difference.
var (
	lowLevels = [30]int32{
		0, 35, 72, 110, 150, 190, 233, 276, 323, 370,
		422, 473, 530, 587, 650, 714, 786, 858, 940, 1023,
		1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
	}
	lowCodeNeg = [31]int32{
		0, 0x3f, 0x3e, 0x1f, 0x1e, 0x1d, 0x1c, 0x1b, 0x1a, 0x19, 0x18,
		0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, 0x10, 0x0f, 0x0e,
		0x0d, 0x0c, 0x0b, 0x0a, 0x09, 0x08, 0x07, 0x06, 0x05, 0x04,
	}
	lowCodePos = [31]int32{
		0, 0x3d, 0x3c, 0x3b, 0x3a, 0x39, 0x38, 0x37, 0x36, 0x35, 0x34,
		0x33, 0x32, 0x31, 0x30, 0x2f, 0x2e, 0x2d, 0x2c, 0x2b, 0x2a,
		0x29, 0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21, 0x20,
	}
)

// quantizeLow is the 6-bit lower sub-band quantizer (block QUANTL): the
// code word of the interval the difference e falls in, the intervals
// scaled by det.
func quantizeLow(e, det int32) int32 {
	w := magnitude(e)
	// The first interval m in 1..29 whose upper decision level exceeds
	// w, or 30: a binary search, the levels growing with m.
	lo, hi := int32(1), int32(30)
	for lo < hi {
		m := (lo + hi) / 2
		if w < mul(lowLevels[m]<<3, det) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	m := lo
	if e < 0 {
		return lowCodeNeg[m]
	}
	return lowCodePos[m]
}

// quantizeHigh is the 2-bit higher sub-band quantizer (block QUANTH).
func quantizeHigh(e, det int32) int32 {
	big := magnitude(e) >= mul(564<<3, det)
	switch {
	case e < 0 && big:
		return 0
	case e < 0:
		return 1
	case big:
		return 2
	}
	return 3
}

// Inverse quantizers. The 4-bit one (block INVQAL) serves the predictor
// of both encoder and decoder (the two low bits of a lower-band code word
// are left out, so that the data-insertion modes keep both ends in step);
// the 6-bit one (INVQBL, 64 kbit/s) gives the decoder's output. Each
// table holds the output level of a code word in units of the scale
// factor ×2^-12 (Tables 2, 3 and 4), with its sign.
var (
	// low4Index maps the four high bits of a lower-band code word to
	// the magnitude index in low4Levels (and to the logarithmic
	// scale-factor multiplier in lowLogFactor).
	low4Index  = [16]int32{0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0}
	low4Levels = [8]int32{0, 150, 323, 530, 786, 1121, 1612, 2557}
	// low6Index maps a 6-bit code word to its magnitude in low6Levels.
	low6Index = [64]int32{
		1, 1, 1, 1, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19,
		18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3,
		30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15,
		14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 2, 1,
	}
	low6Levels = [31]int32{
		0, 17, 54, 91, 130, 170, 211, 254, 300, 347, 396, 447, 501,
		558, 618, 682, 750, 822, 899, 982, 1072, 1170, 1279, 1399,
		1535, 1689, 1873, 2088, 2376, 2738, 3101,
	}
	// high2Index maps a 2-bit higher-band code word to its magnitude
	// index in high2Levels (and in highLogFactor).
	high2Index  = [4]int32{2, 1, 2, 1}
	high2Levels = [3]int32{0, 202, 926}
)

// dequantLow4 is block INVQAL: the 4-bit quantized difference of a
// lower-band code word.
func dequantLow4(code, det int32) int32 {
	c := code >> 2
	v := low4Levels[low4Index[c]] << 3
	if c < 8 { // code words 0000-0111 are the negative half
		v = -v
	}
	return mul(det, v)
}

// dequantLow6 is block INVQBL at 64 kbit/s: the 6-bit quantized
// difference, which the decoder outputs.
func dequantLow6(code, det int32) int32 {
	v := low6Levels[low6Index[code]] << 3
	if code < 32 || code >= 62 { // negative: 0xxxxx and 111110, 111111
		v = -v
	}
	return mul(det, v)
}

// dequantHigh is block INVQAH.
func dequantHigh(code, det int32) int32 {
	v := high2Levels[high2Index[code]] << 3
	if code < 2 {
		v = -v
	}
	return mul(v, det)
}

// Logarithmic scale-factor multipliers (blocks LOGSCL and LOGSCH,
// Tables 5 and 7) and the bounds of the logarithmic scale factors.
var (
	lowLogFactor  = [8]int32{-60, -30, 58, 172, 334, 538, 1198, 3042}
	highLogFactor = [3]int32{0, -214, 798}
)

const (
	lowLogMax  = 18432
	highLogMax = 22528
)

// expTable[i] is 2^(i/32 + 1) in the integer steps of the
// Recommendation's table ILA (plus one): the inverse logarithm of blocks
// SCALEL and SCALEH. The mantissa of each octave, 2048·2^(k/32) rounded,
// is shifted down to the octave of i and truncated.
var expTable = func() (t [353]int32) {
	for i := range t {
		m := int32(math.Round(2048 * math.Exp2(float64(i%32)/32)))
		if sh := i/32 - 10; sh >= 0 {
			t[i] = m << sh
		} else {
			t[i] = m >> -sh
		}
	}
	return t
}()

// scaleFactor is block SCALEL or SCALEH: the quantizer scale factor of
// the logarithmic scale factor nb.
func scaleFactor(kind bandKind, nb int32) int32 {
	i := nb >> 6 & 511
	if kind == lowBand {
		i += 64
	}
	return expTable[i] << 2
}

// adapt updates the band's state with the quantized difference dq of
// the code word just coded (index k into the band's logarithmic
// multipliers): the scale factor (LOGSCL/SCALEL, LOGSCH/SCALEH), then the
// predictor (RECONS, PARREC, UPZERO, UPPOL2, UPPOL1, FILTEZ, FILTEP,
// PREDIC).
func (b *band) adapt(dq, k int32) {
	nb := b.nb * 32512 >> 15
	top := int32(lowLogMax)
	if b.kind == lowBand {
		nb += lowLogFactor[k]
	} else {
		nb += highLogFactor[k]
		top = highLogMax
	}
	b.nb = min(max(nb, 0), top)
	b.det = scaleFactor(b.kind, b.nb)

	b.d[0] = dq
	b.p[0] = sat(dq + b.sz) // partially reconstructed signal
	b.r[0] = sat(b.s + dq)  // reconstructed signal

	// UPZERO: sign-sign adaptation of the zero coefficients, with
	// leakage; the difference history moves down one place.
	step := int32(128)
	if dq == 0 {
		step = 0
	}
	for i := 6; i > 0; i-- {
		w := -step
		if (dq < 0) == (b.d[i] < 0) {
			w = step
		}
		b.b[i] = sat(w + mul(b.b[i], 32640))
		b.d[i] = b.d[i-1]
	}

	// UPPOL2: second pole coefficient, from the signs of p.
	s0, s1, s2 := b.p[0] < 0, b.p[1] < 0, b.p[2] < 0
	w1 := sat(b.a[1] * 4)
	if s0 == s1 {
		w1 = sat(-w1)
	}
	w1 >>= 7
	w2 := int32(-128)
	if s0 == s2 {
		w2 = 128
	}
	a2 := sat(sat(w1+w2) + mul(b.a[2], 32512))
	b.a[2] = min(max(a2, -12288), 12288)

	// UPPOL1: first pole coefficient, kept inside the stability
	// triangle set by a[2].
	w := int32(-192)
	if s0 == s1 {
		w = 192
	}
	a1 := sat(w + mul(b.a[1], 32640))
	bound := sat(15360 - b.a[2])
	if a1 > bound {
		a1 = bound
	} else if sat(a1+bound) < 0 {
		a1 = -bound
	}
	b.p[2], b.p[1] = b.p[1], b.p[0]
	b.a[1] = a1

	// FILTEZ, FILTEP, PREDIC: the next prediction.
	var sz int32
	for i := 6; i > 0; i-- {
		sz = sat(sz + mul(sat(b.d[i]+b.d[i]), b.b[i]))
	}
	b.sz = sz
	b.r[2], b.r[1] = b.r[1], b.r[0]
	sp := sat(mul(b.a[1], sat(b.r[1]+b.r[1])) + mul(b.a[2], sat(b.r[2]+b.r[2])))
	b.s = sat(sp + sz)
}

// encodeLow codes one lower sub-band sample and returns its 6-bit code
// word.
func (b *band) encodeLow(x int32) int32 {
	code := quantizeLow(sat(x-b.s), b.det)
	b.adapt(dequantLow4(code, b.det), low4Index[code>>2])
	return code
}

// decodeLow decodes one 6-bit lower sub-band code word.
func (b *band) decodeLow(code int32) int32 {
	out := limit(sat(b.s + dequantLow6(code, b.det)))
	b.adapt(dequantLow4(code, b.det), low4Index[code>>2])
	return out
}

// encodeHigh codes one higher sub-band sample and returns its 2-bit code
// word.
func (b *band) encodeHigh(x int32) int32 {
	code := quantizeHigh(sat(x-b.s), b.det)
	b.adapt(dequantHigh(code, b.det), high2Index[code])
	return code
}

// decodeHigh decodes one 2-bit higher sub-band code word.
func (b *band) decodeHigh(code int32) int32 {
	b.adapt(dequantHigh(code, b.det), high2Index[code])
	return limit(b.r[0])
}
