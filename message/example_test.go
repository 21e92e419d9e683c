package message_test

import (
	"fmt"
	"strings"

	"github.com/sipua/sip/message"
)

func Example() {
	raw := "INVITE sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"To: Bob <sip:bob@example.com>\r\n" +
		"From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n" +
		"Call-ID: a84b4c76e66710\r\n" +
		"CSeq: 314159 INVITE\r\n" +
		"Content-Length: 0\r\n\r\n"

	msg, err := message.Parse([]byte(raw))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := msg.Validate(); err != nil {
		fmt.Println("answer", message.StatusCode(err))
		return
	}
	req := msg.(*message.Request)
	via, _ := req.Header.TopVia()
	from, _ := req.Header.From()
	fmt.Println(req.Method, req.URI.User, via.Branch(), from.DisplayName, from.Tag())

	// Answer it: Via, From, To, Call-ID and CSeq are copied and To gets a tag.
	resp := message.NewResponse(req, 180, "", "a6c85cf")
	fmt.Print(strings.ReplaceAll(string(resp.AppendTo(nil)), "\r\n", "\n"))
	// Output:
	// INVITE bob z9hG4bK776asdhds Alice 1928301774
	// SIP/2.0 180 Ringing
	// Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport
	// To: Bob <sip:bob@example.com>;tag=a6c85cf
	// From: "Alice" <sip:alice@example.com>;tag=1928301774
	// Call-ID: a84b4c76e66710
	// CSeq: 314159 INVITE
	// Content-Length: 0
}

func ExampleParseURI() {
	u, err := message.ParseURI("sips:alice%40work@[2001:db8::1]:5061;transport=tcp?subject=hi")
	if err != nil {
		fmt.Println(err)
		return
	}
	tr, _ := u.Params.Get("transport")
	fmt.Println(u.Scheme, u.User, u.Host, u.Port, tr, u.Headers)
	fmt.Println(u)
	// Output:
	// sips alice@work 2001:db8::1 5061 tcp subject=hi
	// sips:alice%40work@[2001:db8::1]:5061;transport=tcp?subject=hi
}

func ExampleStreamReader() {
	stream := "\r\n\r\n" + // RFC 5626 keepalive ping
		"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n" +
		"From: <sip:a@b>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	r := message.NewStreamReader(stringsReader(stream), message.Limits{})
	for {
		m, ka, err := r.Next()
		if err != nil {
			fmt.Println(err)
			return
		}
		if ka != message.NoKeepalive {
			fmt.Println("keepalive", ka)
			continue
		}
		fmt.Println("message", m.(*message.Request).Method)
	}
	// Output:
	// keepalive ping
	// message OPTIONS
	// EOF
}
