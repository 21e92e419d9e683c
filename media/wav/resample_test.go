package wav

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// toneDB returns the level of the hz component of samples at rate, in dB
// relative to a full-scale sine (Goertzel), skipping the first and last
// 10% where the filter meets the file's edges.
func toneDB(samples []int16, rate int, hz float64) float64 {
	s := samples[len(samples)/10 : len(samples)*9/10]
	w := 2 * math.Pi * hz / float64(rate)
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range s {
		s0 := float64(x)/32768 + c*s1 - s2
		s2, s1 = s1, s0
	}
	p := max(s1*s1+s2*s2-c*s1*s2, 1e-30)
	amp := math.Sqrt(p) * 2 / float64(len(s)) // amplitude relative to full scale
	return 20 * math.Log10(amp)
}

// levelDB returns the RMS level of samples (middle 80%) in dB relative
// to a full-scale sine.
func levelDB(samples []int16) float64 {
	s := samples[len(samples)/10 : len(samples)*9/10]
	return 20 * math.Log10(Level(s)*math.Sqrt2+1e-12)
}

// TestAntiAlias is issue 20's check: a 5 kHz tone in a 48 kHz file would
// fold back to a full-level 3 kHz tone at 8 kHz without a low-pass filter;
// it must come out at least 40 dB down, while 1 kHz passes within 1 dB.
func TestAntiAlias(t *testing.T) {
	const amp = 16000
	ref := 20 * math.Log10(amp/32768.0)
	for _, rate := range []int{48000, 44100, 22050, 11025} {
		n := rate / 4 // 250 ms
		hi, err := Decode(bytes.NewReader(build(1, 1, rate, 16, pcm16(sine(5000, rate, n, amp)))))
		require.NoError(t, err)
		lo, err := Decode(bytes.NewReader(build(1, 1, rate, 16, pcm16(sine(1000, rate, n, amp)))))
		require.NoError(t, err)
		alias := toneDB(hi, SampleRate, 8000-5000) - ref
		all := levelDB(hi) - ref
		pass := toneDB(lo, SampleRate, 1000) - ref
		t.Logf("%d Hz file: 5 kHz comes out at %.1f dB (its 3 kHz alias %.1f dB); 1 kHz at %.2f dB", rate, all, alias, pass)
		assert.Less(t, all, -40.0, "rate %d: 5 kHz leaks", rate)
		assert.Less(t, alias, -40.0, "rate %d: 5 kHz aliases to 3 kHz", rate)
		assert.InDelta(t, 0, pass, 1, "rate %d: 1 kHz level", rate)
	}
}

// TestRate16k reads a 48 kHz file at 16 kHz (G.722): 1 kHz and 6 kHz
// pass, 9 kHz (which would alias to 7 kHz) is removed.
func TestRate16k(t *testing.T) {
	const amp = 12000
	ref := 20 * math.Log10(amp/32768.0)
	for _, c := range []struct {
		hz, at   float64
		min, max float64
	}{
		{1000, 1000, -1, 1},
		{6000, 6000, -1, 1},
		{9000, 7000, math.Inf(-1), -40},
	} {
		file := build(1, 2, 48000, 16, pcm16(stereo(sine(c.hz, 48000, 12000, amp))))
		out, err := DecodeRate(bytes.NewReader(file), 16000)
		require.NoError(t, err)
		assert.InDelta(t, 4000, len(out), 1)
		db := toneDB(out, 16000, c.at) - ref
		t.Logf("%v Hz: %.2f dB at %v Hz", c.hz, db, c.at)
		assert.True(t, db >= c.min && db <= c.max, "%v Hz: %.2f dB at %v Hz", c.hz, db, c.at)
	}

	rd, err := NewReaderRate(bytes.NewReader(build(1, 1, 8000, 16, pcm16(sine(500, 8000, 800, 9000)))), 16000)
	require.NoError(t, err)
	assert.Equal(t, 16000, rd.Rate())
	_, err = NewReaderRate(bytes.NewReader(nil), 500)
	assert.ErrorIs(t, err, ErrUnsupported)
}

// stereo duplicates mono samples into two channels.
func stereo(mono []int16) []int16 {
	out := make([]int16, 0, 2*len(mono))
	for _, s := range mono {
		out = append(out, s, s)
	}
	return out
}

