package audio

// G.711 (ITU-T, 1988) companding, written from the recommendation's
// segment tables: 16-bit linear samples to and from 8-bit µ-law (PCMU)
// and A-law (PCMA) codes.

const (
	muBias = 0x84  // 132: shifts every segment's start to a power of two
	muClip = 32635 // largest magnitude that survives the bias
)

// EncodeMuLaw returns the G.711 µ-law (PCMU) code of a 16-bit linear
// sample.
func EncodeMuLaw(s int16) byte {
	x := int(s)
	var sign byte
	if x < 0 {
		x, sign = -x, 0x80
	}
	x = min(x, muClip) + muBias
	exp := byte(7)
	for mask := 0x4000; x&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := byte(x>>(exp+3)) & 0x0f
	return ^(sign | exp<<4 | mant)
}

// DecodeMuLaw returns the 16-bit linear sample of a G.711 µ-law code.
func DecodeMuLaw(u byte) int16 {
	u = ^u
	exp := (u >> 4) & 0x07
	x := ((int(u&0x0f) << 3) + muBias) << exp
	x -= muBias
	if u&0x80 != 0 {
		return int16(-x)
	}
	return int16(x)
}

// EncodeALaw returns the G.711 A-law (PCMA) code of a 16-bit linear
// sample.
func EncodeALaw(s int16) byte {
	x := int(s)
	mask := byte(0xd5) // positive: sign bit set, even bits inverted
	if x < 0 {
		mask = 0x55
		x = -x - 1
	}
	// Segment: the number of times x exceeds 0xff, 0x1ff, … 0x3fff.
	seg := 0
	for end := 0xff; x > end && seg < 8; end = end<<1 | 1 {
		seg++
	}
	if seg >= 8 {
		return 0x7f ^ mask
	}
	var v int
	if seg < 2 {
		v = seg<<4 | (x>>4)&0x0f
	} else {
		v = seg<<4 | (x>>(seg+3))&0x0f
	}
	return byte(v) ^ mask
}

// DecodeALaw returns the 16-bit linear sample of a G.711 A-law code.
func DecodeALaw(a byte) int16 {
	a ^= 0x55
	t := int(a&0x0f)<<4 + 8
	switch seg := (a >> 4) & 0x07; seg {
	case 0:
	case 1:
		t += 0x100
	default:
		t = (t + 0x100) << (seg - 1)
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}
