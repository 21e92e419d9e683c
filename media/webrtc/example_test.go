package webrtc_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/webrtc"
)

// Two handlers in one process negotiate a call in which Bob answers on
// hold; no media is awaited.
func Example() {
	ctx := context.Background()
	cfg := webrtc.Config{LoopbackOnly: true} // both ends on this machine
	alice, err := webrtc.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Close()
	bob, err := webrtc.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Close()
	alice.SetAudioSource(webrtc.Tone(440))

	offer, err := alice.GetDescription(ctx, media.Options{}) // an INVITE's body
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := bob.SetDescription(ctx, offer, media.Options{}); err != nil {
		fmt.Println(err)
		return
	}
	answer, err := bob.GetDescription(ctx, media.Options{Hold: true}) // the 200 OK's
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := alice.SetDescription(ctx, answer, media.Options{}); err != nil {
		fmt.Println(err)
		return
	}
	a, b := alice.Stats().Audio, bob.Stats().Audio
	fmt.Printf("alice: %s, sending %q\n", a.Direction, a.Codec)
	fmt.Printf("bob: %s, sending %q\n", b.Direction, b.Codec)
	// Output:
	// alice: recvonly, sending ""
	// bob: sendonly, sending "audio/PCMU"
}

// Video from a file: a source of encoded frames for Handler.SetVideoSource,
// here read to its end to show what it holds.
func ExampleNewIVFSource() {
	f, err := os.Open("testdata/clip.ivf")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	src, err := webrtc.NewIVFSource(f)
	if err != nil {
		fmt.Println(err)
		return
	}
	frames, length := 0, time.Duration(0)
	for {
		fr, err := src.ReadFrame()
		if err != nil {
			break // io.EOF
		}
		frames++
		length += fr.Duration
	}
	fmt.Println(src.Codec(), frames, "frames,", length.Round(time.Millisecond))
	// Output: video/VP8 30 frames, 2s
}
