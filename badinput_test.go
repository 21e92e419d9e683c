package sip

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// TestAnswerableBadInput: a request that cannot be handled but whose Via,
// From, To, Call-ID and CSeq are readable is answered (RFC 3261 §8.2),
// statelessly and never reaching the application: an unparsable
// Request-URI with 400, a datagram over TransportOptions.MessageLimits
// with 400, 413, 414 or 513. One whose mandatory headers are not readable,
// and a response, are dropped.
func TestAnswerableBadInput(t *testing.T) {
	h := startHostileUA(t, func(o *UserAgentOptions) {
		o.Transport.MessageLimits = message.Limits{MaxMessageSize: 4000, MaxHeaders: 40, MaxLineLength: 1000, MaxBodySize: 500}
	})
	request := func(uri string, extra string, body string) string {
		return "MESSAGE " + uri + " SIP/2.0\r\nVia: $VIA\r\nMax-Forwards: 70\r\n" +
			"From: <sip:mallory@127.0.0.1>;tag=m1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: $CALLID\r\n" +
			"CSeq: 1 MESSAGE\r\n" + extra + "Content-Type: text/plain\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
	}
	const bob = "sip:bob@127.0.0.1"
	cases := []struct {
		name   string
		msg    string
		code   int // 0: no answer
		protos []transport.Proto
	}{
		{"ruri-ipv6-unclosed", request("sip:bob@[::1", "", "hi"), 400, nil},
		{"ruri-port-999999", request("sip:bob@127.0.0.1:999999", "", "hi"), 400, nil},
		{"ruri-bad-escape", request("sip:b%zzob@127.0.0.1", "", "hi"), 400, nil},
		{"ruri-bad-param-escape", request("sip:bob@127.0.0.1;x=%zz", "", "hi"), 400, nil},
		{"ruri-bad-cseq-too", strings.Replace(request("sip:bob@[::1", "", "hi"), "CSeq: 1 MESSAGE", "CSeq: x", 1), 0, nil},
		{"message-too-large", request(bob, "", strings.Repeat("a", 4100)), 513, []transport.Proto{transport.UDP}},
		{"body-too-large", request(bob, "", strings.Repeat("b", 600)), 413, []transport.Proto{transport.UDP}},
		{"too-many-headers", request(bob, strings.Repeat("X-H: 1\r\n", 50), "hi"), 400, nil},
		{"header-too-long", request(bob, "Subject: "+strings.Repeat("s", 1200)+"\r\n", "hi"), 400, nil},
		{"folded-via-kept", strings.Replace(request(bob, strings.Repeat("X-H: 1\r\n", 50), "hi"), "Via: $VIA", "Via:\r\n $VIA", 1), 400, nil},
		{"ruri-too-long", request("sip:"+strings.Repeat("u", 1200)+"@127.0.0.1", "", "hi"), 414, nil},
		{"too-many-headers-no-callid", strings.Replace(request(bob, strings.Repeat("X-H: 1\r\n", 50), "hi"), "Call-ID: $CALLID\r\n", "", 1), 0, nil},
		{"too-large-via-too-long", request(bob, "Via: SIP/2.0/UDP "+strings.Repeat("v", 1100)+"\r\n", strings.Repeat("a", 4100)), 0, []transport.Proto{transport.UDP}},
		{"response-too-large", "SIP/2.0 200 OK\r\nVia: $VIA\r\nFrom: <sip:bob@127.0.0.1>;tag=1\r\nTo: <sip:m@127.0.0.1>;tag=2\r\n" +
			"Call-ID: $CALLID\r\nCSeq: 1 MESSAGE\r\n" + strings.Repeat("X-H: 1\r\n", 50) + "Content-Length: 0\r\n\r\n", 0, nil},
	}
	for _, c := range cases {
		protos := c.protos
		if protos == nil {
			protos = []transport.Proto{transport.UDP, transport.TCP}
		}
		for _, proto := range protos {
			t.Run(c.name+"/"+string(proto), func(t *testing.T) {
				w, err := dialWire(t, h, proto)
				require.NoError(t, err)
				callID := "bad-" + c.name + "-" + string(proto)
				w.send(t, fill([]byte(c.msg), w, "z9hG4bK-"+callID, callID))
				// A valid probe after it: once it is answered, any answer
				// to the bad message has come.
				w.send(t, probe(w, "z9hG4bK-probe-"+callID, "probe-"+callID))
				var codes []int
				deadline := time.After(5 * time.Second)
			read:
				for {
					select {
					case r := <-w.resps:
						if r.Header.CallID() == "probe-"+callID {
							require.Equal(t, 200, r.StatusCode)
							break read
						}
						if r.Header.CallID() == callID {
							codes = append(codes, r.StatusCode)
							assert.Equal(t, "z9hG4bK-"+callID, branchOf(r))
						}
					case <-deadline:
						t.Fatalf("the probe after %s was not answered", c.name)
					}
				}
				if c.code == 0 {
					assert.Empty(t, codes)
				} else {
					assert.Equal(t, []int{c.code}, codes)
				}
			})
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	assert.Zero(t, h.messagesTaken, "no bad request reaches the application")
}
