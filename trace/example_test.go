package trace_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/sipua/sip"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
)

var (
	alice = netip.MustParseAddrPort("192.0.2.10:5060")
	bob   = netip.MustParseAddrPort("192.0.2.20:5060")
	t0    = time.Date(2026, 11, 25, 21, 30, 0, 0, time.UTC)
)

// msg builds a message from lines joined by CRLF, with the body after an
// empty line.
func msg(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n"))
}

const exampleSDP = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

// exampleCall returns the events of a short call from alice to bob as
// alice's UserAgent traces it: INVITE (sent twice: one retransmission),
// 100, 180, 200, ACK, BYE, 200.
func exampleCall() []trace.Event {
	req := func(method, branch string, cseq int, body string, extra ...string) []byte {
		lines := []string{
			method + " sip:bob@192.0.2.20 SIP/2.0",
			"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=" + branch + ";rport",
			"From: <sip:alice@example.com>;tag=a1",
			"To: <sip:bob@example.com>" + map[bool]string{true: "", false: ";tag=b1"}[method == "INVITE"],
			"Call-ID: call-1@192.0.2.10",
			fmt.Sprintf("CSeq: %d %s", cseq, method),
			"Max-Forwards: 70",
		}
		lines = append(lines, extra...)
		if body != "" {
			lines = append(lines, "Content-Type: application/sdp")
		}
		lines = append(lines, fmt.Sprintf("Content-Length: %d", len(body)), "", body)
		return msg(lines...)
	}
	resp := func(code, reason, branch string, cseq int, method string, body string) []byte {
		lines := []string{
			"SIP/2.0 " + code + " " + reason,
			"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=" + branch + ";rport=5060",
			"From: <sip:alice@example.com>;tag=a1",
			"To: <sip:bob@example.com>" + map[bool]string{true: "", false: ";tag=b1"}[code == "100"],
			"Call-ID: call-1@192.0.2.10",
			fmt.Sprintf("CSeq: %d %s", cseq, method),
		}
		if body != "" {
			lines = append(lines, "Content-Type: application/sdp")
		}
		lines = append(lines, fmt.Sprintf("Content-Length: %d", len(body)), "", body)
		return msg(lines...)
	}
	invite := req("INVITE", "z9hG4bK1", 1, exampleSDP, "Contact: <sip:alice@192.0.2.10:5060>")
	steps := []struct {
		ms  int
		dir trace.Direction
		raw []byte
	}{
		{0, trace.Sent, invite},
		{500, trace.Sent, invite},
		{510, trace.Received, resp("100", "Trying", "z9hG4bK1", 1, "INVITE", "")},
		{530, trace.Received, resp("180", "Ringing", "z9hG4bK1", 1, "INVITE", "")},
		{2040, trace.Received, resp("200", "OK", "z9hG4bK1", 1, "INVITE", exampleSDP)},
		{2041, trace.Sent, req("ACK", "z9hG4bK2", 1, "")},
		{9000, trace.Sent, req("BYE", "z9hG4bK3", 2, "")},
		{9012, trace.Received, resp("200", "OK", "z9hG4bK3", 2, "BYE", "")},
	}
	var evs []trace.Event
	for _, s := range steps {
		m, err := message.Parse(s.raw)
		if err != nil {
			panic(err)
		}
		evs = append(evs, trace.Event{
			Time: t0.Add(time.Duration(s.ms) * time.Millisecond), Dir: s.dir, Transport: "UDP",
			Local: alice, Remote: bob, Raw: s.raw, Message: m,
		})
	}
	return evs
}

// A UserAgent writes every message it sends and receives to a pcap file and
// a text log at once.
func Example_userAgent() {
	f, err := os.Create("calls.pcap")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	pcap, err := trace.NewPcapWriter(f)
	if err != nil {
		panic(err)
	}
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:    "sip:alice@example.com",
		Tracer: trace.Multi(pcap, trace.NewTextWriter(os.Stderr, trace.TextOptions{})),
	})
	if err != nil {
		panic(err)
	}
	_ = ua // ua.Start(ctx) and make calls; then check pcap.Err().
}

