// Package wav reads and writes WAV (RIFF WAVE) files as the audio of a
// call: mono 16-bit linear PCM at 8 kHz, the rate of G.711 and of the
// AudioSource and OnAudio of media/rtp and media/webrtc.
//
// A Reader reads 16-bit or 8-bit linear PCM, or G.711 µ-law or A-law, with
// any number of channels (mixed down to mono) at any rate from 1 kHz to
// 192 kHz, and hands out samples through ReadSamples, which makes it an
// AudioSource. It converts the rate to 8 kHz, or to another rate such as
// the 16 kHz of G.722 (NewReaderRate, DecodeRate, ReadFileRate), with a
// windowed-sinc low-pass filter: what the new rate cannot carry is
// removed (at least 70 dB down from the new Nyquist frequency on), not
// folded back into the band as aliases, and the band up to 0.85 times
// the Nyquist frequency (3.4 kHz at 8 kHz) passes within 0.6 dB.
// Resample converts samples already in memory the same way, and a
// Resampler converts a stream frame by frame (e.g. a call's 8 kHz audio
// to 16 kHz for G.722 or 48 kHz for Opus). ReadFile reads a whole file
// into memory and NewSource plays such samples, once or in a loop, to any
// number of calls at once.
//
// A Writer writes mono 16-bit PCM at 8 kHz, or at another rate
// (NewWriterRate, CreateRate): pass its WriteSamples to a handler's
// OnAudio to record what a call receives. Close completes the header, and
// reports any write error the recording met.
package wav

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"

	"github.com/sipua/sip/media/audio"
)

// SampleRate is the rate of the samples this package produces and
// writes: 8 kHz.
const SampleRate = 8000

// Limits of what a Reader accepts.
const (
	// MinSampleRate and MaxSampleRate bound a file's rate.
	MinSampleRate = 1000
	MaxSampleRate = 192000
	// MaxChannels bounds a file's channel count.
	MaxChannels = 8
	// maxFmtSize bounds the fmt chunk (40 bytes for the extensible form).
	maxFmtSize = 1024
	// maxChunks bounds the chunks skipped before the data chunk.
	maxChunks = 64
)

// Errors of this package; the errors returned wrap them.
var (
	// ErrFormat reports input that is not a well-formed WAV file.
	ErrFormat = errors.New("wav: malformed WAV file")
	// ErrUnsupported reports a well-formed file in an encoding, sample
	// size, channel count or rate this package does not read.
	ErrUnsupported = errors.New("wav: unsupported WAV format")
	// ErrClosed reports a write to a closed Writer.
	ErrClosed = errors.New("wav: writer closed")
)

// Encoding is a WAV format tag (the fmt chunk's wFormatTag).
type Encoding uint16

// The encodings a Reader reads.
const (
	// PCM is linear PCM, 8-bit unsigned or 16-bit signed little-endian.
	PCM Encoding = 1
	// ALaw is G.711 A-law, 8 bits a sample.
	ALaw Encoding = 6
	// MuLaw is G.711 µ-law, 8 bits a sample.
	MuLaw Encoding = 7
	// extensible is WAVE_FORMAT_EXTENSIBLE: the real tag is in the
	// sub-format GUID.
	extensible Encoding = 0xfffe
)

// String returns the encoding's name.
func (e Encoding) String() string {
	switch e {
	case PCM:
		return "PCM"
	case ALaw:
		return "A-law"
	case MuLaw:
		return "µ-law"
	}
	return fmt.Sprintf("format tag 0x%04x", uint16(e))
}

// Format describes a WAV file's audio as stored.
type Format struct {
	Encoding      Encoding
	SampleRate    int
	Channels      int
	BitsPerSample int
}

// String returns e.g. "PCM 16-bit 44100 Hz stereo".
func (f Format) String() string {
	ch := fmt.Sprintf("%d channels", f.Channels)
	switch f.Channels {
	case 1:
		ch = "mono"
	case 2:
		ch = "stereo"
	}
	return fmt.Sprintf("%v %d-bit %d Hz %s", f.Encoding, f.BitsPerSample, f.SampleRate, ch)
}

