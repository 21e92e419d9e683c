package sip_test

import (
	"context"
	"fmt"
	"time"

	sip "github.com/sipua/sip"
)

// Two user agents on this machine: alice sends bob a MESSAGE.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	got := make(chan string, 1)
	bob, _ := sip.NewUserAgent(sip.UserAgentOptions{
		URI:       "sip:bob@127.0.0.1",
		Transport: sip.TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
		Delegate: sip.UserAgentDelegate{
			OnMessage: func(m *sip.IncomingRequest) {
				got <- string(m.Request.Body)
				_ = m.Accept(context.Background())
			},
		},
	})
	if err := bob.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Stop(ctx)

	alice, _ := sip.NewUserAgent(sip.UserAgentOptions{
		URI:       "sip:alice@127.0.0.1",
		Transport: sip.TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
	})
	if err := alice.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Stop(ctx)

	m, _ := sip.NewMessager(alice, bob.ContactURI().String(), []byte("hello bob"), "text/plain", sip.RequestOptions{})
	if err := m.Message(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("bob got:", <-got)
	// Output:
	// bob got: hello bob
}
