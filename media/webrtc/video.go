package webrtc

import (
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"fmt"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	rtpcodecs "github.com/pion/rtp/codecs"
	pion "github.com/pion/webrtc/v4"
)

const (
	videoClockRate = 90000
	// videoMTU bounds the RTP payload of one video packet, leaving room
	// for the RTP header, SRTP's tag and header extensions in a 1280-byte
	// IPv6 minimum MTU.
	videoMTU = 1100
	// videoIdlePoll is how often the sending goroutine looks again for a
	// source or a binding while it has none.
	videoIdlePoll = 20 * time.Millisecond
	// maxFrameDuration bounds the wait after one frame.
	maxFrameDuration = 2 * time.Second
)

// videoSourceBox lets a VideoSource interface value sit in an atomic.Pointer.
type videoSourceBox struct{ src VideoSource }

// videoBinding is what pion told the video track when it bound it.
type videoBinding struct {
	id     string
	ssrc   uint32
	params []pion.RTPCodecParameters // the negotiated video codecs
	w      pion.TrackLocalWriter
}

// videoTrack is the pion TrackLocal through which a Handler sends video:
// encoded frames from its VideoSource, packetized for the negotiated
// codec of the source's type (VP8 or H.264), paced by the frames'
// durations, with the RTP timestamp following the wall clock.
type videoTrack struct {
	streamID string
	count    *counters
	log      *slog.Logger
	wg       *sync.WaitGroup

	src        atomic.Pointer[videoSourceBox]
	framesSent atomic.Uint64
	codecSent  atomic.Pointer[string]

	mu      sync.Mutex
	bound   *videoBinding
	sending bool
	stopped bool
	stop    chan struct{}
	wake    chan struct{}
	seq     uint16
	tsBase  uint32
	start   time.Time
	warned  string // the source codec last reported as not negotiated
	payload rtp.Payloader
	payMime string
}

func newVideoTrack(streamID string, count *counters, log *slog.Logger, wg *sync.WaitGroup) *videoTrack {
	return &videoTrack{
		streamID: streamID,
		count:    count,
		log:      log,
		wg:       wg,
		seq:      uint16(rand.Uint32()),
		tsBase:   rand.Uint32(),
		wake:     make(chan struct{}, 1),
	}
}

// ID, RID, StreamID and Kind make videoTrack a pion.TrackLocal.
func (t *videoTrack) ID() string              { return "video" }
func (t *videoTrack) RID() string             { return "" }
func (t *videoTrack) StreamID() string        { return t.streamID }
func (t *videoTrack) Kind() pion.RTPCodecType { return pion.RTPCodecTypeVideo }

// Bind accepts whatever video codecs were negotiated (the one sent is
// chosen per frame, by the source's type) and starts the sending
// goroutine. It returns the codec of the current source when negotiated,
// else the first one.
func (t *videoTrack) Bind(ctx pion.TrackLocalContext) (pion.RTPCodecParameters, error) {
	params := ctx.CodecParameters()
	var list []pion.RTPCodecParameters
	for _, p := range params {
		if strings.HasPrefix(strings.ToLower(p.MimeType), "video/") && !strings.EqualFold(p.MimeType, "video/rtx") {
			list = append(list, p)
		}
	}
	if len(list) == 0 {
		return pion.RTPCodecParameters{}, pion.ErrUnsupportedCodec
	}
	chosen := list[0]
	if box := t.src.Load(); box != nil {
		if p, ok := pickCodec(list, box.src.Codec()); ok {
			chosen = p
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bound = &videoBinding{id: ctx.ID(), ssrc: uint32(ctx.SSRC()), params: list, w: ctx.WriteStream()}
	t.payload, t.payMime = nil, ""
	if t.stop == nil && !t.stopped {
		t.stop = make(chan struct{})
		t.start = time.Now()
		t.wg.Add(1)
		go t.run(t.stop)
	}
	t.log.Debug("video track bound", "codecs", len(list), "first", chosen.MimeType, "ssrc", ctx.SSRC())
	return chosen, nil
}

// pickCodec returns the negotiated codec of the given MIME type.
func pickCodec(list []pion.RTPCodecParameters, mime string) (pion.RTPCodecParameters, bool) {
	for _, p := range list {
		if strings.EqualFold(p.MimeType, mime) {
			return p, true
		}
	}
	return pion.RTPCodecParameters{}, false
}

// Unbind detaches the track from a sender.
func (t *videoTrack) Unbind(ctx pion.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bound != nil && t.bound.id == ctx.ID() {
		t.bound = nil
	}
	return nil
}

// setSource sets the source and wakes the sending goroutine.
func (t *videoTrack) setSource(src VideoSource) {
	if src == nil {
		t.src.Store(nil)
	} else {
		t.src.Store(&videoSourceBox{src})
	}
	t.poke()
}

func (t *videoTrack) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// setSending gates the sending by the negotiated direction.
func (t *videoTrack) setSending(on bool) {
	t.mu.Lock()
	t.sending = on
	t.mu.Unlock()
	t.poke()
}

// close stops the sending goroutine; the Handler's WaitGroup waits for it.
func (t *videoTrack) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		if t.stop != nil {
			close(t.stop)
		}
	}
}

