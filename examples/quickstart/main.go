// Command quickstart is the README's quick start as a program: a
// UserAgent registers with a SIP server, calls a target, talks (WebRTC
// audio, silence here) and hangs up.
//
//	go run ./examples/quickstart -server wss://sip.example.com/ws -user alice -password secret \
//	    -domain example.com -target sip:bob@example.com
//
// Without -server it starts a local registrar (siptest/sipserver) on a
// loopback WebSocket and a second UserAgent, bob, that answers, so that
// `go run ./examples/quickstart` works on its own.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media/webrtc"
	"github.com/sipua/sip/siptest/sipserver"
)

// The quick start of README.md is the body of this function, verbatim
// (TestREADME checks it).

// quickstart begins
func call(ctx context.Context, server, user, password, domain, target string) error {
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:" + user + "@" + domain,
		AuthorizationPassword: password,
		Transport:             sip.TransportOptions{Server: server}, // wss://…, ws://…, sip:host;transport=tcp
		MediaFactory:          webrtc.NewFactory(webrtc.Config{}),   // WebRTC audio; rtp.NewFactory for phones
	})
	if err != nil {
		return err
	}
	if err := ua.Start(ctx); err != nil {
		return err
	}
	defer ua.Stop(context.Background())

	reg, _ := sip.NewRegisterer(ua, sip.RegistererOptions{})
	if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
		return fmt.Errorf("register: %w", err) // *sip.ResponseError, sip.ErrAuthFailed …
	}
	inv, _ := sip.NewInviter(ua, target, sip.InviterOptions{})
	if err := inv.Invite(ctx, sip.InviteOptions{}); err != nil { // returns when answered
		return fmt.Errorf("call: %w", err)
	}
	time.Sleep(2 * time.Second) // talk: inv.MediaHandler() is the call's WebRTC media
	return inv.Bye(ctx)
}

// quickstart ends

func main() {
	server := flag.String("server", "", "SIP server (wss://…, ws://…, sip:…); empty: a local registrar with a bob who answers")
	user := flag.String("user", "alice", "user name")
	password := flag.String("password", "alice-secret", "password")
	domain := flag.String("domain", sipserver.DefaultDomain, "SIP domain")
	target := flag.String("target", "sip:bob@"+sipserver.DefaultDomain, "whom to call")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if *server == "" {
		stop, url, err := local(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "quickstart:", err)
			os.Exit(1)
		}
		defer stop()
		*server = url
	}
	if err := call(ctx, *server, *user, *password, *domain, *target); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
	fmt.Println("registered, called", *target, "and hung up")
}

// local starts a registrar for alice and bob on a loopback WebSocket and
// bob, who answers every call.
func local(ctx context.Context) (stop func(), url string, err error) {
	srv, err := sipserver.New(sipserver.Options{
		Users:     map[string]string{"alice": "alice-secret", "bob": "bob-secret"},
		ProxyAuth: true,
		Listen:    []string{"ws://127.0.0.1:0"},
	})
	if err != nil {
		return nil, "", err
	}
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return nil, "", err
	}
	bob, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   srv.AOR("bob"),
		AuthorizationPassword: "bob-secret",
		Transport:             sip.TransportOptions{Server: srv.WSURL()},
		MediaFactory:          webrtc.NewFactory(webrtc.Config{}),
		Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			go func() { _ = inv.Accept(ctx, sip.AcceptOptions{}) }()
		}},
	})
	if err == nil {
		err = bob.Start(ctx)
	}
	if err != nil {
		srv.Close()
		return nil, "", err
	}
	stop = func() {
		_ = bob.Stop(context.Background())
		srv.Close()
	}
	reg, _ := sip.NewRegisterer(bob, sip.RegistererOptions{})
	if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
		stop()
		return nil, "", fmt.Errorf("bob: register: %w", err)
	}
	return stop, srv.WSURL(), nil
}
