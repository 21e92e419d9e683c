//go:build cgo

package opus

import (
	"errors"
	"math"
	"sync"
	"testing"
)

// needOpus fails the test when libopus cannot be loaded: the test
// command installs it (interop/install.sh), so its absence is an error,
// not a reason to skip.
func needOpus(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatalf("%v", err)
	}
}

// sine returns n samples per channel of a sine of hz at amp of full
// scale; for two channels, the second gets hz2.
func sine(n, channels int, hz, hz2, amp float64) []int16 {
	out := make([]int16, n*channels)
	for i := 0; i < n; i++ {
		for c := 0; c < channels; c++ {
			f := hz
			if c == 1 {
				f = hz2
			}
			out[i*channels+c] = int16(math.Round(amp * 32767 * math.Sin(2*math.Pi*f*float64(i)/SampleRate)))
		}
	}
	return out
}

// channel returns channel c of interleaved samples.
func channel(pcm []int16, channels, c int) []int16 {
	out := make([]int16, 0, len(pcm)/channels)
	for i := c; i < len(pcm); i += channels {
		out = append(out, pcm[i])
	}
	return out
}

// rms returns the RMS level of samples relative to full scale.
func rms(s []int16) float64 {
	var sum float64
	for _, x := range s {
		f := float64(x) / 32768
		sum += f * f
	}
	return math.Sqrt(sum / float64(len(s)))
}

// toneRMS returns the RMS level of the hz component of s (Goertzel).
func toneRMS(s []int16, hz float64) float64 {
	w := 2 * math.Pi * hz / SampleRate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range s {
		s0 := float64(x)/32768 + c*s1 - s2
		s2, s1 = s1, s0
	}
	p := max(s1*s1+s2*s2-c*s1*s2, 0)
	return math.Sqrt(p) * 2 / float64(len(s)) / math.Sqrt2
}

// crossings estimates the frequency of s from its upward zero crossings.
func crossings(s []int16) float64 {
	n := 0
	for i := 1; i < len(s); i++ {
		if s[i-1] < 0 && s[i] >= 0 {
			n++
		}
	}
	return float64(n) * SampleRate / float64(len(s))
}

// roundTrip encodes pcm in 20 ms frames and decodes every packet,
// returning the decoded PCM and the total packet bytes.
func roundTrip(t testing.TB, opts EncoderOptions, pcm []int16) ([]int16, int) {
	t.Helper()
	enc, err := NewEncoder(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := NewDecoder(enc.Channels())
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	step := FrameSamples * enc.Channels()
	var out []int16
	var packet []byte
	total := 0
	for off := 0; off+step <= len(pcm); off += step {
		packet, err = enc.Encode(packet[:0], pcm[off:off+step])
		if err != nil {
			t.Fatal(err)
		}
		total += len(packet)
		if out, err = dec.Decode(out, packet); err != nil {
			t.Fatal(err)
		}
	}
	return out, total
}

func TestToneRoundTrip(t *testing.T) {
	needOpus(t)
	t.Log(Version())
	for _, hz := range []float64{440, 1000, 3000} {
		in := sine(SampleRate, 1, hz, 0, 0.3)
		out, _ := roundTrip(t, EncoderOptions{Bitrate: 32000}, in)
		if len(out) != len(in) {
			t.Fatalf("%v Hz: %d samples out, %d in", hz, len(out), len(in))
		}
		tail := out[SampleRate/5:] // past the encoder's start
		level, toneLevel := rms(tail), toneRMS(tail, hz)
		want := rms(in[SampleRate/5:])
		db := 20 * math.Log10(level/want)
		f := crossings(tail)
		t.Logf("%v Hz: level %.2f dB, %.1f%% of it the tone, frequency %.1f Hz", hz, db, 100*toneLevel/level, f)
		if math.Abs(db) > 1 {
			t.Errorf("%v Hz: level changed by %.2f dB", hz, db)
		}
		if toneLevel < 0.9*level {
			t.Errorf("%v Hz: only %.1f%% of the output is the tone", hz, 100*toneLevel/level)
		}
		if math.Abs(f-hz) > hz/100 {
			t.Errorf("%v Hz came out at %.1f Hz", hz, f)
		}
	}
}

func TestStereo(t *testing.T) {
	needOpus(t)
	in := sine(SampleRate, 2, 440, 1000, 0.3)
	out, _ := roundTrip(t, EncoderOptions{Channels: 2, Bitrate: 96000, Application: Audio}, in)
	for c, hz := range []float64{440, 1000} {
		ch := channel(out, 2, c)[SampleRate/5:]
		level, toneLevel := rms(ch), toneRMS(ch, hz)
		t.Logf("channel %d: %v Hz is %.1f%% of the level %.3f", c, hz, 100*toneLevel/level, level)
		if toneLevel < 0.9*level || math.Abs(20*math.Log10(level/rms(channel(in, 2, c)))) > 1 {
			t.Errorf("channel %d lost its %v Hz tone", c, hz)
		}
	}
}

func TestBitrate(t *testing.T) {
	needOpus(t)
	in := sine(SampleRate, 1, 1000, 0, 0.3)
	for i := range in { // add some noise so that the bitrate matters
		in[i] += int16((i*7919)%2001 - 1000)
	}
	_, low := roundTrip(t, EncoderOptions{Bitrate: 12000}, in)
	_, high := roundTrip(t, EncoderOptions{Bitrate: 64000}, in)
	t.Logf("1 s at 12 kbit/s: %d bytes; at 64 kbit/s: %d bytes", low, high)
	if low > 12000/8*3/2 || high < 64000/8*7/10 || high < 3*low {
		t.Errorf("bitrates not followed: %d and %d bytes for 12 and 64 kbit/s", low, high)
	}

	enc, err := NewEncoder(EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if err := enc.SetBitrate(20000); err != nil {
		t.Error(err)
	}
	if err := enc.SetBitrate(1); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetBitrate(1): %v", err)
	}
}

func TestDTX(t *testing.T) {
	needOpus(t)
	enc, err := NewEncoder(EncoderOptions{DTX: true})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	silence := make([]int16, FrameSamples)
	small := 0
	for i := 0; i < 50; i++ {
		p, err := enc.Encode(nil, silence)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) <= 2 {
			small++
		}
	}
	if small < 30 {
		t.Errorf("DTX: only %d of 50 silent frames were tiny", small)
	}
}

