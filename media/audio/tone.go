package audio

import "math"

// ToneRatio returns the share of the power of pcm (sampled at rate Hz)
// that lies at frequency hz, from 0 (none) to about 1 (a pure tone of
// that frequency), measured with the Goertzel algorithm over the whole
// slice. Tests use it to tell that a tone survived a codec and the
// network: a 20 ms frame resolves about 50 Hz.
func ToneRatio(pcm []int16, hz float64, rate int) float64 {
	n := len(pcm)
	if n == 0 || rate <= 0 {
		return 0
	}
	w := 2 * math.Pi * hz / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2, total float64
	for _, v := range pcm {
		x := float64(v)
		total += x * x
		s0 := x + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	if total == 0 {
		return 0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2 // |X(hz)|²
	return min(2*power/(float64(n)*total), 1)
}