func (t *videoTrack) run(stop <-chan struct{}) {
	defer t.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		case <-t.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		now := time.Now()
		if now.Before(next) {
			timer.Reset(next.Sub(now))
			continue
		}
		d, sent := t.frame()
		if !sent {
			next = time.Now().Add(videoIdlePoll)
		} else {
			// Paced by durations, but never bunching up after a stall.
			next = next.Add(d)
			if late := time.Now().Add(-d); next.Before(late) {
				next = late
			}
		}
		timer.Reset(time.Until(next))
	}
}

// frame reads and sends one frame; it returns the frame's duration and
// whether a frame was read. Nothing is read while the track is not bound
// or sending, or while the source's codec is not negotiated.
func (t *videoTrack) frame() (time.Duration, bool) {
	box := t.src.Load()
	if box == nil {
		return 0, false
	}
	mime := box.src.Codec()
	t.mu.Lock()
	b, sending := t.bound, t.sending
	var p pion.RTPCodecParameters
	ok := false
	if b != nil {
		p, ok = pickCodec(b.params, mime)
	}
	if b != nil && sending && !ok && t.warned != mime {
		t.warned = mime
		t.log.Warn("video source codec not negotiated: no video sent", "codec", mime)
	}
	t.mu.Unlock()
	if b == nil || !sending || !ok {
		return 0, false
	}
	f, err := box.src.ReadFrame()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			t.log.Warn("video source failed", "err", err)
		} else {
			t.log.Debug("video source ended")
		}
		t.src.CompareAndSwap(box, nil)
		return 0, false
	}
	d := f.Duration
	if d <= 0 {
		d = DefaultFrameDuration
	}
	d = min(d, maxFrameDuration)
	if len(f.Data) == 0 {
		return d, true
	}

	t.mu.Lock()
	if t.payload == nil || !strings.EqualFold(t.payMime, p.MimeType) {
		switch {
		case strings.EqualFold(p.MimeType, pion.MimeTypeVP8):
			t.payload = &rtpcodecs.VP8Payloader{EnablePictureID: true}
		case strings.EqualFold(p.MimeType, pion.MimeTypeH264):
			t.payload = &rtpcodecs.H264Payloader{}
		default:
			t.mu.Unlock()
			return d, true
		}
		t.payMime = p.MimeType
	}
	payloads := t.payload.Payload(videoMTU, f.Data)
	ts := t.tsBase + uint32(time.Since(t.start)*videoClockRate/time.Second)
	first := t.seq
	t.seq += uint16(len(payloads))
	t.mu.Unlock()

	var bytes uint64
	written := 0
	for i, pl := range payloads {
		hdr := rtp.Header{Version: 2, PayloadType: uint8(p.PayloadType), SequenceNumber: first + uint16(i),
			Timestamp: ts, SSRC: b.ssrc, Marker: i == len(payloads)-1}
		n, err := b.w.WriteRTP(&hdr, pl)
		if err != nil {
			if !errors.Is(err, io.ErrClosedPipe) {
				t.log.Debug("video write failed", "err", err)
			}
			break
		}
		if n > 0 {
			written++
			bytes += uint64(len(pl))
		}
	}
	if written > 0 {
		t.count.packetsSent.Add(uint64(written))
		t.count.bytesSent.Add(bytes)
		t.framesSent.Add(1)
		mt := p.MimeType
		t.codecSent.Store(&mt)
	}
	return d, true
}

// sinkBox holds the VideoSink in use; its mutex is held while a packet is
// written, so that SetVideoSink returns only once the sink it replaces
// gets no more packets.
type sinkBox struct {
	mu      sync.Mutex
	sink    VideoSink
	retired bool
	failed  bool
}

// SetVideoSource sets the encoded video the handler sends from the next
// frame on; nil sends none. Video is offered and answered when
// media.Options.Constraints.Video asks for it; it is sent when the call
// negotiated the source's codec and a direction that lets us send.
func (h *Handler) SetVideoSource(src VideoSource) { h.video.setSource(src) }

