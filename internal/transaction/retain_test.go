package transaction

import (
	"runtime"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

// TestFinishedServerKeepsNoRequest checks that a server transaction that
// has sent its final response, and lingers for retransmissions (Timer J,
// L, or G/H then I), keeps neither its request nor the request's buffer
// alive (a response built from a request shares its memory; so does a
// map key taken from it), and still answers a retransmission with the
// same bytes.
func TestFinishedServerKeepsNoRequest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		code   int
		ack    bool // send the ACK of a non-2xx final response after it
		resend bool // a retransmitted request gets the last response again
		state  State
	}{
		{"BYE 200", "BYE", 200, false, true, Completed},
		{"INVITE 200", "INVITE", 200, false, false, Accepted},
		{"INVITE 486", "INVITE", 486, false, true, Completed},
		{"INVITE 486 ACKed", "INVITE", 486, true, false, Confirmed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent []string
			var servers []*Server
			l := NewLayer(Config{}, Callbacks{
				Send: func(tx Transaction, m message.Message, dest any) error {
					if r, ok := m.(*message.Response); ok {
						sent = append(sent, string(r.AppendTo(nil)))
					}
					return nil
				},
				Request: func(tx *Server, req *message.Request, src any) {
					if tx != nil {
						servers = append(servers, tx)
					}
				},
			})
			branch := "z9hG4bK" + tc.method + "1"
			wReq, wBuf := func() (weak.Pointer[message.Request], weak.Pointer[byte]) {
				req := newReq(t, tc.method, branch)
				l.Receive(req, "alice", false, t0)
				require.Len(t, servers, 1)
				require.NoError(t, l.Respond(servers[0], respTo(req, tc.code), t0))
				if tc.ack {
					l.Receive(NewAckForFailure(req, respTo(req, tc.code)), "alice", false, t0.Add(time.Millisecond))
				}
				return weak.Make(req), weak.Make(unsafe.StringData(req.Header.CallID()))
			}()
			s := servers[0]
			assert.Equal(t, tc.state, s.State())
			assert.Nil(t, s.Request())
			assert.Equal(t, tc.method, s.Method())
			runtime.GC()
			runtime.GC()
			assert.Nil(t, wReq.Value(), "the request is still reachable")
			assert.Nil(t, wBuf.Value(), "the request's buffer is still reachable")

			require.Len(t, sent, 1)
			l.Receive(newReq(t, tc.method, branch), "alice", false, t0.Add(2*time.Millisecond))
			if tc.resend {
				require.Len(t, sent, 2, "the retransmission is answered")
				assert.Equal(t, sent[0], sent[1])
			} else {
				assert.Len(t, sent, 1, "the retransmission is absorbed")
			}
			assert.Len(t, servers, 1, "the retransmission matched the transaction")
		})
	}
}
