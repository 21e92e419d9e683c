package g722

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// tone returns n samples of a sine of frequency hz at amplitude amp (of
// full scale) at SampleRate.
func tone(n int, hz, amp float64) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(math.Round(amp * 32767 * math.Sin(2*math.Pi*hz*float64(i)/SampleRate)))
	}
	return out
}

// chirp returns n samples of a sine sweeping linearly from f0 to f1 Hz.
func chirp(n int, f0, f1, amp float64) []int16 {
	out := make([]int16, n)
	dur := float64(n) / SampleRate
	for i := range out {
		t := float64(i) / SampleRate
		ph := 2 * math.Pi * (f0*t + (f1-f0)*t*t/(2*dur))
		out[i] = int16(math.Round(amp * 32767 * math.Sin(ph)))
	}
	return out
}

// noiseBursts returns n samples of speech-like bursts: noise shaped by
// a two-pole resonance (a formant) that wanders, 80 ms on, 40 ms off,
// with varying loudness.
func noiseBursts(n int, seed uint64) []int16 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]int16, n)
	var y1, y2 float64
	for i := range out {
		burst := i / (SampleRate * 120 / 1000)
		on := i%(SampleRate*120/1000) < SampleRate*80/1000
		formant := 500 + 2500*float64(burst%5)/4 // 500 Hz to 3 kHz
		rad := 0.97
		c1 := 2 * rad * math.Cos(2*math.Pi*formant/SampleRate)
		c2 := -rad * rad
		x := 0.0
		if on {
			x = r.NormFloat64() * 2000 * (1 + float64(burst%3))
		}
		y := x + c1*y1 + c2*y2
		y2, y1 = y1, y
		out[i] = int16(max(-32768, min(32767, math.Round(y*0.15))))
	}
	return out
}

// codecDelay is the delay of the two QMFs, in samples.
const codecDelay = 22

// roundTrip encodes pcm in 20 ms frames and decodes the result.
func roundTrip(t testing.TB, pcm []int16) []int16 {
	t.Helper()
	enc, dec := NewEncoder(), NewDecoder()
	var out []int16
	for off := 0; off < len(pcm); off += FrameSamples {
		frame := pcm[off:min(off+FrameSamples, len(pcm))]
		payload := enc.Encode(nil, frame)
		if len(frame) == FrameSamples && len(payload) != FrameBytes {
			t.Fatalf("a frame of %d samples gave %d bytes, want %d", len(frame), len(payload), FrameBytes)
		}
		out = dec.Decode(out, payload)
	}
	return out
}

// snr compares out (delayed by codecDelay) with in, skipping the first
// skip samples while the coders adapt. It returns the signal-to-noise
// ratio in dB after scaling out by the least-squares gain, and that gain.
func snr(in, out []int16, skip int) (db, gain float64) {
	var xy, yy, xx float64
	n := min(len(in), len(out)-codecDelay)
	for i := skip; i < n; i++ {
		x, y := float64(in[i]), float64(out[i+codecDelay])
		xy += x * y
		yy += y * y
		xx += x * x
	}
	gain = xy / yy
	var noise float64
	for i := skip; i < n; i++ {
		d := float64(in[i]) - gain*float64(out[i+codecDelay])
		noise += d * d
	}
	return 10 * math.Log10(xx/noise), gain
}

func TestToneSNR(t *testing.T) {
	for _, c := range []struct {
		hz, amp, minDB float64
	}{
		{440, 0.5, 40},
		{1000, 0.5, 40},
		{1000, 0.05, 35}, // quiet
		{3000, 0.5, 35},
		{6000, 0.5, 20}, // the higher sub-band: 2 bits a sample
		{6000, 0.05, 20},
	} {
		in := tone(SampleRate, c.hz, c.amp)
		out := roundTrip(t, in)
		db, gain := snr(in, out, 1600)
		t.Logf("%5.0f Hz at %.2f: SNR %.1f dB, gain %.3f", c.hz, c.amp, db, 1/gain)
		if db < c.minDB {
			t.Errorf("%v Hz at %v: SNR %.1f dB, want >= %v", c.hz, c.amp, db, c.minDB)
		}
		if g := 20 * math.Log10(1/gain); math.Abs(g) > 0.5 {
			t.Errorf("%v Hz at %v: level changed by %.2f dB", c.hz, c.amp, g)
		}
	}
}

