package webrtc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/h264writer"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"

	pion "github.com/pion/webrtc/v4"
)

// VideoFrame is one encoded video frame: a VP8 frame, or an H.264 access
// unit in Annex-B form (NAL units each after a 00 00 00 01 start code).
type VideoFrame struct {
	// Data is the encoded frame. The handler does not keep it after
	// sending.
	Data []byte
	// Duration is how long the frame shows: the handler sends the next
	// one that much later. Zero means DefaultFrameDuration.
	Duration time.Duration
}

// DefaultFrameDuration is the duration of a VideoFrame that gives none:
// 30 frames a second.
const DefaultFrameDuration = time.Second / 30

// VideoSource produces the encoded video a Handler sends. The handler
// calls ReadFrame from its sending goroutine once per frame, paced by the
// frames' durations, so ReadFrame should return promptly (Handler.Close
// waits for a call in progress); after an error (io.EOF at the end of a
// file) the source is dropped and no video is sent until another is set.
type VideoSource interface {
	// Codec is the MIME type of the frames: pion.MimeTypeVP8 or
	// pion.MimeTypeH264. Frames go out only when the call negotiated it.
	Codec() string
	// ReadFrame returns the next frame.
	ReadFrame() (VideoFrame, error)
}

// KeyframeRequester is implemented by a VideoSource that can make its next
// frame a keyframe (a live encoder). The handler calls RequestKeyframe
// when the peer asks for one (RTCP PLI or FIR).
type KeyframeRequester interface {
	RequestKeyframe()
}

// VideoSink receives the RTP packets of the remote video, in the order
// read. pion's ivfwriter (VP8) and h264writer implement it; NewIVFSink and
// NewH264Sink make them.
type VideoSink interface {
	WriteRTP(p *rtp.Packet) error
}

// Errors of the video file readers.
var (
	// ErrBadVideoFile reports a file that is not a readable IVF or
	// H.264 Annex-B stream.
	ErrBadVideoFile = errors.New("webrtc: bad video file")
)

// ivfSource reads VP8 frames from an IVF file (the 32-byte file header,
// then per frame a 12-byte header: size and presentation time).
type ivfSource struct {
	r        *bufio.Reader
	rate     uint32 // timebase denominator: units per second
	scale    uint32 // timebase numerator
	next     []byte // the frame read ahead
	nextPTS  uint64
	haveNext bool
	lastDur  time.Duration
	frameHdr [12]byte
}

// NewIVFSource returns a VideoSource reading VP8 frames from an IVF file,
// each lasting until the next one's presentation time (the last one as
// long as the one before). It returns an error wrapping ErrBadVideoFile
// when r does not start with an IVF header for VP8.
func NewIVFSource(r io.Reader) (VideoSource, error) {
	br := bufio.NewReader(r)
	var hdr [32]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: IVF header: %w", ErrBadVideoFile, err)
	}
	if string(hdr[0:4]) != "DKIF" {
		return nil, fmt.Errorf("%w: not an IVF file", ErrBadVideoFile)
	}
	if fourcc := string(hdr[8:12]); fourcc != "VP80" {
		return nil, fmt.Errorf("%w: IVF codec %q, not VP80", ErrBadVideoFile, fourcc)
	}
	s := &ivfSource{
		r:     br,
		rate:  binary.LittleEndian.Uint32(hdr[16:20]),
		scale: binary.LittleEndian.Uint32(hdr[20:24]),
	}
	if s.rate == 0 || s.scale == 0 {
		return nil, fmt.Errorf("%w: IVF timebase %d/%d", ErrBadVideoFile, s.scale, s.rate)
	}
	if hl := binary.LittleEndian.Uint16(hdr[6:8]); hl > 32 {
		if _, err := br.Discard(int(hl) - 32); err != nil {
			return nil, fmt.Errorf("%w: IVF header: %w", ErrBadVideoFile, err)
		}
	}
	s.lastDur = s.ptsDuration(1)
	if err := s.readAhead(); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return s, nil
}

// maxIVFFrame bounds the size of one frame read from a file.
const maxIVFFrame = 8 << 20

func (s *ivfSource) ptsDuration(d uint64) time.Duration {
	return time.Duration(d * uint64(s.scale) * uint64(time.Second) / uint64(s.rate))
}

func (s *ivfSource) readAhead() error {
	s.haveNext = false
	if _, err := io.ReadFull(s.r, s.frameHdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return fmt.Errorf("%w: IVF frame header: %w", ErrBadVideoFile, err)
	}
	size := binary.LittleEndian.Uint32(s.frameHdr[0:4])
	if size > maxIVFFrame {
		return fmt.Errorf("%w: IVF frame of %d bytes", ErrBadVideoFile, size)
	}
	// Grown as the data comes, not by the size a header claims.
	var buf bytes.Buffer
	if n, err := io.CopyN(&buf, s.r, int64(size)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: IVF frame of %d bytes cut at %d: %w", ErrBadVideoFile, size, n, err)
	}
	s.next, s.nextPTS, s.haveNext = buf.Bytes(), binary.LittleEndian.Uint64(s.frameHdr[4:12]), true
	return nil
}

func (s *ivfSource) Codec() string { return pion.MimeTypeVP8 }

func (s *ivfSource) ReadFrame() (VideoFrame, error) {
	if !s.haveNext {
		return VideoFrame{}, io.EOF
	}
	data, pts := s.next, s.nextPTS
	if err := s.readAhead(); err != nil && !errors.Is(err, io.EOF) {
		return VideoFrame{}, err
	}
	if s.haveNext && s.nextPTS > pts {
		s.lastDur = s.ptsDuration(s.nextPTS - pts)
	}
	return VideoFrame{Data: data, Duration: s.lastDur}, nil
}

