// Command demo runs a complete call on this machine, with nothing to
// configure: an embedded registrar and proxy listens on a loopback
// WebSocket, alice and bob register through it with digest
// authentication, alice calls bob, WebRTC audio (a tone each way, G.711
// over DTLS-SRTP) flows both ways, alice sends bob a MESSAGE, bob hangs
// up. Every SIP message the proxy sees is printed as it passes, and the
// media counters at the end.
//
//	go run ./examples/demo
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/media/webrtc"
	"github.com/sipua/sip/siptest/sipserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n== "+format+"\n", args...)
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()

	users := map[string]string{"alice": "alice-secret", "bob": "bob-secret"}
	srv, err := sipserver.New(sipserver.Options{
		Domain:    "sipua.test",
		Users:     users,
		ProxyAuth: true,
		Listen:    []string{"ws://127.0.0.1:0"},
		OnEvent: func(e sipserver.Event) {
			fmt.Printf("  %6.3fs  %s\n", time.Since(start).Seconds(), e)
		},
	})
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	defer srv.Close()
	step("registrar and proxy on %s", srv.WSURL())

	// Each side sends a tone: alice 440 Hz, bob 660 Hz.
	newUA := func(name string, tone float64, d sip.UserAgentDelegate) (*sip.UserAgent, error) {
		mf := webrtc.NewFactory(webrtc.Config{
			LoopbackOnly: true,
			Setup: func(h *webrtc.Handler, _ media.SessionInfo) {
				h.SetAudioSource(webrtc.Tone(tone))
			},
		})
		return sip.NewUserAgent(sip.UserAgentOptions{
			URI:                   "sip:" + name + "@sipua.test",
			AuthorizationPassword: users[name],
			Transport:             sip.TransportOptions{Server: srv.WSURL()},
			MediaFactory:          mf,
			Delegate:              d,
		})
	}

	invitations := make(chan *sip.Invitation, 1)
	messages := make(chan string, 1)
	bob, err := newUA("bob", 660, sip.UserAgentDelegate{
		OnInvite:  func(inv *sip.Invitation) { invitations <- inv },
		OnMessage: func(m *sip.IncomingRequest) { messages <- string(m.Request.Body) },
	})
	if err != nil {
		return err
	}
	alice, err := newUA("alice", 440, sip.UserAgentDelegate{})
	if err != nil {
		return err
	}
	for _, ua := range []*sip.UserAgent{alice, bob} {
		if err := ua.Start(ctx); err != nil {
			return err
		}
		defer ua.Stop(context.Background())
	}

	step("alice and bob register")
	for _, ua := range []*sip.UserAgent{alice, bob} {
		r, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
		if err != nil {
			return err
		}
		if err := r.Register(ctx, sip.RegisterOptions{}); err != nil {
			return fmt.Errorf("register %s: %w", ua.URI(), err)
		}
	}

	step("alice calls bob")
	go func() {
		inv := <-invitations
		_ = inv.Progress(ctx, sip.ProgressOptions{})
		if err := inv.Accept(ctx, sip.AcceptOptions{}); err != nil {
			fmt.Println("bob could not answer:", err)
		}
		invitations <- inv
	}()
	call, err := sip.NewInviter(alice, "sip:bob@sipua.test", sip.InviterOptions{})
	if err != nil {
		return err
	}
	if err := call.Invite(ctx, sip.InviteOptions{}); err != nil {
		return fmt.Errorf("call: %w", err)
	}
	answered := <-invitations

	step("audio flows for 2 seconds")
	time.Sleep(2 * time.Second)
	as := call.MediaHandler().(*webrtc.Handler).Stats()
	bs := answered.MediaHandler().(*webrtc.Handler).Stats()
	fmt.Printf("  alice: ICE %s, DTLS %s, %s: sent %d packets / %d bytes, received %d packets / %d bytes\n",
		as.ICEConnectionState, as.DTLSState, as.Audio.Codec, as.Audio.PacketsSent, as.Audio.BytesSent, as.Audio.PacketsReceived, as.Audio.BytesReceived)
	fmt.Printf("  bob:   ICE %s, DTLS %s, %s: sent %d packets / %d bytes, received %d packets / %d bytes\n",
		bs.ICEConnectionState, bs.DTLSState, bs.Audio.Codec, bs.Audio.PacketsSent, bs.Audio.BytesSent, bs.Audio.PacketsReceived, bs.Audio.BytesReceived)
	if as.Audio.PacketsReceived == 0 || bs.Audio.PacketsReceived == 0 {
		return fmt.Errorf("no audio: alice got %d packets, bob %d", as.Audio.PacketsReceived, bs.Audio.PacketsReceived)
	}

	step("alice sends bob a MESSAGE")
	m, err := sip.NewMessager(alice, "sip:bob@sipua.test", []byte("Hello Bob, can you hear my 440 Hz?"), "text/plain", sip.RequestOptions{})
	if err != nil {
		return err
	}
	if err := m.Message(ctx); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	fmt.Printf("  bob got: %q\n", <-messages)

	step("bob hangs up")
	if err := answered.Bye(ctx); err != nil {
		return fmt.Errorf("bye: %w", err)
	}
	select {
	case <-call.Done():
	case <-ctx.Done():
		return fmt.Errorf("alice's side did not end")
	}
	fmt.Printf("  alice: %s, bob: %s\n", call.EndReason(), answered.EndReason())

	step("done in %.1fs: %s", time.Since(start).Seconds(), strings.Join([]string{"register", "call", "audio both ways", "MESSAGE", "BYE"}, ", "))
	return nil
}