// Reader reads the audio of a WAV file as mono 16-bit samples at
// SampleRate, or at the rate given to NewReaderRate. It implements the AudioSource interface of media/rtp and
// media/webrtc; a file is best read into memory first (ReadFile) when it
// is played to a call from a slow device. A Reader is not safe for
// concurrent use.
type Reader struct {
	r      io.Reader
	format Format
	left   int64 // bytes left in the data chunk; -1: read to EOF
	frame  int   // bytes a frame (one sample of every channel)
	raw    []byte
	err    error // the input's sticky error (io.EOF at the end)

	// Rate conversion: in holds decoded mono samples, in[0] being input
	// sample number base; output sample n sits at input n*rate/outRate.
	outRate int
	conv    *converter
	in      []int16
	base    int64
	n       int64
}

// NewReader reads the header of the WAV file in r, up to its data chunk,
// and returns a Reader of its samples. It returns an error wrapping
// ErrFormat when r does not hold a WAV file, or ErrUnsupported when its
// format is not one the package reads (the error names it).
func NewReader(r io.Reader) (*Reader, error) {
	return NewReaderRate(r, SampleRate)
}

// NewReaderRate is NewReader for samples at rate Hz (MinSampleRate to
// MaxSampleRate), e.g. 16000 for G.722, instead of SampleRate.
func NewReaderRate(r io.Reader, rate int) (*Reader, error) {
	if rate < MinSampleRate || rate > MaxSampleRate {
		return nil, fmt.Errorf("%w: output rate %d Hz (%d to %d Hz)", ErrUnsupported, rate, MinSampleRate, MaxSampleRate)
	}
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: reading the RIFF header: %w", ErrFormat, err)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return nil, fmt.Errorf("%w: no RIFF/WAVE header", ErrFormat)
	}
	rd := &Reader{r: r, outRate: rate}
	haveFmt := false
	for i := 0; ; i++ {
		if i == maxChunks {
			return nil, fmt.Errorf("%w: no data chunk in the first %d chunks", ErrFormat, maxChunks)
		}
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			return nil, fmt.Errorf("%w: reading a chunk header: %w", ErrFormat, err)
		}
		id, size := string(ch[0:4]), int64(binary.LittleEndian.Uint32(ch[4:8]))
		switch id {
		case "fmt ":
			if size < 16 || size > maxFmtSize {
				return nil, fmt.Errorf("%w: fmt chunk of %d bytes", ErrFormat, size)
			}
			b := make([]byte, size+size&1)
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, fmt.Errorf("%w: reading the fmt chunk: %w", ErrFormat, err)
			}
			if err := rd.parseFmt(b[:size]); err != nil {
				return nil, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, fmt.Errorf("%w: data chunk before the fmt chunk", ErrFormat)
			}
			rd.left = size
			if size == 0 || size == 0xffffffff {
				rd.left = -1 // written by a recorder that never finished: read to the end
			}
			rd.raw = make([]byte, 0, 512*rd.frame)
			rd.conv = newConverter(rd.format.SampleRate, rate)
			return rd, nil
		default:
			if _, err := io.CopyN(io.Discard, r, size+size&1); err != nil {
				return nil, fmt.Errorf("%w: skipping chunk %q: %w", ErrFormat, id, err)
			}
		}
	}
}