// h264Source groups the NAL units of an Annex-B stream into access units.
type h264Source struct {
	r       *h264reader.H264Reader
	dur     time.Duration
	pending *h264reader.NAL
	done    bool
}

// NewH264Source returns a VideoSource reading an H.264 Annex-B stream (a
// raw .h264 file) access unit by access unit, at fps frames a second (0:
// 30). It returns an error wrapping ErrBadVideoFile when r does not start
// with a start code.
func NewH264Source(r io.Reader, fps float64) (VideoSource, error) {
	if fps < 0 {
		return nil, fmt.Errorf("webrtc: negative frame rate %v", fps)
	}
	hr, err := h264reader.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadVideoFile, err)
	}
	d := DefaultFrameDuration
	if fps > 0 {
		d = time.Duration(float64(time.Second) / fps)
	}
	s := &h264Source{r: hr, dur: d}
	// The first NAL unit, read now: a stream without a start code fails
	// here rather than at the first frame.
	for s.pending == nil {
		n, err := hr.NextNAL()
		if errors.Is(err, io.EOF) {
			s.done = true
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadVideoFile, err)
		}
		if len(n.Data) > 0 {
			s.pending = n
		}
	}
	return s, nil
}

func (s *h264Source) Codec() string { return pion.MimeTypeH264 }

// isVCL reports a coded slice.
func isVCL(n *h264reader.NAL) bool {
	return n.UnitType >= h264reader.NalUnitTypeCodedSliceNonIdr && n.UnitType <= h264reader.NalUnitTypeCodedSliceIdr
}

// startsPicture reports a NAL that, after a slice, begins the next access
// unit (H.264 §7.4.1.2.3): an AUD, SPS, PPS or SEI, or a slice whose
// first_mb_in_slice is 0 (its first Exp-Golomb bit set).
func startsPicture(n *h264reader.NAL) bool {
	switch n.UnitType {
	case h264reader.NalUnitTypeAUD, h264reader.NalUnitTypeSPS, h264reader.NalUnitTypePPS, h264reader.NalUnitTypeSEI:
		return true
	}
	return isVCL(n) && len(n.Data) > 1 && n.Data[1]&0x80 != 0
}

func (s *h264Source) ReadFrame() (VideoFrame, error) {
	var au bytes.Buffer
	vcl := false
	add := func(n *h264reader.NAL) {
		au.Write([]byte{0, 0, 0, 1})
		au.Write(n.Data)
		vcl = vcl || isVCL(n)
	}
	if s.pending != nil {
		add(s.pending)
		s.pending = nil
	}
	for !s.done {
		n, err := s.r.NextNAL()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return VideoFrame{}, fmt.Errorf("%w: %w", ErrBadVideoFile, err)
			}
			s.done = true
			break
		}
		if len(n.Data) == 0 {
			continue
		}
		if vcl && startsPicture(n) {
			s.pending = n
			break
		}
		add(n)
	}
	if au.Len() == 0 {
		return VideoFrame{}, io.EOF
	}
	return VideoFrame{Data: au.Bytes(), Duration: s.dur}, nil
}

// loopSource plays a source again from the start each time it ends.
type loopSource struct {
	open  func() (VideoSource, error)
	cur   VideoSource
	codec string
	empty bool // the last opening gave no frame
}

// LoopVideo returns a VideoSource that plays the source open returns and,
// when it ends, calls open again and plays that, endlessly (e.g. a file
// played as a looping clip). open is called once at once, for the codec;
// its error is returned. A source that ends without a frame ends the loop.
func LoopVideo(open func() (VideoSource, error)) (VideoSource, error) {
	src, err := open()
	if err != nil {
		return nil, err
	}
	return &loopSource{open: open, cur: src, codec: src.Codec()}, nil
}

func (l *loopSource) Codec() string { return l.codec }

func (l *loopSource) ReadFrame() (VideoFrame, error) {
	for range 2 {
		f, err := l.cur.ReadFrame()
		if err == nil {
			l.empty = false
			return f, nil
		}
		if !errors.Is(err, io.EOF) || l.empty {
			return VideoFrame{}, err
		}
		if c, ok := l.cur.(io.Closer); ok {
			if cerr := c.Close(); cerr != nil {
				return VideoFrame{}, cerr
			}
		}
		if l.cur, err = l.open(); err != nil {
			return VideoFrame{}, err
		}
		l.empty = true
	}
	return VideoFrame{}, io.EOF
}

// NewIVFSink returns a VideoSink writing VP8 video to w as an IVF file
// (pion's ivfwriter); it starts at the first keyframe. Close it when the
// call ends: with an io.WriteSeeker it then fills in the frame count.
func NewIVFSink(w io.Writer) (*ivfwriter.IVFWriter, error) {
	iw, err := ivfwriter.NewWith(w, ivfwriter.WithCodec(pion.MimeTypeVP8))
	if err != nil {
		return nil, fmt.Errorf("webrtc: IVF sink: %w", err)
	}
	return iw, nil
}

// NewH264Sink returns a VideoSink writing H.264 video to w as an Annex-B
// stream (pion's h264writer); it starts at the first keyframe.
func NewH264Sink(w io.Writer) *h264writer.H264Writer { return h264writer.NewWith(w) }
