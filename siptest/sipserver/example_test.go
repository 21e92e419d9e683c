package sipserver_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/siptest/sipserver"
)

// A registrar and proxy on loopback WebSocket, two sip.UserAgents that
// register with it (with digest authentication), and a MESSAGE from one
// to the other through it. Flow shows what the server saw; Ladder draws
// the same with times, for a demo.
func Example() {
	ctx := context.Background()
	srv, err := sipserver.New(sipserver.Options{
		Domain: "sipua.test",
		Users:  map[string]string{"alice": "alice-pw", "bob": "bob-pw"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	if _, err := srv.Listen(ctx, "ws", "127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}

	got := make(chan string, 1)
	start := func(user string, d sip.UserAgentDelegate) *sip.UserAgent {
		ua, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI:                   srv.AOR(user),
			AuthorizationPassword: user + "-pw",
			Transport:             sip.TransportOptions{Server: srv.WSURL()},
			Delegate:              d,
		})
		if err != nil {
			log.Fatal(err)
		}
		if err := ua.Start(ctx); err != nil {
			log.Fatal(err)
		}
		reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{})
		if err != nil {
			log.Fatal(err)
		}
		if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
			log.Fatal(err)
		}
		return ua
	}
	alice := start("alice", sip.UserAgentDelegate{})
	defer alice.Stop(ctx)
	bob := start("bob", sip.UserAgentDelegate{
		OnMessage: func(r *sip.IncomingRequest) {
			got <- string(r.Request.Body)
			_ = r.Accept(context.Background())
		},
	})
	defer bob.Stop(ctx)

	m, err := sip.NewMessager(alice, srv.AOR("bob"), []byte("hello bob"), "text/plain", sip.RequestOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Message(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob got:", <-got)
	fmt.Println("bob's binding:", srv.Bindings("bob")[0].Flow.Proto)
	fmt.Println(strings.Join(srv.Flow(), "\n"))
	// Output:
	// bob got: hello bob
	// bob's binding: WS
	// alice→proxy REGISTER
	// proxy→alice 401
	// alice→proxy REGISTER
	// proxy→alice 200
	// bob→proxy REGISTER
	// proxy→bob 401
	// bob→proxy REGISTER
	// proxy→bob 200
	// alice→proxy MESSAGE
	// proxy→bob MESSAGE
	// bob→proxy 200
	// proxy→alice 200
}
