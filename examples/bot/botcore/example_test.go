package botcore_test

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/sipua/sip/examples/bot/botcore"
	"github.com/sipua/sip/media/wav"
	"github.com/sipua/sip/media/webrtc"
)

// A bot for browsers: it registers over secure WebSocket, answers with
// WebRTC media, plays hello.wav, logs each caller's digits and echoes
// until SIGTERM.
func Example() {
	prompt, err := wav.ReadFile("hello.wav")
	if err != nil {
		log.Fatal(err)
	}
	b, err := botcore.New(botcore.Config{
		URI:      "sip:bot@example.com",
		Password: "secret",
		Server:   "wss://sip.example.com/ws",
		Media:    botcore.WebRTC,
		WebRTC:   webrtc.Config{},
		Prompt:   prompt,
		OnEvent: func(e botcore.Event) {
			if e.Kind == botcore.EventDigits {
				log.Printf("call %d from %s: %s", e.Call, e.From, e.Digits)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := b.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
