package transport_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// Two Transports talk over UDP on loopback: the client resolves a URI,
// sends OPTIONS, the server sees received/rport in the top Via and
// answers on the request's flow.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	requests := make(chan transport.Incoming, 1)
	server := transport.New(transport.Config{OnMessage: func(in transport.Incoming) { requests <- in }})
	defer server.Close()
	addr, err := server.Listen(ctx, transport.UDP, "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}

	responses := make(chan transport.Incoming, 1)
	client := transport.New(transport.Config{OnMessage: func(in transport.Incoming) { responses <- in }})
	defer client.Close()
	if _, err := client.Listen(ctx, transport.UDP, "127.0.0.1:0"); err != nil {
		fmt.Println(err)
		return
	}

	uri := message.MustParseURI("sip:bob@" + addr.String())
	targets, err := client.Resolve(ctx, uri)
	if err != nil {
		fmt.Println(err)
		return
	}
	from, _ := message.ParseAddress("<sip:alice@example.com>")
	to, _ := message.ParseAddress("<sip:bob@example.com>")
	req := message.NewRequest("OPTIONS", uri, from, to)
	flow, err := client.SendRequest(ctx, req, targets...) // adds the Via
	if err != nil {
		fmt.Println(err)
		return
	}

	in := <-requests
	got := in.Msg.(*message.Request)
	via, _ := got.Header.TopVia()
	rport, _ := via.RPort()
	fmt.Println(got.Method, via.Transport, rport == int(flow.Local.Port()))

	if _, err := server.SendResponse(ctx, message.NewResponse(got, 200, "", ""), in.Flow); err != nil {
		fmt.Println(err)
		return
	}
	out := <-responses
	fmt.Println(out.Msg.(*message.Response).StatusLine(), out.Flow == flow)
	// Output:
	// OPTIONS UDP true
	// SIP/2.0 200 OK true
}

// An Upstream keeps a UA connected to its WebSocket server, failing over
// to a second one and reconnecting with back-off; OnState drives the UA's
// onConnect/onDisconnect.
func ExampleTransport_Connect() {
	tr := transport.New(transport.Config{
		// Dead-peer detection: a WebSocket ping every 20 s, 5 s to answer.
		Keepalive: transport.Keepalive{Interval: 20 * time.Second, Timeout: 5 * time.Second},
	})
	defer tr.Close()
	up, err := tr.Connect(transport.UpstreamConfig{
		Servers: []transport.Server{
			{Addr: "wss://sip.example.com/ws", Priority: 1},
			{Addr: "wss://backup.example.com/ws", Priority: 2},
		},
		Backoff: transport.Backoff{Min: time.Second, Max: time.Minute},
		OnState: func(e transport.StateEvent) {
			switch e.State {
			case transport.Connected:
				fmt.Println("connected to", e.Server)
			case transport.Disconnected:
				fmt.Println("disconnected:", e.Err, "retry in", e.RetryIn)
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer up.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := up.WaitConnected(ctx); err == nil {
		from, _ := message.ParseAddress("<sip:alice@example.com>")
		req := message.NewRequest("REGISTER", message.MustParseURI("sip:example.com"), from, from)
		_, _ = up.SendRequest(ctx, req)
	}
}
