package main

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media/webrtc"
)

// answerer is what the webphone needs of a bot: something that takes the
// calls its UserAgent receives, and a picture of them for the page. The
// minimal bot below implements it; a fuller one (examples/bot's package,
// when it lands) can take its place behind the same two methods.
type answerer interface {
	// Invite takes an incoming call; it is called on the UserAgent's
	// callback goroutine and must not block.
	Invite(inv *sip.Invitation)
	// Calls returns the state of the recent calls, newest last.
	Calls() []callStatus
}

// callStatus is one call as the bot sees it; the page shows it and the
// test asserts on it.
type callStatus struct {
	ID              int    `json:"id"`
	From            string `json:"from"`
	State           string `json:"state"`
	Digits          string `json:"digits"`
	Codec           string `json:"codec"`
	ICE             string `json:"ice"`
	PacketsReceived uint64 `json:"packetsReceived"`
	PacketsSent     uint64 `json:"packetsSent"`
	EchoedMs        uint64 `json:"echoedMs"`
	Prompt          bool   `json:"prompt"` // the prompt is still playing
	Ended           string `json:"ended,omitempty"`
	Seconds         int    `json:"seconds"`
}

// bot answers every call: it rings for a moment, answers with WebRTC
// audio, plays a short prompt (a rising three-note chime), then echoes
// what the caller sends (G.711 decoded and sent back), and collects the
// DTMF digits the caller sends, as RFC 4733 events in the media or SIP
// INFO. Each call runs on a goroutine of its own; Close waits for them.
type bot struct {
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	nextID int
	calls  []*botCall // the most recent maxCalls
}

// maxCalls is how many calls the bot remembers for the page.
const maxCalls = 10

// ringTime is how long the bot lets the caller hear ringing.
const ringTime = 300 * time.Millisecond

func newBot(log *slog.Logger) *bot {
	ctx, cancel := context.WithCancel(context.Background())
	return &bot{log: log, ctx: ctx, cancel: cancel}
}

// Close hangs up the bot's calls and waits for their goroutines.
func (b *bot) Close() {
	b.cancel()
	b.wg.Wait()
}

type botCall struct {
	id    int
	from  string
	start time.Time
	inv   *sip.Invitation
	h     *webrtc.Handler
	src   *echoSource

	mu     sync.Mutex
	state  sip.SessionState
	digits []rune
	ended  string
}

// Invite implements answerer.
func (b *bot) Invite(inv *sip.Invitation) {
	h, ok := inv.MediaHandler().(*webrtc.Handler)
	if !ok {
		b.log.Warn("bot: call without a WebRTC media handler; rejecting")
		_ = inv.Reject(488, "")
		return
	}
	from := "?"
	if a, err := inv.Request.Header.From(); err == nil {
		from = a.URI.String()
	}
	b.mu.Lock()
	b.nextID++
	c := &botCall{id: b.nextID, from: from, start: time.Now(), inv: inv, h: h, src: newEchoSource(prompt())}
	b.calls = append(b.calls, c)
	if len(b.calls) > maxCalls {
		b.calls = b.calls[len(b.calls)-maxCalls:]
	}
	b.mu.Unlock()

	h.SetAudioSource(c.src)
	h.OnRTP(c.src.received)
	h.OnDTMF(func(tone rune, _ time.Duration) { c.digit(tone) })
	inv.SetDelegate(sip.SessionDelegate{OnDTMF: func(tone rune, _ time.Duration) { c.digit(tone) }})
	inv.OnStateChange(func(s sip.SessionState) {
		c.mu.Lock()
		c.state = s
		c.mu.Unlock()
	})
	b.log.Info("bot: incoming call", "call", c.id, "from", c.from)
	b.wg.Add(1)
	go b.run(c)
}

// run answers one call and waits for its end.
func (b *bot) run(c *botCall) {
	defer b.wg.Done()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	err := c.inv.Progress(ctx, sip.ProgressOptions{})
	if err == nil {
		select {
		case <-time.After(ringTime):
		case <-c.inv.Done():
		case <-ctx.Done():
		}
		err = c.inv.Accept(ctx, sip.AcceptOptions{})
	}
	cancel()
	if err != nil {
		b.log.Warn("bot: answering failed", "call", c.id, "err", err)
	}
	select {
	case <-c.inv.Done():
	case <-b.ctx.Done():
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.inv.Bye(ctx)
		cancel()
		<-c.inv.Done()
	}
	c.mu.Lock()
	c.ended = c.inv.EndReason().String()
	c.mu.Unlock()
	b.log.Info("bot: call ended", "call", c.id, "reason", c.ended, "digits", string(c.digitsCopy()))
}

