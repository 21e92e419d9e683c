package wav

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/media/audio"
)

// sine returns n samples of a sine of hz at rate, amplitude amp.
func sine(hz float64, rate, n int, amp float64) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(amp * math.Sin(2*math.Pi*hz*float64(i)/float64(rate)))
	}
	return out
}

// build returns a WAV file with the given fmt fields and data bytes,
// and extra chunks before the data.
func build(tag uint16, channels, rate, bits int, data []byte, extra ...[]byte) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	fmtc := make([]byte, 16)
	le.PutUint16(fmtc[0:], tag)
	le.PutUint16(fmtc[2:], uint16(channels))
	le.PutUint32(fmtc[4:], uint32(rate))
	align := channels * bits / 8
	le.PutUint32(fmtc[8:], uint32(rate*align))
	le.PutUint16(fmtc[12:], uint16(align))
	le.PutUint16(fmtc[14:], uint16(bits))
	body := []byte("WAVE")
	chunk := func(id string, p []byte) {
		h := make([]byte, 8)
		copy(h, id)
		le.PutUint32(h[4:], uint32(len(p)))
		body = append(body, h...)
		body = append(body, p...)
		if len(p)%2 == 1 {
			body = append(body, 0)
		}
	}
	chunk("fmt ", fmtc)
	for _, e := range extra {
		chunk(string(e[:4]), e[4:])
	}
	chunk("data", data)
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(len(body)))
	b.Write(body)
	return b.Bytes()
}

func pcm16(s []int16) []byte {
	b := make([]byte, 2*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	in := sine(440, SampleRate, 8000, 10000)
	var buf bytes.Buffer
	w, err := NewWriter(&buf) // not seekable: sizes stay 0xffffffff
	require.NoError(t, err)
	require.NoError(t, w.WriteSamples(in[:3000]))
	require.NoError(t, w.WriteSamples(in[3000:]))
	assert.EqualValues(t, 8000, w.Samples())
	require.NoError(t, w.Close())
	require.NoError(t, w.Close())
	assert.ErrorIs(t, w.WriteSamples(in), ErrClosed)
	assert.Equal(t, uint32(0xffffffff), binary.LittleEndian.Uint32(buf.Bytes()[40:]))

	out, err := Decode(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, in, out)

	// A file gets its sizes filled in.
	name := filepath.Join(t.TempDir(), "a.wav")
	require.NoError(t, WriteFile(name, in))
	raw, err := os.ReadFile(name)
	require.NoError(t, err)
	assert.Len(t, raw, 44+16000)
	assert.Equal(t, uint32(16000), binary.LittleEndian.Uint32(raw[40:]))
	assert.Equal(t, uint32(36+16000), binary.LittleEndian.Uint32(raw[4:]))
	out, err = ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, in, out)
	rd, err := NewReader(bytes.NewReader(raw))
	require.NoError(t, err)
	assert.Equal(t, "PCM 16-bit 8000 Hz mono", rd.Format().String())
}

