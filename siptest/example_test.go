package siptest_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"strings"
	"time"

	"github.com/sipua/sip/siptest"
)

// Two endpoints over a perfect link exchange an OPTIONS request and its
// response. In a test, run this inside synctest.Test so that Delays cost no
// wall time.
func Example() {
	n := siptest.NewNetwork(1)
	defer n.Close()
	alice, err := n.Listen("alice", siptest.Addr("192.0.2.1:5060"))
	if err != nil {
		log.Fatal(err)
	}
	bob, err := n.Listen("bob", siptest.Addr("192.0.2.2:5060"))
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	if err := alice.Send(bob.Addr(), []byte("OPTIONS sip:bob@192.0.2.2 SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n")); err != nil {
		log.Fatal(err)
	}
	req, err := bob.Recv(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bob got %s from %v\n", strings.SplitN(string(req.Data), "\r\n", 2)[0], req.From)
	if err := bob.Send(req.From, []byte("SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n\r\n")); err != nil {
		log.Fatal(err)
	}
	if _, err := alice.Recv(ctx); err != nil {
		log.Fatal(err)
	}

	fmt.Println(strings.Join(n.Flow(), "\n"))
	s := n.Stats()
	fmt.Println("sent", s.Sent, "delivered", s.Delivered)
	// Output:
	// bob got OPTIONS sip:bob@192.0.2.2 SIP/2.0 from 192.0.2.1:5060
	// alice→bob OPTIONS
	// bob→alice 200
	// sent 2 delivered 2
}

// Ladder renders a trace, here made from received Packets, as a diagram.
func ExampleLadder() {
	alice, bob := siptest.TestNetAddr(1, 5060), siptest.TestNetAddr(2, 5060)
	t0 := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	pkts := []siptest.Packet{
		{ID: 1, From: alice, To: bob, SentAt: t0, DeliveredAt: t0.Add(40 * time.Millisecond),
			Data: []byte("INVITE sip:bob@192.0.2.2 SIP/2.0\r\n\r\n")},
		{ID: 2, From: bob, To: alice, SentAt: t0.Add(50 * time.Millisecond), DeliveredAt: t0.Add(90 * time.Millisecond),
			Data: []byte("SIP/2.0 180 Ringing\r\n\r\n")},
		{ID: 3, From: bob, To: alice, SentAt: t0.Add(2 * time.Second), DeliveredAt: t0.Add(2040 * time.Millisecond),
			Data: []byte("SIP/2.0 200 OK\r\n\r\n")},
	}
	opts := siptest.LadderOptions{Names: map[netip.AddrPort]string{alice: "alice", bob: "bob"}}
	fmt.Print(siptest.Ladder(siptest.PacketEvents(pkts), opts))
	fmt.Println(strings.Join(siptest.Flow(siptest.PacketEvents(pkts), opts), "\n"))
	// Output:
	//   0.000s  alice  ────INVITE─────▶  bob    +40ms
	//   0.050s  alice  ◀──180 Ringing──  bob    +40ms
	//   2.000s  alice  ◀────200 OK─────  bob    +40ms
	// alice→bob INVITE
	// bob→alice 180
	// bob→alice 200
}
