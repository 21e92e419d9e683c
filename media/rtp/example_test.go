package rtp_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/audio"
	"github.com/sipua/sip/media/rtp"
)

// Two handlers in one process negotiate a call on 127.0.0.1: Alice sends
// a tone, Bob hears it and answers with a DTMF tone. In a UserAgent,
// rtp.NewFactory(cfg) as UserAgentOptions.MediaFactory does the
// GetDescription and SetDescription steps.
func Example() {
	ctx := context.Background()
	cfg := rtp.Config{IP: net.IPv4(127, 0, 0, 1)}
	alice, err := rtp.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()
	bob, err := rtp.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()

	alice.SetAudioSource(rtp.Tone(440))
	heard := make(chan struct{}, 1)
	bob.OnAudio(func(pcm []int16) {
		if len(pcm) > 0 && pcm[len(pcm)/2] != 0 {
			select {
			case heard <- struct{}{}:
			default:
			}
		}
	})
	digits := make(chan rune, 1)
	alice.OnDTMF(func(tone rune, d time.Duration) { digits <- tone })

	offer, err := alice.GetDescription(ctx, media.Options{}) // an INVITE's body
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := bob.SetDescription(ctx, offer, media.Options{}); err != nil {
		fmt.Println(err)
		return
	}
	answer, err := bob.GetDescription(ctx, media.Options{}) // the 200 OK's
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := alice.SetDescription(ctx, answer, media.Options{}); err != nil {
		fmt.Println(err)
		return
	}
	s := alice.Stats()
	fmt.Println("alice sends", s.Codec, s.Direction)

	select {
	case <-heard:
		fmt.Println("bob hears the tone")
	case <-time.After(2 * time.Second):
		fmt.Println("silence")
	}
	if err := bob.SendDTMF("7", 0); err != nil {
		fmt.Println(err)
		return
	}
	select {
	case d := <-digits:
		fmt.Printf("alice got DTMF %c\n", d)
	case <-time.After(2 * time.Second):
		fmt.Println("no DTMF")
	}
	// Output:
	// alice sends PCMU sendrecv
	// bob hears the tone
	// alice got DTMF 7
}

// A trunk-style call: G.722 preferred, SDES-SRTP required on both sides
// (RTP/SAVP with a=crypto), and a 10 s media timeout that would end the
// call (through the UserAgent) should the peer's media stop.
func Example_srtp() {
	ctx := context.Background()
	cfg := rtp.Config{
		IP:           net.IPv4(127, 0, 0, 1),
		Codecs:       []rtp.Codec{rtp.G722, rtp.PCMA, rtp.PCMU},
		SRTP:         rtp.SRTPRequired,
		MediaTimeout: 10 * time.Second,
	}
	alice, err := rtp.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()
	bob, err := rtp.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()
	alice.OnFailure(func(err error) { fmt.Println("media died:", err) })

	offer, _ := alice.GetDescription(ctx, media.Options{})
	if err := bob.SetDescription(ctx, offer, media.Options{}); err != nil {
		fmt.Println(err)
		return
	}
	answer, _ := bob.GetDescription(ctx, media.Options{})
	if err := alice.SetDescription(ctx, answer, media.Options{}); err != nil {
		fmt.Println(err)
		return
	}
	alice.SetAudioSource(rtp.Tone(1000))
	heard := make(chan struct{}, 1)
	bob.OnAudio(func(pcm []int16) {
		if audio.ToneRatio(pcm, 1000, rtp.SampleRate) > 0.5 {
			select {
			case heard <- struct{}{}:
			default:
			}
		}
	})
	select {
	case <-heard:
		s := bob.Stats()
		fmt.Println("bob hears the tone:", s.Codec, s.SRTP)
	case <-time.After(2 * time.Second):
		fmt.Println("silence")
	}
	// Output:
	// bob hears the tone: G722 AES_CM_128_HMAC_SHA1_80
}