func TestSpeechLikeSNR(t *testing.T) {
	for name, in := range map[string][]int16{
		"chirp 100-7000 Hz": chirp(2*SampleRate, 100, 7000, 0.4),
		"noise bursts":      noiseBursts(2*SampleRate, 7),
	} {
		out := roundTrip(t, in)
		db, gain := snr(in, out, 800)
		t.Logf("%s: SNR %.1f dB, gain %.3f", name, db, 1/gain)
		if db < 20 {
			t.Errorf("%s: SNR %.1f dB, want >= 20", name, db)
		}
	}
}

// TestSilence checks that silence stays silence: the coders settle at
// their smallest step.
func TestSilence(t *testing.T) {
	out := roundTrip(t, make([]int16, SampleRate))
	var peak int16
	for _, s := range out {
		peak = max(peak, s, -s)
	}
	if peak > 4 {
		t.Errorf("silence decoded with a peak of %d", peak)
	}
}

func TestFrameSizes(t *testing.T) {
	enc := NewEncoder()
	if got := enc.Encode(nil, make([]int16, FrameSamples)); len(got) != FrameBytes {
		t.Errorf("20 ms: %d bytes, want %d", len(got), FrameBytes)
	}
	if FrameBytes != 160 || FrameSamples != 320 || EncodedLen(320) != 160 || DecodedLen(160) != 320 {
		t.Error("frame constants wrong")
	}
	// An odd sample is kept for the next call: 3+3 samples give 1+2 bytes.
	enc.Reset()
	a := enc.Encode(nil, []int16{1, 2, 3})
	b := enc.Encode(nil, []int16{4, 5, 6})
	enc2 := NewEncoder()
	whole := enc2.Encode(nil, []int16{1, 2, 3, 4, 5, 6})
	if len(a) != 1 || len(b) != 2 || !bytes.Equal(append(a, b...), whole) {
		t.Errorf("split encode %x %x, whole %x", a, b, whole)
	}
	// Encode and Decode append.
	dst := enc.Encode([]byte{0xaa}, make([]int16, 4))
	if len(dst) != 3 || dst[0] != 0xaa {
		t.Errorf("Encode did not append: %x", dst)
	}
	pcm := NewDecoder().Decode([]int16{7}, []byte{1, 2})
	if len(pcm) != 5 || pcm[0] != 7 {
		t.Errorf("Decode did not append: %v", pcm)
	}
}

func TestReset(t *testing.T) {
	in := noiseBursts(SampleRate/2, 3)
	enc := NewEncoder()
	first := enc.Encode(nil, in)
	second := enc.Encode(nil, in) // adapted state: differs
	if bytes.Equal(first, second) {
		t.Fatal("the encoder kept no state")
	}
	enc.Reset()
	if again := enc.Encode(nil, in); !bytes.Equal(first, again) {
		t.Error("Reset encoder does not repeat its first output")
	}
	enc.Encode(nil, []int16{9}) // a pending sample is dropped by Reset
	enc.Reset()
	if again := enc.Encode(nil, in); !bytes.Equal(first, again) {
		t.Error("Reset kept a pending sample")
	}

	dec := NewDecoder()
	a := dec.Decode(nil, first)
	dec.Reset()
	if b := dec.Decode(nil, first); !slicesEqual(a, b) {
		t.Error("Reset decoder does not repeat its first output")
	}
}

