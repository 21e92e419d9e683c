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

// A server whose loop gets received requests in batches (OnMessages)
// and answers each batch inside Transport.Batch, so that the responses
// leave together (sendmmsg on Linux).
func ExampleTransport_Batch() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	batches := make(chan []transport.Incoming, 16)
	server := transport.New(transport.Config{OnMessages: func(ins []transport.Incoming) {
		batches <- append([]transport.Incoming(nil), ins...) // the slice is reused: copy it
	}})
	defer server.Close()
	addr, err := server.Listen(ctx, transport.UDP, "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // the server's loop
		defer close(stopped)
		for {
			var ins []transport.Incoming
			select {
			case ins = <-batches:
			case <-stop:
				return
			}
			server.Batch(func() {
				for _, in := range ins {
					if req, ok := in.Msg.(*message.Request); ok {
						if _, err := server.TrySendResponse(message.NewResponse(req, 200, "OK", ""), in.Flow, nil); err != nil {
							fmt.Println(err)
						}
					}
				}
			})
		}
	}()

	responses := make(chan transport.Incoming, 16)
	client := transport.New(transport.Config{OnMessage: func(in transport.Incoming) { responses <- in }})
	defer client.Close()
	for range 3 {
		from, _ := message.ParseAddress("<sip:alice@example.com>")
		to, _ := message.ParseAddress("<sip:bob@example.com>")
		req := message.NewRequest("OPTIONS", message.MustParseURI("sip:bob@example.com"), from, to)
		if _, err := client.SendRequest(ctx, req, transport.Target{Proto: transport.UDP, Addr: addr}); err != nil {
			fmt.Println(err)
			return
		}
	}
	for range 3 {
		select {
		case in := <-responses:
			fmt.Println(in.Msg.(*message.Response).StatusCode)
		case <-ctx.Done():
			fmt.Println("timed out")
			return
		}
	}
	close(stop)
	<-stopped
	fmt.Println("responses written:", server.Stats().DatagramsWritten)
	// Output:
	// 200
	// 200
	// 200
	// responses written: 3
}