// parseFmt reads and checks the fmt chunk.
func (rd *Reader) parseFmt(b []byte) error {
	f := Format{
		Encoding:      Encoding(binary.LittleEndian.Uint16(b[0:2])),
		Channels:      int(binary.LittleEndian.Uint16(b[2:4])),
		SampleRate:    int(binary.LittleEndian.Uint32(b[4:8])),
		BitsPerSample: int(binary.LittleEndian.Uint16(b[14:16])),
	}
	align := int(binary.LittleEndian.Uint16(b[12:14]))
	if f.Encoding == extensible {
		// WAVE_FORMAT_EXTENSIBLE: cbSize (22), valid bits, channel mask,
		// then a GUID whose first two bytes are the real format tag.
		if len(b) < 40 {
			return fmt.Errorf("%w: extensible fmt chunk of %d bytes", ErrFormat, len(b))
		}
		f.Encoding = Encoding(binary.LittleEndian.Uint16(b[24:26]))
	}
	rd.format = f
	switch {
	case f.Channels < 1 || f.Channels > MaxChannels:
		return fmt.Errorf("%w: %d channels (1 to %d are read)", ErrUnsupported, f.Channels, MaxChannels)
	case f.SampleRate < MinSampleRate || f.SampleRate > MaxSampleRate:
		return fmt.Errorf("%w: sample rate %d Hz (%d to %d Hz are read)", ErrUnsupported, f.SampleRate, MinSampleRate, MaxSampleRate)
	}
	switch f.Encoding {
	case PCM:
		if f.BitsPerSample != 16 && f.BitsPerSample != 8 {
			return fmt.Errorf("%w: %d-bit PCM (8 and 16 bits are read)", ErrUnsupported, f.BitsPerSample)
		}
	case ALaw, MuLaw:
		if f.BitsPerSample != 8 {
			return fmt.Errorf("%w: %d-bit %v", ErrUnsupported, f.BitsPerSample, f.Encoding)
		}
	default:
		return fmt.Errorf("%w: %v (PCM, A-law and µ-law are read)", ErrUnsupported, f.Encoding)
	}
	rd.frame = f.Channels * f.BitsPerSample / 8
	if align != rd.frame {
		return fmt.Errorf("%w: block align %d for %v", ErrFormat, align, f)
	}
	return nil
}

// Format returns the file's format as stored; ReadSamples converts it.
func (rd *Reader) Format() Format { return rd.format }

// Rate returns the rate of the samples ReadSamples hands out.
func (rd *Reader) Rate() int { return rd.outRate }

// ReadSamples fills p with the next mono samples at the Reader's Rate
// and returns how many it wrote. At the end of the data it returns io.EOF
// (with the last samples, or with none); a truncated file ends early with
// the samples it had, then io.EOF, as recorders that are killed leave
// files behind. Other read errors are returned as they come.
func (rd *Reader) ReadSamples(p []int16) (int, error) {
	c := rd.conv
	for i := range p {
		// Output sample rd.n sits between input samples idx and idx+1;
		// the filter needs c.half input samples on either side.
		idx, frac := c.position(rd.n)
		for idx+c.half >= rd.base+int64(len(rd.in)) && rd.err == nil {
			rd.fill(idx - c.half + 1)
		}
		if idx-rd.base >= int64(len(rd.in)) {
			return i, rd.endErr()
		}
		p[i] = c.sample(rd.in, rd.base, idx, frac)
		rd.n++
	}
	return len(p), nil
}

// endErr is what ReadSamples returns at the end: io.EOF for a file that
// ended (complete or truncated), the read error otherwise.
func (rd *Reader) endErr() error {
	if rd.err == io.ErrUnexpectedEOF {
		return io.EOF
	}
	return rd.err
}

// fill drops the decoded samples before input sample keep and decodes
// more from the data chunk.
func (rd *Reader) fill(keep int64) {
	if drop := keep - rd.base; drop > 0 {
		drop = min(drop, int64(len(rd.in)))
		rd.in = append(rd.in[:0], rd.in[drop:]...)
		rd.base += drop
	}
	want := cap(rd.raw)
	if rd.left >= 0 && int64(want) > rd.left {
		want = int(rd.left)
	}
	if want < rd.frame {
		rd.err = io.EOF // the data chunk's end; a partial frame is dropped
		return
	}
	b := rd.raw[:want]
	n, err := io.ReadAtLeast(rd.r, b, rd.frame)
	if rd.left >= 0 {
		rd.left -= int64(n)
	}
	n -= n % rd.frame // a partial frame at the end is dropped
	for f := 0; f < n; f += rd.frame {
		rd.in = append(rd.in, rd.mix(b[f:f+rd.frame]))
	}
	if err != nil {
		rd.err = err
		if err == io.EOF && rd.left > 0 {
			rd.err = io.ErrUnexpectedEOF // shorter than its header says
		}
	}
}

