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

// A loop that gets received messages in batches (OnMessages) and sends
// its answers inside Transport.Batch, so that they leave together
// (sendmmsg on Linux).
func ExampleTransport_Batch() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got := make(chan []transport.Incoming, 16)
	server := transport.New(transport.Config{OnMessages: func(ins []transport.Incoming) {
		got <- append([]transport.Incoming(nil), ins...) // the slice is reused: copy it
	}})
	defer server.Close()
	addr, err := server.Listen(ctx, transport.UDP, "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}

	client := transport.New(transport.Config{})
	defer client.Close()
	client.Batch(func() {
		for i := range 3 {
			from, _ := message.ParseAddress("<sip:alice@example.com>")
			to, _ := message.ParseAddress("<sip:bob@example.com>")
			req := message.NewRequest("MESSAGE", message.MustParseURI("sip:bob@example.com"), from, to)
			req.Body = []byte(fmt.Sprint("message ", i))
			if _, err := client.TrySendRequest(req, transport.Target{Proto: transport.UDP, Addr: addr}, transport.SendOptions{}); err != nil {
				fmt.Println(err)
			}
		}
	})

	n := 0
	for n < 3 {
		select {
		case ins := <-got:
			n += len(ins)
		case <-ctx.Done():
			fmt.Println("timed out")
			return
		}
	}
	fmt.Println("received", n, "messages; datagrams written:", client.Stats().DatagramsWritten)
	// Output: received 3 messages; datagrams written: 3
}
