package sip_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest/sipserver"
)

// registrar starts a registrar/proxy on loopback WebSocket for the
// examples.
func registrar(ctx context.Context) *sipserver.Server {
	srv, err := sipserver.New(sipserver.Options{
		Domain: "sipua.test",
		Users:  map[string]string{"alice": "alice-pw", "bob": "bob-pw"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := srv.Listen(ctx, "ws", "127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	return srv
}

func started(ctx context.Context, srv *sipserver.Server, user string, d sip.UserAgentDelegate) *sip.UserAgent {
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   srv.AOR(user),
		AuthorizationPassword: user + "-pw",
		Transport:             sip.TransportOptions{Server: srv.WSURL()},
		MediaFactory:          sip.NoMedia,
		Delegate:              d,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := ua.Start(ctx); err != nil {
		log.Fatal(err)
	}
	return ua
}

// Register with a registrar that asks for digest credentials, then
// unregister.
func ExampleRegisterer() {
	ctx := context.Background()
	srv := registrar(ctx)
	defer srv.Close()
	ua := started(ctx, srv, "alice", sip.UserAgentDelegate{})
	defer ua.Stop(ctx)

	reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{Expires: 300})
	if err != nil {
		log.Fatal(err)
	}
	states := make(chan sip.RegistererState, 4)
	reg.OnStateChange(func(s sip.RegistererState) { states <- s }) // runs on the callback goroutine
	if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("bindings:", len(reg.Bindings()), "expires:", reg.Bindings()[0].Expires)
	if err := reg.Unregister(ctx, sip.UnregisterOptions{}); err != nil {
		log.Fatal(err)
	}
	_ = reg.Dispose(ctx)
	for range 3 {
		fmt.Println("state:", <-states)
	}
	// Output:
	// bindings: 1 expires: 5m0s
	// state: Registered
	// state: Unregistered
	// state: Terminated
}

// Send a MESSAGE through the proxy to a registered user.
func ExampleMessager() {
	ctx := context.Background()
	srv := registrar(ctx)
	defer srv.Close()
	got := make(chan string, 1)
	bob := started(ctx, srv, "bob", sip.UserAgentDelegate{OnMessage: func(m *sip.IncomingRequest) {
		got <- string(m.Request.Body)
	}})
	defer bob.Stop(ctx)
	reg, _ := sip.NewRegisterer(bob, sip.RegistererOptions{})
	if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
		log.Fatal(err)
	}
	alice := started(ctx, srv, "alice", sip.UserAgentDelegate{})
	defer alice.Stop(ctx)

	m, err := sip.NewMessager(alice, srv.AOR("bob"), []byte("lunch?"), "text/plain", sip.RequestOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Message(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob got:", <-got)

	// To a user who is not registered: the proxy answers 480.
	m, _ = sip.NewMessager(alice, srv.AOR("alice"), []byte("anyone?"), "text/plain", sip.RequestOptions{})
	err = m.Message(ctx)
	var re *sip.ResponseError
	if errors.As(err, &re) {
		fmt.Println("alice:", re.StatusCode, re.Reason)
	}
	// Output:
	// bob got: lunch?
	// alice: 480 Temporarily Unavailable
}

// Call a registered user, who answers; then hang up.
func ExampleInviter() {
	ctx := context.Background()
	srv := registrar(ctx)
	defer srv.Close()
	bob := started(ctx, srv, "bob", sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		_ = inv.Progress(ctx, sip.ProgressOptions{})
		_ = inv.Accept(ctx, sip.AcceptOptions{})
	}})
	defer bob.Stop(ctx)
	reg, _ := sip.NewRegisterer(bob, sip.RegistererOptions{})
	if err := reg.Register(ctx, sip.RegisterOptions{}); err != nil {
		log.Fatal(err)
	}
	alice := started(ctx, srv, "alice", sip.UserAgentDelegate{})
	defer alice.Stop(ctx)

	call, err := sip.NewInviter(alice, srv.AOR("bob"), sip.InviterOptions{})
	if err != nil {
		log.Fatal(err)
	}
	// The call's callbacks run one after the other, in order, on a
	// goroutine of their own: Invite may return before they have.
	events := make(chan string, 8)
	call.OnStateChange(func(s sip.SessionState) { events <- fmt.Sprint("state: ", s) })
	if err := call.Invite(ctx, sip.InviteOptions{
		OnProgress: func(r *message.Response) { events <- fmt.Sprint("progress: ", r.StatusCode) },
	}); err != nil {
		log.Fatal(err)
	}
	if err := call.Bye(ctx); err != nil {
		log.Fatal(err)
	}
	<-call.Done()
	for range 5 {
		fmt.Println(<-events)
	}
	fmt.Println("ended by:", call.EndReason())
	// Output:
	// state: Establishing
	// progress: 180
	// state: Established
	// state: Terminating
	// state: Terminated
	// ended by: local BYE
}