// mix decodes one frame and averages its channels.
func (rd *Reader) mix(frame []byte) int16 {
	var sum int
	ch := rd.format.Channels
	for c := range ch {
		var s int16
		switch {
		case rd.format.Encoding == MuLaw:
			s = audio.DecodeMuLaw(frame[c])
		case rd.format.Encoding == ALaw:
			s = audio.DecodeALaw(frame[c])
		case rd.format.BitsPerSample == 8:
			s = int16(int(frame[c])-128) << 8
		default:
			s = int16(binary.LittleEndian.Uint16(frame[2*c:]))
		}
		sum += int(s)
	}
	return int16(sum / ch)
}

// Decode reads a whole WAV file from r and returns its samples, mono at
// SampleRate.
func Decode(r io.Reader) ([]int16, error) { return DecodeRate(r, SampleRate) }

// DecodeRate is Decode for samples at rate Hz, e.g. 16000 for G.722.
func DecodeRate(r io.Reader, rate int) ([]int16, error) {
	rd, err := NewReaderRate(r, rate)
	if err != nil {
		return nil, err
	}
	var out []int16
	buf := make([]int16, 4096)
	for {
		n, err := rd.ReadSamples(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("wav: reading samples: %w", err)
		}
	}
}

// ReadFile reads the WAV file name and returns its samples, mono at
// SampleRate. Errors name the file.
func ReadFile(name string) ([]int16, error) { return ReadFileRate(name, SampleRate) }

// ReadFileRate is ReadFile for samples at rate Hz, e.g. 16000 for G.722.
func ReadFileRate(name string, rate int) ([]int16, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := DecodeRate(bufio.NewReader(f), rate)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// Source plays samples held in memory: an AudioSource for media/rtp and
// media/webrtc. Many Sources may share one slice of samples (a prompt
// played to many calls); each keeps its own position. It is safe for
// concurrent use.
type Source struct {
	mu      sync.Mutex
	samples []int16
	pos     int
	loop    bool
}

// NewSource returns a Source playing samples (mono, at SampleRate) from
// the start; with loop it starts again at the end, for ever, otherwise it
// returns io.EOF at the end (the handlers then send silence). samples is
// only read.
func NewSource(samples []int16, loop bool) *Source {
	return &Source{samples: samples, loop: loop}
}

// ReadSamples copies the next samples into p.
func (s *Source) ReadSamples(p []int16) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n < len(p) {
		if s.pos >= len(s.samples) {
			if !s.loop || len(s.samples) == 0 {
				return n, io.EOF
			}
			s.pos = 0
		}
		c := copy(p[n:], s.samples[s.pos:])
		n += c
		s.pos += c
	}
	return n, nil
}

// Done reports whether a Source that does not loop has played all its
// samples.
func (s *Source) Done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.loop && s.pos >= len(s.samples)
}

// Writer writes a WAV file of mono 16-bit PCM at SampleRate, or at the
// rate given to NewWriterRate or CreateRate. Its methods
// are safe for concurrent use: a handler's playout goroutine may write
// while another goroutine closes it.
type Writer struct {
	mu      sync.Mutex
	dst     io.Writer
	bw      *bufio.Writer
	closer  io.Closer // the file Create opened, closed by Close
	samples int64
	err     error // the first write error, reported by Close
	closed  bool
	buf     []byte
	rate    int
}

// maxSamples keeps the RIFF size below 4 GiB.
const maxSamples = (0xffffffff - 36) / 2

// NewWriter writes a WAV header to w and returns a Writer of samples
// after it. When w is an io.WriteSeeker (a file), Close goes back to fill
// in the sizes; otherwise they stay 0xffffffff ("to the end"), which
// Reader and most players accept.
func NewWriter(w io.Writer) (*Writer, error) { return NewWriterRate(w, SampleRate) }

// NewWriterRate is NewWriter for samples at rate Hz (MinSampleRate to
// MaxSampleRate), e.g. 16000 for what a G.722 call receives.
func NewWriterRate(w io.Writer, rate int) (*Writer, error) {
	if rate < MinSampleRate || rate > MaxSampleRate {
		return nil, fmt.Errorf("%w: rate %d Hz (%d to %d Hz)", ErrUnsupported, rate, MinSampleRate, MaxSampleRate)
	}
	wr := &Writer{dst: w, bw: bufio.NewWriter(w), rate: rate}
	if _, err := wr.bw.Write(header(-1, rate)); err != nil {
		return nil, fmt.Errorf("wav: writing the header: %w", err)
	}
	return wr, nil
}