func ExamplePcapWriter() {
	var file bytes.Buffer // an *os.File in practice
	w, err := trace.NewPcapWriter(&file)
	if err != nil {
		panic(err)
	}
	for _, ev := range exampleCall() {
		w.Trace(ev)
	}
	if err := w.Err(); err != nil {
		panic(err)
	}
	// Open the file with: tshark -r file.pcap -Y sip
	fmt.Printf("%d bytes, magic %x\n", file.Len(), file.Bytes()[:4])
	// Output: 2740 bytes, magic d4c3b2a1
}

func ExampleTextWriter() {
	w := trace.NewTextWriter(os.Stdout, trace.TextOptions{HeadersOnly: true})
	evs := exampleCall()
	w.Trace(evs[3]) // 180 Ringing
	// Output:
	// ----- 2026-11-25 21:30:00.530000 UTC  received  UDP 192.0.2.20:5060 -> 192.0.2.10:5060  (219 bytes)
	// SIP/2.0 180 Ringing
	// Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1;rport=5060
	// From: <sip:alice@example.com>;tag=a1
	// To: <sip:bob@example.com>;tag=b1
	// Call-ID: call-1@192.0.2.10
	// CSeq: 1 INVITE
	// Content-Length: 0
}

func ExampleNewLadder() {
	rec := trace.NewRecorder(0) // set as UserAgentOptions.Tracer
	for _, ev := range exampleCall() {
		rec.Trace(ev)
	}
	names := map[netip.AddrPort]string{alice: "alice", bob: "bob"}
	for _, id := range rec.CallIDs() {
		l := trace.NewLadder(rec.Events(), id, trace.LadderOptions{
			Name: func(a netip.AddrPort) string { return names[a] },
		})
		_ = l.WriteMermaid(os.Stdout) // or l.WriteSVG(file)
	}
	// Output:
	// sequenceDiagram
	//     title Call-ID call-1@192.0.2.10
	//     participant P1 as alice
	//     participant P2 as bob
	//     %% 21:30:00.000000 UDP
	//     P1->>P2: INVITE (SDP)
	//     %% 21:30:00.500000 UDP
	//     P1->>P2: INVITE (SDP) (retransmission)
	//     %% 21:30:00.510000 UDP
	//     P2-->>P1: 100 Trying
	//     %% 21:30:00.530000 UDP
	//     P2-->>P1: 180 Ringing
	//     %% 21:30:02.040000 UDP
	//     P2-->>P1: 200 OK (SDP)
	//     %% 21:30:02.041000 UDP
	//     P1->>P2: ACK
	//     %% 21:30:09.000000 UDP
	//     P1->>P2: BYE
	//     %% 21:30:09.012000 UDP
	//     P2-->>P1: 200 OK
}

func ExampleLadder_WriteSVG() {
	l := trace.NewLadder(exampleCall(), "call-1@192.0.2.10", trace.LadderOptions{Title: "alice calls bob"})
	var svg bytes.Buffer // a file in practice: open it in a browser
	if err := l.WriteSVG(&svg); err != nil {
		panic(err)
	}
	fmt.Println(strings.SplitN(svg.String(), "\n", 2)[0])
	fmt.Println(len(l.Steps), "arrows between", l.Participants)
	// Output:
	// <svg xmlns="http://www.w3.org/2000/svg" width="606" height="452" viewBox="0 0 606 452" font-family="monospace" font-size="12">
	// 8 arrows between [192.0.2.10:5060 192.0.2.20:5060]
}

// Several UserAgents of one process share one pcap file: Dedup keeps each
// message between them once, and NewAsync keeps a slow disk off their
// goroutines.
func ExampleDedup() {
	var file bytes.Buffer
	pcap, err := trace.NewPcapWriter(&file)
	if err != nil {
		panic(err)
	}
	async := trace.NewAsync(pcap, 0)
	shared := trace.Dedup(async, 0) // UserAgentOptions.Tracer of each
	for _, ev := range exampleCall() {
		shared.Trace(ev) // alice's side
		ev.Local, ev.Remote = ev.Remote, ev.Local
		ev.Dir = map[trace.Direction]trace.Direction{trace.Sent: trace.Received, trace.Received: trace.Sent}[ev.Dir]
		shared.Trace(ev) // bob's side of the same message
	}
	_ = async.Close() // after the UserAgents stopped
	fmt.Println(file.Len(), "bytes,", async.Dropped(), "dropped")
	// Output: 2740 bytes, 0 dropped
}