func TestConversions(t *testing.T) {
	// 16 kHz stereo, a 500 Hz tone on the left and silence on the right:
	// 4000 samples at 8 kHz, the tone at half amplitude.
	left := sine(500, 16000, 16000, 20000)
	st := make([]int16, 0, 2*len(left))
	for _, s := range left {
		st = append(st, s, 0)
	}
	out, err := Decode(bytes.NewReader(build(1, 2, 16000, 16, pcm16(st))))
	require.NoError(t, err)
	assert.Len(t, out, 8000)
	assert.InDelta(t, 10000/math.Sqrt2/32768, ToneLevel(out, 500), 0.01)
	assert.Less(t, ToneLevel(out, 1500), 0.01)

	// 44.1 kHz mono: a rate that does not divide.
	src := sine(1000, 44100, 44100, 16000)
	out, err = Decode(bytes.NewReader(build(1, 1, 44100, 16, pcm16(src))))
	require.NoError(t, err)
	assert.InDelta(t, 8000, len(out), 1)
	assert.InDelta(t, 16000/math.Sqrt2/32768, ToneLevel(out, 1000), 0.01)

	// 8-bit unsigned PCM, µ-law and A-law at 8 kHz.
	tone := sine(800, 8000, 800, 12000)
	u8 := make([]byte, len(tone))
	mu := make([]byte, len(tone))
	al := make([]byte, len(tone))
	for i, s := range tone {
		u8[i] = byte(int(s>>8) + 128)
		mu[i] = audio.EncodeMuLaw(s)
		al[i] = audio.EncodeALaw(s)
	}
	for name, file := range map[string][]byte{
		"u8":   build(1, 1, 8000, 8, u8),
		"mu":   build(7, 1, 8000, 8, mu),
		"alaw": build(6, 1, 8000, 8, al),
	} {
		out, err := Decode(bytes.NewReader(file))
		require.NoError(t, err, name)
		require.Len(t, out, 800, name)
		assert.InDelta(t, 12000/math.Sqrt2/32768, ToneLevel(out, 800), 0.01, name)
	}

	// Other chunks before the data (odd-sized, padded) are skipped.
	file := build(1, 1, 8000, 16, pcm16(tone), []byte("LISTabc"), []byte("fact\x01\x00\x00\x00"))
	out, err = Decode(bytes.NewReader(file))
	require.NoError(t, err)
	assert.Equal(t, tone, out)
}

func TestExtensible(t *testing.T) {
	tone := sine(600, 8000, 400, 9000)
	file := build(0xfffe, 1, 8000, 16, pcm16(tone))
	// Grow the fmt chunk to the 40-byte extensible form: cbSize 22, valid
	// bits, channel mask, sub-format GUID starting with the PCM tag.
	fmtEnd := 12 + 8 + 16
	ext := make([]byte, 24)
	binary.LittleEndian.PutUint16(ext[0:], 22)
	binary.LittleEndian.PutUint16(ext[2:], 16)
	binary.LittleEndian.PutUint16(ext[8:], 1)
	file = append(file[:fmtEnd:fmtEnd], append(ext, file[fmtEnd:]...)...)
	binary.LittleEndian.PutUint32(file[16:], 40)
	binary.LittleEndian.PutUint32(file[4:], uint32(len(file)-8))
	out, err := Decode(bytes.NewReader(file))
	require.NoError(t, err)
	assert.Equal(t, tone, out)
}

