package main

import (
	"context"
	"strings"
	"sync"
	"time"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/examples/bot/botcore"
	"github.com/sipua/sip/media/webrtc"
)

// answerer is what the webphone needs of a bot: something that takes the
// calls its UserAgent receives, and a picture of them for the page.
type answerer interface {
	// Invite takes an incoming call; it is called on the UserAgent's
	// callback goroutine and must not block.
	Invite(inv *sip.Invitation)
	// Calls returns the state of the recent calls, oldest first.
	Calls() []callStatus
}

// callStatus is one call as the bot sees it; the page shows it and the
// test asserts on it.
type callStatus struct {
	From            string `json:"from"`
	State           string `json:"state"`
	Digits          string `json:"digits"`
	Echoing         bool   `json:"echoing"` // the prompt is over
	Codec           string `json:"codec"`
	ICE             string `json:"ice"`
	PacketsReceived uint64 `json:"packetsReceived"`
	PacketsSent     uint64 `json:"packetsSent"`
	Ended           string `json:"ended,omitempty"`
}

// bot is the example bot of examples/bot (package botcore: answers, plays
// a prompt, collects DTMF by RFC 4733 or INFO, echoes) on the webphone's
// UserAgent, plus what the page shows: each call's media counters (from
// its WebRTC handler) and what the bot's events said about it, kept for
// the last maxCalls calls, ended ones included.
type bot struct {
	core *botcore.Bot

	mu    sync.Mutex
	calls []*botCall // oldest first, at most maxCalls
}

// maxCalls is how many calls the page can see.
const maxCalls = 10

type botCall struct {
	callID string
	inv    *sip.Invitation
	// Set from the bot's events, under bot.mu.
	digits  string
	echoing bool
	ended   string
}

// newBot returns the bot; cfg's URI is set by the caller, its OnEvent is
// taken.
func newBot(cfg botcore.Config) (*bot, error) {
	b := &bot{}
	cfg.OnEvent = b.event
	core, err := botcore.New(cfg)
	if err != nil {
		return nil, err
	}
	b.core = core
	return b, nil
}

// Invite implements answerer.
func (b *bot) Invite(inv *sip.Invitation) {
	b.mu.Lock()
	b.calls = append(b.calls, &botCall{callID: inv.Request.Header.Get("Call-ID"), inv: inv})
	if len(b.calls) > maxCalls {
		b.calls = b.calls[len(b.calls)-maxCalls:]
	}
	b.mu.Unlock()
	b.core.Handle(inv)
}

// event records what the page shows of the bot's events.
func (b *bot) event(e botcore.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var c *botCall
	for _, x := range b.calls {
		if x.callID == e.CallID {
			c = x
		}
	}
	if c == nil {
		return
	}
	switch e.Kind {
	case botcore.EventDigit:
		if len(c.digits) < 256 {
			c.digits += e.Digits
		}
	case botcore.EventPromptDone:
		c.echoing = true
	case botcore.EventEnded:
		c.ended = e.Reason.String()
	case botcore.EventError:
		c.ended = "error: " + e.Err.Error()
	}
}

// Calls implements answerer.
func (b *bot) Calls() []callStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]callStatus, 0, len(b.calls))
	for _, c := range b.calls {
		s := callStatus{State: c.inv.State().String(), Digits: c.digits, Echoing: c.echoing, Ended: c.ended}
		if a, err := c.inv.Request.Header.From(); err == nil {
			s.From = a.URI.String()
		}
		if h, ok := c.inv.MediaHandler().(*webrtc.Handler); ok {
			st := h.Stats()
			s.Codec = strings.TrimPrefix(st.Audio.Codec, "audio/")
			s.ICE = st.ICEConnectionState.String()
			s.PacketsReceived, s.PacketsSent = st.Audio.PacketsReceived, st.Audio.PacketsSent
		}
		out = append(out, s)
	}
	return out
}

// Close hangs up the calls in progress and waits for them (5 s at most).
func (b *bot) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.core.Close(ctx)
}