// SetVideoSink sets where the remote video's RTP packets go, from the
// next packet on; nil drops them (they are still counted and passed to
// OnRTP). A keyframe is asked of the peer (RTCP PLI) at once, so that a
// decoder or file writer can start; one is asked again when packets are
// lost. When SetVideoSink returns, the sink it replaced gets no more
// packets and may be closed. The sink's WriteRTP is called from the
// goroutine reading the remote track: it should not block (Close waits
// for it) and must not call SetVideoSink. A sink that returns an error is
// dropped.
func (h *Handler) SetVideoSink(sink VideoSink) {
	var nb *sinkBox
	if sink != nil {
		nb = &sinkBox{sink: sink}
	}
	if old := h.sink.Swap(nb); old != nil {
		old.mu.Lock()
		old.retired = true
		old.mu.Unlock()
	}
	if sink != nil {
		h.RequestKeyframe()
	}
}

// OnKeyframeRequest sets the function called when the peer asks for a
// keyframe of our video (RTCP PLI or FIR), besides the source's
// RequestKeyframe when it is a KeyframeRequester.
func (h *Handler) OnKeyframeRequest(f func()) { h.onKeyframe.Store(&f) }

// minKeyframeInterval bounds how often loss makes the handler ask for a
// keyframe.
const minKeyframeInterval = 500 * time.Millisecond

// RequestKeyframe asks the peer for a keyframe of its video (RTCP PLI,
// RFC 4585 §6.3.1). It does nothing before the remote video starts.
func (h *Handler) RequestKeyframe() {
	ssrc := h.videoSSRC.Load()
	h.mu.Lock()
	pc, closed := h.pc, h.closed
	h.mu.Unlock()
	if ssrc == 0 || pc == nil || closed {
		return
	}
	h.lastKFAsk.Store(time.Now().UnixNano())
	if err := pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		h.log.Debug("keyframe request not sent", "err", err)
		return
	}
	h.kfSent.Add(1)
}

// writeSink hands a remote video packet to the sink.
func (h *Handler) writeSink(pkt *rtp.Packet) {
	box := h.sink.Load()
	if box == nil {
		return
	}
	box.mu.Lock()
	if box.retired || box.failed {
		box.mu.Unlock()
		return
	}
	err := box.sink.WriteRTP(pkt)
	if err != nil {
		box.failed = true
	}
	box.mu.Unlock()
	if err != nil {
		h.log.Warn("video sink failed; dropped", "err", err)
		h.sink.CompareAndSwap(box, nil)
	}
}

// readVideoRTCP reads the RTCP of our video sender, calling the keyframe
// callbacks on PLI and FIR, until the sender stops.
func (h *Handler) readVideoRTCP(sender *pion.RTPSender) {
	defer h.wg.Done()
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			default:
				continue
			}
			h.kfReceived.Add(1)
			if box := h.video.src.Load(); box != nil {
				if kr, ok := box.src.(KeyframeRequester); ok {
					kr.RequestKeyframe()
				}
			}
			if f := h.onKeyframe.Load(); f != nil && *f != nil {
				(*f)()
			}
		}
	}
}

// addVideo puts our video track on the PeerConnection: on a transceiver
// of its own (offering), or on the one pion made for the peer's video
// m-line (answering). Called with negMu held.
func (h *Handler) addVideo(pc *pion.PeerConnection) error {
	h.mu.Lock()
	have := h.videoTr != nil
	h.mu.Unlock()
	if have {
		return nil
	}
	var tr *pion.RTPTransceiver
	if pc.SignalingState() == pion.SignalingStateHaveRemoteOffer {
		for _, t := range pc.GetTransceivers() {
			if t.Kind() == pion.RTPCodecTypeVideo && t.Sender() == nil {
				sender, err := pc.AddTrack(h.video)
				if err != nil {
					return fmt.Errorf("webrtc: video track: %w", err)
				}
				for _, t2 := range pc.GetTransceivers() {
					if t2.Sender() == sender {
						tr = t2
					}
				}
				break
			}
		}
		if tr == nil {
			return nil // no video offered: nothing to answer with
		}
	} else {
		var err error
		tr, err = pc.AddTransceiverFromTrack(h.video,
			pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionSendrecv})
		if err != nil {
			return fmt.Errorf("webrtc: video transceiver: %w", err)
		}
	}
	h.mu.Lock()
	h.videoTr = tr
	h.mu.Unlock()
	if sender := tr.Sender(); sender != nil {
		h.wg.Add(1)
		go h.readVideoRTCP(sender)
	}
	return nil
}
