package webrtc

import (
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"
)

const (
	// playoutDepth is how many packets the jitter buffer holds before it
	// starts playing (and again after it ran dry): 60 ms of 20 ms
	// packets.
	playoutDepth = 3
	// playoutMax bounds the packets held; beyond, the oldest go and
	// playout skips ahead.
	playoutMax = 50
	// playoutMaxJump is the sequence jump taken as a new stream.
	playoutMaxJump = 1000
	// playoutDryGaps is how many gaps in a row send the buffer back to
	// buffering (the peer stopped sending: on hold, or gone).
	playoutDryGaps = 10
)

// playEntry is one received G.711 packet waiting to be played.
type playEntry struct {
	ext     uint64
	alaw    bool
	payload []byte
}

// playout is the jitter buffer of the received audio: it reorders G.711
// packets by sequence number and plays them out in real time, decoded,
// to OnAudio; a missing packet plays as silence of the last packet's
// length. Its goroutine runs from the first packet to Close.
type playout struct {
	h *Handler

	mu      sync.Mutex
	entries []playEntry // sorted by ext
	highest uint64
	init    bool
	started bool
	playing bool
	next    uint64
	gaps    int
	frame   int // samples of the last packet played
	ssrc    uint32
	running bool
	stopped bool
	stop    chan struct{}

	late, dropped uint64
}

// extend returns the extended sequence number of seq near the highest.
func (p *playout) extend(seq uint16) uint64 {
	if !p.init {
		p.init = true
		p.highest = 1<<32 + uint64(seq)
		return p.highest
	}
	ext := uint64(int64(p.highest) + int64(int16(seq-uint16(p.highest))))
	p.highest = max(p.highest, ext)
	return ext
}

func (p *playout) reset() {
	clear(p.entries)
	p.entries = p.entries[:0]
	p.init, p.started, p.playing, p.gaps = false, false, false, 0
}

// push stores a received audio packet (PCMU or PCMA) and starts the
// playout goroutine at the first one. Other codecs are not decoded.
func (p *playout) push(mime string, pkt *rtp.Packet) {
	alaw := strings.EqualFold(mime, pion.MimeTypePCMA)
	if !alaw && !strings.EqualFold(mime, pion.MimeTypePCMU) || len(pkt.Payload) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	if p.init && pkt.SSRC != p.ssrc {
		p.reset()
	}
	p.ssrc = pkt.SSRC
	ext := p.extend(pkt.SequenceNumber)
	if d := int64(ext) - int64(p.next); p.started && (d > playoutMaxJump || d < -playoutMaxJump) {
		p.reset()
		p.ssrc = pkt.SSRC
		ext = p.extend(pkt.SequenceNumber)
	}
	if p.started && ext < p.next {
		p.late++
		return
	}
	i := len(p.entries)
	for i > 0 && p.entries[i-1].ext > ext {
		i--
	}
	if i > 0 && p.entries[i-1].ext == ext {
		p.dropped++ // a duplicate
		return
	}
	p.entries = append(p.entries, playEntry{})
	copy(p.entries[i+1:], p.entries[i:])
	p.entries[i] = playEntry{ext: ext, alaw: alaw, payload: pkt.Payload}
	for len(p.entries) > playoutMax {
		p.entries = p.entries[1:]
		p.dropped++
		if p.started && p.next < p.entries[0].ext {
			p.next = p.entries[0].ext
		}
	}
	if !p.running {
		p.running = true
		p.stop = make(chan struct{})
		p.h.wg.Add(1)
		go p.run(p.stop)
	}
}

// pop returns the next packet to play; gap is true for a missing one,
// ok false while buffering.
func (p *playout) pop() (e playEntry, gap, ok bool) {
	if !p.playing {
		if len(p.entries) < playoutDepth {
			return e, false, false
		}
		p.playing, p.gaps = true, 0
		if !p.started || p.entries[0].ext > p.next {
			p.next, p.started = p.entries[0].ext, true
		}
	}
	if len(p.entries) > 0 && p.entries[0].ext == p.next {
		e = p.entries[0]
		p.entries = p.entries[1:]
		p.next++
		p.gaps = 0
		return e, false, true
	}
	p.next++
	if p.gaps++; p.gaps >= playoutDryGaps || len(p.entries) == 0 && p.gaps > 1 {
		p.playing = false
		return e, false, false
	}
	return e, true, true
}

// close stops the goroutine (the Handler's WaitGroup waits for it).
func (p *playout) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.stopped = true
		if p.stop != nil {
			close(p.stop)
		}
	}
}

func (p *playout) run(stop <-chan struct{}) {
	defer p.h.wg.Done()
	pcm := make([]int16, 2048)
	next := time.Now()
	timer := time.NewTimer(frameInterval)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		}
		now := time.Now()
		p.mu.Lock()
		e, gap, ok := p.pop()
		n := 0
		switch {
		case ok && !gap:
			n = min(len(e.payload), len(pcm))
			p.frame = n
		case ok && gap:
			n = p.frame
		}
		p.h.audioLate.Add(p.late + p.dropped)
		p.late, p.dropped = 0, 0
		p.mu.Unlock()

		if f := p.h.onAudio.Load(); f != nil && *f != nil && ok && n > 0 {
			if gap {
				clear(pcm[:n])
			} else {
				for i, c := range e.payload[:n] {
					if e.alaw {
						pcm[i] = DecodeALaw(c)
					} else {
						pcm[i] = DecodeMuLaw(c)
					}
				}
			}
			(*f)(pcm[:n])
		}
		d := frameInterval
		if n > 0 {
			d = time.Duration(n) * time.Second / SampleRate
		}
		next = next.Add(d)
		if now.Sub(next) > 10*d {
			next = now
		}
		timer.Reset(time.Until(next))
	}
}

// OnAudio sets the function called with the received audio, decoded to
// 16-bit linear PCM at SampleRate, one packet's worth at a time in real
// time out of a jitter buffer (60 ms deep); a lost packet plays as
// silence. Only G.711 (PCMU, PCMA) is decoded: a call that receives Opus
// gives nothing here (OnRTP still has the packets). samples is reused
// after f returns. f is called from the playout goroutine and should not
// block. It is the same callback as media/rtp's Handler.OnAudio, so one
// recorder serves both handlers.
func (h *Handler) OnAudio(f func(samples []int16)) { h.onAudio.Store(&f) }