func TestBadInput(t *testing.T) {
	good := build(1, 1, 8000, 16, pcm16(sine(440, 8000, 100, 5000)))
	for name, c := range map[string]struct {
		file []byte
		want error
	}{
		"empty":        {nil, ErrFormat},
		"not riff":     {[]byte("RIFX\x00\x00\x00\x00WAVEfmt "), ErrFormat},
		"short fmt":    {append([]byte("RIFF\x00\x00\x00\x00WAVEfmt \x04\x00\x00\x00"), 1, 0, 1, 0), ErrFormat},
		"no fmt":       {append([]byte("RIFF\x00\x00\x00\x00WAVEdata\x02\x00\x00\x00"), 0, 0), ErrFormat},
		"no data":      {good[:36], ErrFormat},
		"24-bit":       {build(1, 1, 8000, 24, make([]byte, 30)), ErrUnsupported},
		"float":        {build(3, 1, 8000, 32, make([]byte, 40)), ErrUnsupported},
		"9 channels":   {build(1, 9, 8000, 16, make([]byte, 36)), ErrUnsupported},
		"rate 500":     {build(1, 1, 500, 16, make([]byte, 36)), ErrUnsupported},
		"rate 400 kHz": {build(1, 1, 400000, 16, make([]byte, 36)), ErrUnsupported},
		"huge fmt":     {[]byte("RIFF\x00\x00\x00\x00WAVEfmt \x00\x00\x10\x00"), ErrFormat},
		"many chunks":  {append([]byte("RIFF\x00\x00\x00\x00WAVE"), bytes.Repeat([]byte("junk\x00\x00\x00\x00"), 100)...), ErrFormat},
	} {
		_, err := NewReader(bytes.NewReader(c.file))
		assert.ErrorIs(t, err, c.want, name)
	}
	// A wrong block align.
	bad := bytes.Clone(good)
	bad[32] = 4
	_, err := NewReader(bytes.NewReader(bad))
	assert.ErrorIs(t, err, ErrFormat)

	// A truncated file gives what it has, then io.EOF.
	out, err := Decode(bytes.NewReader(good[:44+101]))
	require.NoError(t, err)
	assert.Len(t, out, 50)
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriterError(t *testing.T) {
	w, err := NewWriter(&failWriter{n: 100})
	require.NoError(t, err)
	for range 10 {
		_ = w.WriteSamples(make([]int16, 4096))
	}
	err = w.Close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disk full")
	_, err = Create(filepath.Join(t.TempDir(), "no", "such", "dir.wav"))
	assert.Error(t, err)
}

func TestSource(t *testing.T) {
	s := NewSource([]int16{1, 2, 3}, false)
	p := make([]int16, 2)
	n, err := s.ReadSamples(p)
	assert.Equal(t, 2, n)
	assert.NoError(t, err)
	assert.False(t, s.Done())
	n, err = s.ReadSamples(p)
	assert.Equal(t, 1, n)
	assert.Equal(t, io.EOF, err)
	assert.True(t, s.Done())

	l := NewSource([]int16{1, 2, 3}, true)
	p = make([]int16, 7)
	n, err = l.ReadSamples(p)
	assert.Equal(t, 7, n)
	assert.NoError(t, err)
	assert.Equal(t, []int16{1, 2, 3, 1, 2, 3, 1}, p)
	assert.False(t, l.Done())

	n, err = NewSource(nil, true).ReadSamples(p)
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err)
}

func TestLevels(t *testing.T) {
	assert.Zero(t, Level(nil))
	assert.Zero(t, Level(make([]int16, 100)))
	tone := sine(1000, 8000, 8000, 16384)
	assert.InDelta(t, 0.5/math.Sqrt2, Level(tone), 0.001)
	assert.InDelta(t, 0.5/math.Sqrt2, ToneLevel(tone, 1000), 0.001)
	assert.Less(t, ToneLevel(tone, 440), 0.005)
	assert.Zero(t, ToneLevel(nil, 440))
}

func FuzzDecode(f *testing.F) {
	f.Add(build(1, 1, 8000, 16, pcm16(sine(440, 8000, 100, 5000))))
	f.Add(build(1, 2, 44100, 16, pcm16(sine(440, 8000, 100, 5000))))
	f.Add(build(7, 1, 8000, 8, make([]byte, 33)))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Decode(bytes.NewReader(b))
		if err != nil && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("untyped error %v", err)
		}
		// At most one output sample per input byte times the rate ratio.
		if len(out) > 8*len(b)+1 {
			t.Fatalf("%d samples from %d bytes", len(out), len(b))
		}
	})
}

// Reading in packets of 160 gives the same samples as reading at once,
// whatever the rate conversion.
func TestChunkedReads(t *testing.T) {
	for _, rate := range []int{8000, 11025, 16000, 22050, 44100, 48000, 6000} {
		src := sine(700, rate, rate/2, 12000)
		file := build(1, 1, rate, 16, pcm16(src))
		whole, err := Decode(bytes.NewReader(file))
		require.NoError(t, err)
		rd, err := NewReader(bytes.NewReader(file))
		require.NoError(t, err)
		var got []int16
		p := make([]int16, 160)
		for {
			n, err := rd.ReadSamples(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
		}
		assert.Equal(t, whole, got, "rate %d", rate)
		assert.InDelta(t, 4000, len(got), 2, "rate %d", rate)
		assert.InDelta(t, 12000/math.Sqrt2/32768, ToneLevel(got, 700), 0.02, "rate %d", rate)
	}
}
