package replay_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/siptest"
	"github.com/sipua/sip/siptest/replay"
)

// startUA starts a sip.UserAgent on a siptest.Network; listen opens its
// UDP sockets.
func startUA(name, addr string, listen func(context.Context, string, string) (net.PacketConn, error)) *sip.UserAgent {
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:          "sip:" + name + "@" + addr,
		Transport:    sip.TransportOptions{Listen: []string{"udp://" + addr}, ListenPacket: listen},
		MediaFactory: sip.NoMedia,
	})
	if err == nil {
		err = ua.Start(context.Background())
	}
	if err != nil {
		panic(err)
	}
	return ua
}

// Record what a user agent exchanges with a peer, store it, and play the
// peer's side back to a new run of the user agent. In a test, run this
// inside synctest.Test so that every timer runs on virtual time.
func Example() {
	ctx := context.Background()

	// Record alice pinging bob with OPTIONS: alice's sockets go through
	// the Recorder.
	n := siptest.NewNetwork(1)
	defer n.Close()
	rec := &replay.Recorder{}
	bob := startUA("bob", "192.0.2.2:5060", n.PacketListener("bob"))
	alice := startUA("alice", "192.0.2.1:5060", rec.ListenPacket(n.PacketListener("alice")))
	if _, err := alice.Options(ctx, "sip:bob@192.0.2.2:5060", sip.RequestOptions{}); err != nil {
		panic(err)
	}
	alice.Stop(ctx)
	bob.Stop(ctx)
	tr := rec.Trace()
	tr.Title = "alice pings bob"
	tr.A.Name, tr.B.Name = "bob", "alice"
	var file bytes.Buffer
	if err := replay.WriteTrace(&file, tr); err != nil {
		panic(err)
	}

	// Later, replay bob's side against alice: no bob this time.
	tr, err := replay.ReadTrace(&file)
	if err != nil {
		panic(err)
	}
	n2 := siptest.NewNetwork(2)
	defer n2.Close()
	conn, _ := n2.ListenPacket("bob", siptest.Addr("192.0.2.2:5060"))
	alice = startUA("alice", "192.0.2.1:5060", n2.PacketListener("alice"))
	defer alice.Stop(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := alice.Options(ctx, "sip:bob@192.0.2.2:5060", sip.RequestOptions{})
		done <- err
	}()
	res, err := replay.Play(ctx, conn, tr, replay.Options{})
	fmt.Println("replay:", err, "/ alice:", <-done)
	fmt.Println(strings.Join(res.Trace.Flow(), "\n"))
	// Output:
	// replay: <nil> / alice: <nil>
	// B->A OPTIONS
	// A->B 200
}

// A trace file: a header, then each message after a marker line with its
// time and direction, CRLFs kept.
func ExampleReadTrace() {
	file := "SIPTRACE/1\n" +
		"Title: a MESSAGE and its answer\n" +
		"A: proxy 192.0.2.10:5060 a proxy\n" +
		"B: ua 192.0.2.1:5060 the user agent under test\n" +
		"\n" +
		"--- 0.000000s B->A\n" +
		"MESSAGE sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n" +
		"Content-Type: text/plain\r\n" +
		"Content-Length: 5\r\n" +
		"\r\n" +
		"hello\n" +
		"--- 0.020000s A->B\n" +
		"SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n" +
		"Content-Length: 0\r\n" +
		"\r\n"
	tr, err := replay.ReadTrace(strings.NewReader(file))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tr.Title)
	fmt.Println(tr.B.Name, tr.B.Addr, tr.B.Description)
	fmt.Println(strings.Join(tr.Flow(), "\n"))
	fmt.Printf("%q\n", tr.Messages[0].Data[len(tr.Messages[0].Data)-9:])
	fmt.Print(tr.Ladder())
	// Output:
	// a MESSAGE and its answer
	// ua 192.0.2.1:5060 the user agent under test
	// B->A MESSAGE
	// A->B 200
	// "\r\n\r\nhello"
	//   0.000s  ua     ──MESSAGE──▶  proxy
	//   0.020s  ua     ◀──200 OK───  proxy
}