func slicesEqual(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestExtremes feeds full-scale square waves, clipped noise and the
// extreme sample values: the fixed-point arithmetic saturates, nothing
// wraps around (a wrap shows as a sign flip of a loud sample).
func TestExtremes(t *testing.T) {
	in := make([]int16, SampleRate)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range in {
		switch {
		case i < 4000:
			in[i] = 32767
			if i/20%2 == 0 {
				in[i] = -32768
			}
		case i < 8000:
			in[i] = int16(r.IntN(65536) - 32768)
		default:
			in[i] = tone(1, 0, 0)[0]
			if i%2 == 0 {
				in[i] = 32767
			}
		}
	}
	out := roundTrip(t, in)
	for i := 200; i < 3900; i++ {
		x, y := in[i], out[i+codecDelay]
		if (x > 0) != (y > 0) && i%20 > 3 && i%20 < 17 {
			t.Fatalf("sample %d: square wave %d decoded as %d", i, x, y)
		}
	}
}

// readPCM reads little-endian 16-bit samples.
func readPCM(t *testing.T, name string) []int16 {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, len(b)/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return out
}

// TestReference compares the encoder and decoder bit for bit with
// vectors made by another implementation (see testdata/README.md).
func TestReference(t *testing.T) {
	in := readPCM(t, "testdata/input.pcm")
	want, err := os.ReadFile("testdata/input.g722")
	if err != nil {
		t.Fatal(err)
	}
	got := NewEncoder().Encode(nil, in)
	if len(got) != len(want) {
		t.Fatalf("encoded %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("encoded byte %d: %#02x, want %#02x", i, got[i], want[i])
		}
	}
	for _, c := range []struct{ in, want string }{
		{"testdata/input.g722", "testdata/input.decoded.pcm"},
		{"testdata/random.g722", "testdata/random.decoded.pcm"},
	} {
		payload, err := os.ReadFile(c.in)
		if err != nil {
			t.Fatal(err)
		}
		want := readPCM(t, c.want)
		got := NewDecoder().Decode(nil, payload)
		if len(got) != len(want) {
			t.Fatalf("%s: decoded %d samples, want %d", c.in, len(got), len(want))
		}
		wrapped := 0
		for i := range got {
			if got[i] == want[i] {
				continue
			}
			// The reference wraps a sample that overflows 16 bits
			// around where the Recommendation saturates it (as this
			// package does): a full-scale sample of the other sign.
			if (got[i] == math.MaxInt16 && want[i] < 0) || (got[i] == math.MinInt16 && want[i] > 0) {
				wrapped++
				continue
			}
			t.Fatalf("%s: decoded sample %d: %d, want %d", c.in, i, got[i], want[i])
		}
		t.Logf("%s: %d samples equal, %d saturated where the reference wraps around", c.in, len(got)-wrapped, wrapped)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0xff, 0x3f, 0x40, 0x80, 0xc0, 0x3e, 0x3d})
	f.Add(bytes.Repeat([]byte{0xff}, 400))
	f.Add(bytes.Repeat([]byte{0x04, 0x3c}, 300))
	f.Fuzz(func(t *testing.T, payload []byte) {
		dec := NewDecoder()
		out := dec.Decode(nil, payload)
		if len(out) != DecodedLen(len(payload)) {
			t.Fatalf("%d bytes gave %d samples", len(payload), len(out))
		}
		// The decoder's state stays inside the Recommendation's bounds.
		for _, b := range []*band{&dec.low, &dec.high} {
			if b.nb < 0 || b.nb > highLogMax || b.a[2] < -12288 || b.a[2] > 12288 ||
				b.a[1] < -15360-12288 || b.a[1] > 15360+12288 || b.det < 8 {
				t.Fatalf("state out of bounds: %+v", *b)
			}
		}
		// Encoding what was decoded works too.
		if got := NewEncoder().Encode(nil, out); len(got) != len(payload) {
			t.Fatalf("re-encoding gave %d bytes for %d", len(got), len(payload))
		}
	})
}

func BenchmarkEncode20ms(b *testing.B) {
	pcm := noiseBursts(FrameSamples, 1)
	enc := NewEncoder()
	buf := make([]byte, 0, FrameBytes)
	b.SetBytes(2 * FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		buf = enc.Encode(buf[:0], pcm)
	}
}

func BenchmarkDecode20ms(b *testing.B) {
	payload := NewEncoder().Encode(nil, noiseBursts(FrameSamples, 1))
	dec := NewDecoder()
	buf := make([]int16, 0, FrameSamples)
	b.SetBytes(FrameBytes)
	b.ReportAllocs()
	for b.Loop() {
		buf = dec.Decode(buf[:0], payload)
	}
}
