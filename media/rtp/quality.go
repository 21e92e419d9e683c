package rtp

import (
	"math"
	"time"
)

// E-model (ITU-T G.107) parameters of the codecs: the equipment
// impairment Ie and the packet-loss robustness Bpl (ITU-T G.113 Appendix
// I). This package conceals no loss (a lost packet plays as silence), so
// G.711 takes the value for no packet-loss concealment. G.722 is rated on
// the narrowband scale like the others, which underrates it.
func codecImpairment(Codec) (ie, bpl float64) { return 0, 4.3 }

// mosEstimate returns the E-model's listening quality estimate (ITU-T
// G.107, simplified: default values for everything but delay and loss)
// of a call with the given packet loss (0–1, random) and one-way
// mouth-to-ear delay: MOS from 1 (bad) to 4.5.
func mosEstimate(loss float64, oneWay time.Duration, c Codec) float64 {
	const r0 = 93.2 // R0 - Is - A with G.107's default values
	d := float64(oneWay) / float64(time.Millisecond)
	id := 0.024 * d
	if d > 177.3 {
		id += 0.11 * (d - 177.3)
	}
	ie, bpl := codecImpairment(c)
	ppl := 100 * min(max(loss, 0), 1)
	ieEff := ie + (95-ie)*ppl/(ppl+bpl) // BurstR = 1: random loss
	r := r0 - id - ieEff
	switch {
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	mos := 1 + 0.035*r + r*(r-60)*(100-r)*7e-6
	return math.Round(max(mos, 1)*100) / 100
}
