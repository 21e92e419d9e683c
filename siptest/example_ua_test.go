package siptest_test

import (
	"context"
	"fmt"
	"strings"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/siptest"
)

// Two sip.UserAgents exchange a MESSAGE over a Network, through
// TransportOptions.ListenPacket. In a test, run this inside synctest.Test:
// Links may then have delays and losses, and the UserAgents' timers run
// on virtual time.
func ExampleNetwork_PacketListener() {
	n := siptest.NewNetwork(1)
	defer n.Close()
	ctx := context.Background()
	start := func(name, addr string, d sip.UserAgentDelegate) *sip.UserAgent {
		ua, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI: "sip:" + name + "@" + addr,
			Transport: sip.TransportOptions{
				Listen:       []string{"udp://" + addr},
				ListenPacket: n.PacketListener(name),
			},
			Delegate: d,
		})
		if err == nil {
			err = ua.Start(ctx)
		}
		if err != nil {
			panic(err)
		}
		return ua
	}
	got := make(chan string, 1)
	bob := start("bob", "192.0.2.2:5060", sip.UserAgentDelegate{
		OnMessage: func(r *sip.IncomingRequest) {
			got <- string(r.Request.Body)
			_ = r.Accept(context.Background())
		},
	})
	defer bob.Stop(ctx)
	alice := start("alice", "192.0.2.1:5060", sip.UserAgentDelegate{})
	defer alice.Stop(ctx)

	m, _ := sip.NewMessager(alice, "sip:bob@192.0.2.2:5060", []byte("hello bob"), "text/plain", sip.RequestOptions{})
	if err := m.Message(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("bob got:", <-got)
	fmt.Println(strings.Join(n.Flow(), "\n"))
	// Output:
	// bob got: hello bob
	// alice→bob MESSAGE
	// bob→alice 200
}
