package webrtc

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"

	"github.com/sipua/sip/media/audio"
)

const (
	frameSamples  = 160 // 20 ms at 8 kHz
	frameInterval = 20 * time.Millisecond

	mimeTelephoneEvent = "audio/telephone-event"

	// RFC 4733 sending parameters, with WebRTC's limits (RTCDTMFSender).
	dtmfDefault     = audio.DTMFDefaultDuration
	dtmfMinDuration = audio.DTMFMinDuration
	dtmfMaxDuration = audio.DTMFMaxDuration
	dtmfGapFrames   = 4   // 80 ms of audio between two tones
	dtmfPauseFrames = 100 // ",": two seconds
)

// counters are one media kind's packet and byte counts.
type counters struct {
	packetsSent, bytesSent, packetsReceived, bytesReceived atomic.Uint64
}

// sourceBox lets an AudioSource interface value sit in an atomic.Pointer.
type sourceBox struct{ src AudioSource }

// binding is what pion told the track when it bound it to a sender.
type binding struct {
	id        string
	ssrc      uint32
	pt        uint8
	mime      string
	encodable bool // PCMU or PCMA, which this package produces
	alaw      bool
	te        int // telephone-event payload type, or -1
	w         pion.TrackLocalWriter
}

// tone is a queued DTMF tone: an RFC 4733 event code, or a pause.
type tone struct {
	code    byte
	pause   bool
	samples int
}

// audioTrack is the pion TrackLocal through which a Handler sends audio:
// every 20 ms, 160 samples from its AudioSource encoded as PCMU or PCMA,
// or an RFC 4733 telephone-event packet while a DTMF tone plays, all on
// one SSRC and one timestamp clock.
type audioTrack struct {
	id, streamID string
	count        *counters
	log          *slog.Logger
	wg           *sync.WaitGroup

	src      atomic.Pointer[sourceBox]
	dtmfSent atomic.Uint64

	mu      sync.Mutex
	bound   *binding
	sending bool // the negotiated direction lets us send
	stopped bool
	stop    chan struct{}
	seq     uint16
	ts      uint32
	marker  bool
	tones   []tone
	ev      *audio.DTMFEvent
	gap     int      // frames of audio before the next tone
	prefer  []string // MIME types it can encode, preferred first
}

func newAudioTrack(streamID string, count *counters, log *slog.Logger, wg *sync.WaitGroup) *audioTrack {
	t := &audioTrack{
		id:       "audio",
		streamID: streamID,
		count:    count,
		log:      log,
		wg:       wg,
		seq:      uint16(rand.Uint32()),
		ts:       rand.Uint32(),
		marker:   true,
	}
	return t
}

// ID, RID, StreamID and Kind make audioTrack a pion.TrackLocal.
func (t *audioTrack) ID() string              { return t.id }
func (t *audioTrack) RID() string             { return "" }
func (t *audioTrack) StreamID() string        { return t.streamID }
func (t *audioTrack) Kind() pion.RTPCodecType { return pion.RTPCodecTypeAudio }

// Bind picks the codec to send among those negotiated (PCMU, else PCMA,
// else the first one, in which case nothing is sent) and starts the
// sending goroutine.
func (t *audioTrack) Bind(ctx pion.TrackLocalContext) (pion.RTPCodecParameters, error) {
	params := ctx.CodecParameters()
	b := &binding{id: ctx.ID(), ssrc: uint32(ctx.SSRC()), te: -1, w: ctx.WriteStream()}
	var chosen *pion.RTPCodecParameters
	t.mu.Lock()
	prefer := t.prefer
	t.mu.Unlock()
	for _, want := range prefer {
		for i := range params {
			if chosen == nil && strings.EqualFold(params[i].MimeType, want) {
				chosen = &params[i]
			}
		}
	}
	for i := range params {
		p := &params[i]
		if strings.EqualFold(p.MimeType, mimeTelephoneEvent) {
			if p.ClockRate == SampleRate && b.te < 0 {
				b.te = int(p.PayloadType)
			}
		} else if chosen == nil {
			chosen = p
		}
	}
	if chosen == nil {
		return pion.RTPCodecParameters{}, fmt.Errorf("webrtc: audio track: %w", pion.ErrUnsupportedCodec)
	}
	b.pt = uint8(chosen.PayloadType)
	b.mime = chosen.MimeType
	b.alaw = strings.EqualFold(b.mime, pion.MimeTypePCMA)
	b.encodable = b.alaw || strings.EqualFold(b.mime, pion.MimeTypePCMU)

	t.mu.Lock()
	defer t.mu.Unlock()
	t.bound = b
	if t.stop == nil && !t.stopped {
		t.stop = make(chan struct{})
		t.wg.Add(1)
		go t.run(t.stop)
	}
	t.log.Debug("audio track bound", "codec", b.mime, "pt", b.pt, "telephone-event", b.te, "ssrc", b.ssrc)
	return *chosen, nil
}