// Create creates (or truncates) the file name and returns a Writer to it;
// Close closes the file.
func Create(name string) (*Writer, error) { return CreateRate(name, SampleRate) }

// CreateRate is Create for samples at rate Hz, e.g. 16000.
func CreateRate(name string, rate int) (*Writer, error) {
	if rate < MinSampleRate || rate > MaxSampleRate {
		return nil, fmt.Errorf("%w: rate %d Hz (%d to %d Hz)", ErrUnsupported, rate, MinSampleRate, MaxSampleRate)
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	w, err := NewWriterRate(f, rate)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.closer = f
	return w, nil
}

// header returns the 44-byte header of a file with n samples (n < 0:
// unknown) at rate.
func header(n int64, rate int) []byte {
	data, riff := uint32(0xffffffff), uint32(0xffffffff)
	if n >= 0 {
		data = uint32(2 * n)
		riff = 36 + data
	}
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], riff)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], uint16(PCM))
	binary.LittleEndian.PutUint16(h[22:], 1)
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(2*rate))
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], data)
	return h
}

// WriteSamples appends samples to the file. After a write error it
// writes nothing more and returns that error again (Close reports it
// too), so it can be called from a callback that has nowhere to report
// errors, e.g. h.OnAudio(func(s []int16) { w.WriteSamples(s) }). A file
// is limited to about 4 GiB (74 hours at 8 kHz); samples beyond are dropped and
// reported.
func (w *Writer) WriteSamples(samples []int16) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if w.samples+int64(len(samples)) > maxSamples {
		w.err = fmt.Errorf("wav: recording longer than the %d samples a WAV file holds", int64(maxSamples))
		return w.err
	}
	if cap(w.buf) < 2*len(samples) {
		w.buf = make([]byte, 2*len(samples))
	}
	b := w.buf[:2*len(samples)]
	for i, s := range samples {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("wav: writing samples: %w", err)
		return w.err
	}
	w.samples += int64(len(samples))
	return nil
}

// Samples returns how many samples have been written.
func (w *Writer) Samples() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.samples
}

// Close flushes the samples, fills in the header's sizes when the
// destination can seek, closes the file Create opened, and returns the
// first error met while writing, if any. Later calls return nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.err
	if ferr := w.bw.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("wav: writing samples: %w", ferr)
	}
	if ws, ok := w.dst.(io.WriteSeeker); ok && err == nil {
		if _, serr := ws.Seek(0, io.SeekStart); serr != nil {
			err = fmt.Errorf("wav: completing the header: %w", serr)
		} else if _, werr := ws.Write(header(w.samples, w.rate)); werr != nil {
			err = fmt.Errorf("wav: completing the header: %w", werr)
		} else if _, serr := ws.Seek(0, io.SeekEnd); serr != nil {
			err = fmt.Errorf("wav: completing the header: %w", serr)
		}
	}
	if w.closer != nil {
		if cerr := w.closer.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// WriteFile writes samples (mono, at SampleRate) to the WAV file name.
func WriteFile(name string, samples []int16) error {
	w, err := Create(name)
	if err != nil {
		return err
	}
	if err := w.WriteSamples(samples); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// Level returns the RMS level of samples relative to full scale, from 0
// (silence) to 1: a quick check that a recording holds sound.
func Level(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, s := range samples {
		f := float64(s) / 32768
		sum += f * f
	}
	return math.Sqrt(sum / float64(len(samples)))
}

// ToneLevel returns the level of the frequency hz in samples (at
// SampleRate), on the scale of Level: about 0.7 of the peak for a pure
// sine of that frequency, near 0 for other tones and silence. It is the
// Goertzel filter, for checking that a recording holds a given tone.
func ToneLevel(samples []int16, hz float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	w := 2 * math.Pi * hz / SampleRate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x)/32768 + c*s1 - s2
		s2, s1 = s1, s0
	}
	power := s1*s1 + s2*s2 - c*s1*s2
	if power < 0 {
		power = 0
	}
	// |X(f)| of a sine of amplitude A over N samples is A*N/2; the RMS
	// of that sine is A/√2.
	return math.Sqrt(power) * 2 / float64(len(samples)) / math.Sqrt2
}