func TestFrameLengths(t *testing.T) {
	needOpus(t)
	enc, err := NewEncoder(EncoderOptions{Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := NewDecoder(2)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, n := range []int{120, 240, 480, 960, 1920, 2880} {
		p, err := enc.Encode(nil, make([]int16, 2*n))
		if err != nil {
			t.Fatalf("%d samples: %v", n, err)
		}
		out, err := dec.Decode(nil, p)
		if err != nil || len(out) != 2*n {
			t.Fatalf("%d samples: decoded %d, %v", n, len(out), err)
		}
		// A lost packet is concealed with the previous length.
		if out, err := dec.Decode(nil, nil); err != nil || len(out) != 2*n {
			t.Fatalf("%d samples: concealed %d, %v", n, len(out), err)
		}
	}
	for _, n := range []int{0, 1, 959, 961, 3 * 960, 2*960 + 1} {
		if _, err := enc.Encode(nil, make([]int16, n)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%d samples: %v, want ErrInvalid", n, err)
		}
	}
}

func TestBadInput(t *testing.T) {
	needOpus(t)
	for _, o := range []EncoderOptions{
		{Channels: 3}, {Bitrate: 100}, {Bitrate: 1 << 20}, {Application: 7},
		{Complexity: 11}, {PacketLossPercent: -1},
	} {
		if _, err := NewEncoder(o); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", o, err)
		}
	}
	if _, err := NewDecoder(0); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewDecoder(0): %v", err)
	}
	dec, err := NewDecoder(1)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	// A code-3 packet without its frame-count byte is invalid.
	if out, err := dec.Decode([]int16{5}, []byte{0x03}); !errors.Is(err, ErrCorrupt) || len(out) != 1 {
		t.Errorf("corrupt packet: %v, %d samples", err, len(out))
	}
}

func TestClose(t *testing.T) {
	needOpus(t)
	enc, err := NewEncoder(EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder(1)
	if err != nil {
		t.Fatal(err)
	}
	frame := sine(FrameSamples, 1, 1000, 0, 0.3)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // encoding and decoding race with Close: no crash
		defer wg.Done()
		for i := 0; i < 50; i++ {
			p, err := enc.Encode(nil, frame)
			if err != nil {
				if !errors.Is(err, ErrClosed) {
					t.Error(err)
				}
				return
			}
			if _, err := dec.Decode(nil, p); err != nil && !errors.Is(err, ErrClosed) {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		enc.Close()
		dec.Close()
	}()
	wg.Wait()
	enc.Close()
	dec.Close()
	if _, err := enc.Encode(nil, frame); !errors.Is(err, ErrClosed) {
		t.Errorf("Encode after Close: %v", err)
	}
	if _, err := dec.Decode(nil, []byte{0xf8, 0xff, 0xfe}); !errors.Is(err, ErrClosed) {
		t.Errorf("Decode after Close: %v", err)
	}
	if enc.Reset() == nil || dec.Reset() == nil || enc.SetBitrate(20000) == nil {
		t.Error("Reset or SetBitrate after Close succeeded")
	}
}

func FuzzDecode(f *testing.F) {
	needOpus(f)
	enc, err := NewEncoder(EncoderOptions{})
	if err != nil {
		f.Fatal(err)
	}
	p, err := enc.Encode(nil, sine(FrameSamples, 1, 1000, 0, 0.3))
	enc.Close()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p)
	f.Add([]byte{0x03})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, packet []byte) {
		dec, err := NewDecoder(2)
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		out, err := dec.Decode(nil, packet)
		if err == nil && (len(out)%2 != 0 || len(out) > 2*MaxFrameSamples) {
			t.Fatalf("%d samples", len(out))
		}
	})
}

func BenchmarkEncode20ms(b *testing.B) {
	needOpus(b)
	enc, err := NewEncoder(EncoderOptions{Bitrate: 32000})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	frame := sine(FrameSamples, 1, 1000, 0, 0.3)
	var p []byte
	b.ReportAllocs()
	for b.Loop() {
		if p, err = enc.Encode(p[:0], frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode20ms(b *testing.B) {
	needOpus(b)
	enc, err := NewEncoder(EncoderOptions{Bitrate: 32000})
	if err != nil {
		b.Fatal(err)
	}
	p, err := enc.Encode(nil, sine(FrameSamples, 1, 1000, 0, 0.3))
	enc.Close()
	if err != nil {
		b.Fatal(err)
	}
	dec, err := NewDecoder(1)
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	var out []int16
	b.ReportAllocs()
	for b.Loop() {
		if out, err = dec.Decode(out[:0], p); err != nil {
			b.Fatal(err)
		}
	}
}
