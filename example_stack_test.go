package sip_test

import (
	"context"
	"fmt"
	"log"

	sip "github.com/sipua/sip"
)

// Two accounts on one Stack share its WebSocket connection to the
// registrar: each registers with its own credentials, and a MESSAGE the
// registrar routes to bob's registered Contact reaches bob's account.
func ExampleStack() {
	ctx := context.Background()
	srv := registrar(ctx) // a registrar/proxy on loopback WebSocket
	defer srv.Close()

	stack, err := sip.NewStack(sip.StackOptions{Transport: sip.TransportOptions{Server: srv.WSURL()}})
	if err != nil {
		log.Fatal(err)
	}
	if err := stack.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer stack.Stop(ctx) // stops every account on it

	got := make(chan string, 1)
	for _, user := range []string{"alice", "bob"} {
		ua, err := stack.NewUserAgent(sip.UserAgentOptions{
			URI:                   srv.AOR(user),
			AuthorizationPassword: user + "-pw",
			Delegate: sip.UserAgentDelegate{OnMessage: func(r *sip.IncomingRequest) {
				got <- user + " got " + string(r.Request.Body)
			}},
		})
		if err != nil {
			log.Fatal(err)
		}
		if err := ua.Start(ctx); err != nil { // attaches: no socket of its own
			log.Fatal(err)
		}
		reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
		if err != nil {
			log.Fatal(err)
		}
		if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("one connection:", srv.Bindings("alice")[0].Flow == srv.Bindings("bob")[0].Flow)

	phone := started(ctx, srv, "alice", sip.UserAgentDelegate{}) // alice on another device: a UserAgent of its own
	defer phone.Stop(ctx)
	m, err := sip.NewMessager(phone, srv.AOR("bob"), []byte("hello"), "text/plain", sip.RequestOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Message(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-got)
	// Output:
	// one connection: true
	// bob got hello
}