func (c *botCall) digit(tone rune) {
	c.mu.Lock()
	if len(c.digits) < 256 {
		c.digits = append(c.digits, tone)
	}
	c.mu.Unlock()
}

func (c *botCall) digitsCopy() []rune {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rune(nil), c.digits...)
}

// Calls implements answerer.
func (b *bot) Calls() []callStatus {
	b.mu.Lock()
	calls := append([]*botCall(nil), b.calls...)
	b.mu.Unlock()
	out := make([]callStatus, 0, len(calls))
	for _, c := range calls {
		st := c.h.Stats()
		c.mu.Lock()
		s := callStatus{
			ID: c.id, From: c.from, State: c.state.String(), Digits: string(c.digits), Ended: c.ended,
			Codec: strings.TrimPrefix(st.Audio.Codec, "audio/"), ICE: st.ICEConnectionState.String(),
			PacketsReceived: st.Audio.PacketsReceived, PacketsSent: st.Audio.PacketsSent,
			Seconds: int(time.Since(c.start).Seconds()),
		}
		c.mu.Unlock()
		s.EchoedMs, s.Prompt = c.src.status()
		out = append(out, s)
	}
	return out
}

// prompt returns the bot's greeting: three rising notes (C5, E5, G5) of
// 200 ms each with short fades, then 300 ms of silence, as 8 kHz PCM.
func prompt() []int16 {
	const note = webrtc.SampleRate / 5 // 200 ms
	const fade = webrtc.SampleRate / 100
	var out []int16
	for _, hz := range []float64{523.25, 659.25, 783.99} {
		for i := range note {
			a := 9000.0
			if i < fade {
				a *= float64(i) / fade
			} else if i > note-fade {
				a *= float64(note-i) / fade
			}
			out = append(out, int16(a*math.Sin(2*math.Pi*hz*float64(i)/webrtc.SampleRate)))
		}
	}
	return append(out, make([]int16, webrtc.SampleRate*3/10)...)
}

// echoSource is a call's audio source: the prompt first, then what the
// caller sent, decoded from G.711 and played back about echoDelay later.
// ReadSamples runs on the handler's sending goroutine, received on the
// goroutine reading the remote track.
type echoSource struct {
	mu     sync.Mutex
	prompt []int16
	pos    int
	buf    []int16 // received audio not yet sent back
	echoed uint64  // samples sent back
}

// maxEcho bounds the buffered audio: when the caller sends faster than
// the bot plays (clock drift, bursts), the oldest samples go.
const maxEcho = webrtc.SampleRate / 4

func newEchoSource(p []int16) *echoSource { return &echoSource{prompt: p} }

// ReadSamples implements webrtc.AudioSource.
func (s *echoSource) ReadSamples(p []int16) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if s.pos < len(s.prompt) {
		n = copy(p, s.prompt[s.pos:])
		s.pos += n
	} else {
		n = copy(p, s.buf)
		s.buf = s.buf[:copy(s.buf, s.buf[n:])]
		s.echoed += uint64(n)
	}
	clear(p[n:])
	return len(p), nil
}

// received takes one RTP packet from the caller: G.711 audio is decoded
// and queued for the echo once the prompt is over; anything else (Opus,
// telephone-event) is not echoed.
func (s *echoSource) received(track *pion.TrackRemote, pkt *rtp.Packet) {
	var decode func(byte) int16
	switch mt := track.Codec().MimeType; {
	case strings.EqualFold(mt, pion.MimeTypePCMU):
		decode = webrtc.DecodeMuLaw
	case strings.EqualFold(mt, pion.MimeTypePCMA):
		decode = webrtc.DecodeALaw
	default:
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pos < len(s.prompt) {
		return
	}
	for _, b := range pkt.Payload {
		s.buf = append(s.buf, decode(b))
	}
	if over := len(s.buf) - maxEcho; over > 0 {
		s.buf = s.buf[:copy(s.buf, s.buf[over:])]
	}
}

// status returns how much audio was echoed (ms) and whether the prompt
// is still playing.
func (s *echoSource) status() (echoedMs uint64, prompt bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.echoed * 1000 / webrtc.SampleRate, s.pos < len(s.prompt)
}