// Unbind detaches the track from a sender.
func (t *audioTrack) Unbind(ctx pion.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bound != nil && t.bound.id == ctx.ID() {
		t.bound = nil
	}
	return nil
}

// setPreference sets the order in which Bind picks among the negotiated
// codecs it can encode, from codec names (e.g. "PCMA", "PCMU").
func (t *audioTrack) setPreference(names []string) {
	var p []string
	for _, n := range names {
		switch strings.ToLower(n) {
		case "pcmu":
			p = append(p, pion.MimeTypePCMU)
		case "pcma":
			p = append(p, pion.MimeTypePCMA)
		}
	}
	t.mu.Lock()
	t.prefer = p
	t.mu.Unlock()
}

// setSending gates the sending by the negotiated direction.
func (t *audioTrack) setSending(on bool) {
	t.mu.Lock()
	t.sending = on
	t.mu.Unlock()
}

// close stops the sending goroutine; the Handler's WaitGroup waits for it.
func (t *audioTrack) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		if t.stop != nil {
			close(t.stop)
		}
	}
}

// queue appends DTMF tones; dur is each tone's length.
func (t *audioTrack) queue(tones []tone) {
	t.mu.Lock()
	t.tones = append(t.tones, tones...)
	t.mu.Unlock()
}

func (t *audioTrack) run(stop <-chan struct{}) {
	defer t.wg.Done()
	tick := time.NewTicker(frameInterval)
	defer tick.Stop()
	pcm := make([]int16, frameSamples)
	buf := make([]byte, frameSamples)
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			t.frame(pcm, buf)
		}
	}
}

// frame sends the next 20 ms: a telephone-event packet, an audio packet,
// or nothing (not bound, not sending, or a codec this package cannot
// encode). The RTP clock advances in every case.
func (t *audioTrack) frame(pcm []int16, buf []byte) {
	t.mu.Lock()
	b := t.bound
	if b == nil || !t.sending {
		t.ts += frameSamples
		t.marker = true
		t.mu.Unlock()
		return
	}
	if t.ev == nil && t.gap == 0 && len(t.tones) > 0 {
		next := t.tones[0]
		t.tones = t.tones[1:]
		switch {
		case next.pause:
			t.gap = dtmfPauseFrames
		case b.te < 0:
			t.log.Debug("DTMF tone dropped: no telephone-event negotiated", "event", next.code)
		default:
			t.ev = &audio.DTMFEvent{Code: next.code, Start: t.ts, Samples: next.samples}
		}
	}
	hdr := rtp.Header{Version: 2, SequenceNumber: t.seq, SSRC: b.ssrc}
	var payload []byte
	if ev := t.ev; ev != nil {
		var first, ended, done bool
		payload, first, ended, done = ev.Next(buf, frameSamples)
		if ended {
			t.dtmfSent.Add(1)
		}
		hdr.PayloadType, hdr.Timestamp, hdr.Marker = uint8(b.te), ev.Start, first
		if done {
			t.ev, t.gap = nil, dtmfGapFrames
		}
	} else {
		if t.gap > 0 {
			t.gap--
		}
		if !b.encodable {
			t.ts += frameSamples
			t.mu.Unlock()
			return
		}
		hdr.PayloadType, hdr.Timestamp, hdr.Marker = b.pt, t.ts, t.marker
		t.marker = false
	}
	t.seq++
	t.ts += frameSamples
	t.mu.Unlock()

	if payload == nil { // audio: read and encode outside the lock
		t.readSamples(pcm)
		payload = buf[:frameSamples]
		for i, s := range pcm {
			if b.alaw {
				payload[i] = EncodeALaw(s)
			} else {
				payload[i] = EncodeMuLaw(s)
			}
		}
	}
	n, err := b.w.WriteRTP(&hdr, payload)
	switch {
	case err != nil:
		if !errors.Is(err, io.ErrClosedPipe) {
			t.log.Debug("audio write failed", "err", err)
		}
	case n > 0: // 0: DTLS-SRTP not up yet, the packet went nowhere
		t.count.packetsSent.Add(1)
		t.count.bytesSent.Add(uint64(len(payload)))
	}
}

// readSamples fills pcm from the source, with silence after its end.
func (t *audioTrack) readSamples(pcm []int16) {
	box := t.src.Load()
	got := 0
	if box != nil && box.src != nil {
		for got < len(pcm) {
			n, err := box.src.ReadSamples(pcm[got:])
			got += n
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.log.Debug("audio source failed", "err", err)
				}
				t.src.CompareAndSwap(box, nil)
				break
			}
			if n == 0 {
				break
			}
		}
	}
	clear(pcm[got:])
}