func TestResample(t *testing.T) {
	// 8 kHz to 16 kHz, as for G.722: 3 kHz stays, its image at 13 kHz
	// (and any at 5 kHz) is removed.
	in := sine(3000, 8000, 8000, 16000)
	out, err := Resample(in, 8000, 16000)
	require.NoError(t, err)
	assert.Len(t, out, 16000)
	ref := 20 * math.Log10(16000/32768.0)
	assert.InDelta(t, 0, toneDB(out, 16000, 3000)-ref, 0.5)
	assert.Less(t, toneDB(out, 16000, 5000)-ref, -60.0)
	assert.InDelta(t, toneDB(out, 16000, 3000), levelDB(out), 0.1, "all of the output is the tone")

	// Aligned: no delay. The 16 kHz samples at even positions are the
	// 8 kHz ones, within the filter's passband error.
	for i := 1000; i < 1100; i++ {
		assert.InDelta(t, in[i/2], out[i-i%2], 400, "sample %d", i)
	}

	// Down again: 16 kHz to 8 kHz gives back the input.
	back, err := Resample(out, 16000, 8000)
	require.NoError(t, err)
	assert.Len(t, back, 8000)
	assert.InDelta(t, 0, toneDB(back, 8000, 3000)-ref, 0.5)

	// Lengths round up; equal rates copy.
	out, err = Resample(make([]int16, 441), 44100, 8000)
	require.NoError(t, err)
	assert.Len(t, out, 80)
	out, err = Resample(make([]int16, 3), 16000, 8000)
	require.NoError(t, err)
	assert.Len(t, out, 2)
	same, err := Resample(in, 8000, 8000)
	require.NoError(t, err)
	assert.Equal(t, in, same)
	same[0]++
	assert.NotEqual(t, in[0], same[0], "a copy")

	for _, r := range [][2]int{{0, 8000}, {8000, 999}, {8000, 400000}} {
		_, err := Resample(in, r[0], r[1])
		assert.ErrorIs(t, err, ErrUnsupported, "%v", r)
	}
	out, err = Resample(nil, 8000, 16000)
	require.NoError(t, err)
	assert.Empty(t, out)
}

// Full-scale square waves overshoot in the filter: the output saturates
// instead of wrapping around.
func TestResampleClips(t *testing.T) {
	in := make([]int16, 4800)
	for i := range in {
		in[i] = math.MaxInt16
		if i/24%2 == 0 {
			in[i] = math.MinInt16
		}
	}
	out, err := Resample(in, 48000, 8000)
	require.NoError(t, err)
	for i := 50; i < len(out)-50; i++ {
		want := in[i*6+3] // the middle of the square wave's half period
		if i*6%24 > 3 && i*6%24 < 20 {
			assert.Equal(t, want > 0, out[i] > 0, "sample %d: %d", i, out[i])
		}
	}
}

func TestWriterRate(t *testing.T) {
	name := filepath.Join(t.TempDir(), "wide.wav")
	w, err := CreateRate(name, 16000)
	require.NoError(t, err)
	tone := sine(5000, 16000, 16000, 10000)
	require.NoError(t, w.WriteSamples(tone))
	require.NoError(t, w.Close())
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	rd, err := NewReaderRate(bytes.NewReader(b), 16000)
	require.NoError(t, err)
	assert.Equal(t, "PCM 16-bit 16000 Hz mono", rd.Format().String())
	back, err := ReadFileRate(name, 16000)
	require.NoError(t, err)
	assert.Equal(t, tone, back, "same rate: unchanged")
	_, err = NewWriterRate(io.Discard, 100)
	assert.ErrorIs(t, err, ErrUnsupported)
	_, err = CreateRate(name, 1<<20)
	assert.ErrorIs(t, err, ErrUnsupported)
}

// BenchmarkDecode48k reads one second of a 48 kHz stereo file at 8 kHz.
func BenchmarkDecode48k(b *testing.B) {
	file := build(1, 2, 48000, 16, pcm16(stereo(sine(1000, 48000, 48000, 10000))))
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(file)); err != nil {
			b.Fatal(err)
		}
	}
}

// A Resampler fed 20 ms frames gives 20 ms frames, and its output is
// Resample's, delayed by Delay.
func TestResamplerStream(t *testing.T) {
	for _, r := range [][2]int{{8000, 16000}, {16000, 8000}, {8000, 48000}, {48000, 8000}, {44100, 8000}, {8000, 8000}} {
		from, to := r[0], r[1]
		in := sine(700, from, from/2, 12000)
		whole, err := Resample(append(make([]int16, 0, len(in)), in...), from, to)
		require.NoError(t, err)
		rs, err := NewResampler(from, to)
		require.NoError(t, err)
		var out []int16
		frame := from / 50
		for off := 0; off < len(in); off += frame {
			before := len(out)
			out = rs.Resample(out, in[off:min(off+frame, len(in))])
			if from%50 == 0 && to%50 == 0 {
				require.Equal(t, to/50, len(out)-before, "%v: samples out for 20 ms in", r)
			}
		}
		assert.InDelta(t, len(whole), len(out), 1, "%v", r)
		d := rs.Delay()
		t.Logf("%d -> %d Hz: delay %d samples (%.2f ms)", from, to, d, 1000*float64(d)/float64(to))
		assert.Less(t, float64(d)/float64(to), 0.004, "%v: delay", r)
		if from == to {
			assert.Zero(t, d)
			assert.Equal(t, in, out)
			continue
		}
		// Past the start, the stream is the whole conversion delayed
		// (exactly when the delay is a whole number of output samples).
		if int64(d)*int64(from) == rs.shift*int64(to) {
			for i := 2 * d; i < len(out); i++ {
				require.Equal(t, whole[i-d], out[i], "%v: sample %d", r, i)
			}
		}
		assert.InDelta(t, toneDB(whole, to, 700), toneDB(out, to, 700), 0.1, "%v: level", r)
	}
	rs, err := NewResampler(8000, 16000)
	require.NoError(t, err)
	first := rs.Resample(nil, sine(700, 8000, 160, 12000))
	rs.Resample(nil, sine(300, 8000, 160, 12000))
	rs.Reset()
	assert.Equal(t, first, rs.Resample(nil, sine(700, 8000, 160, 12000)), "Reset starts over")
	_, err = NewResampler(8000, 10)
	assert.ErrorIs(t, err, ErrUnsupported)
}
