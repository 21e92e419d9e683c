package transaction

import (
	"strconv"
	"testing"

	"github.com/sipua/sip/message"
)

// pair is two layers wired back to back in memory: what one sends, the
// other receives at once (through a queue, so no call re-enters a layer).
type pair struct {
	uac, uas *Layer
	queue    []func()
	wire     bool // serialise and parse every message
	buf      []byte
	done     int
}

func newPair(wire bool) *pair {
	p := &pair{wire: wire}
	p.uac = NewLayer(Config{}, Callbacks{
		Send: func(_ Transaction, m message.Message, dest any) error {
			m = p.carry(m)
			p.queue = append(p.queue, func() { p.uas.Receive(m, "uac", true, t0) })
			return nil
		},
		Response: func(tx *Client, resp *message.Response) {
			if resp.StatusCode >= 200 {
				p.done++
			}
		},
	})
	p.uas = NewLayer(Config{}, Callbacks{
		Send: func(_ Transaction, m message.Message, dest any) error {
			m = p.carry(m)
			p.queue = append(p.queue, func() { p.uac.Receive(m, "uas", true, t0) })
			return nil
		},
		Request: func(tx *Server, req *message.Request, src any) {
			if tx != nil {
				_ = p.uas.Respond(tx, message.NewResponse(req, 200, "", "totag"), t0)
			}
		},
	})
	return p
}

func (p *pair) carry(m message.Message) message.Message {
	if !p.wire {
		return m
	}
	p.buf = m.AppendTo(p.buf[:0])
	out, err := message.Parse(p.buf)
	if err != nil {
		panic(err)
	}
	return out
}

func (p *pair) drain() {
	for len(p.queue) > 0 {
		f := p.queue[0]
		p.queue = p.queue[1:]
		f()
	}
}

func benchTransactions(b *testing.B, method string, wire bool) {
	p := newPair(wire)
	base := newReq(b, method, "z9hG4bKbench")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := base.Clone()
		req.Header.Set("Via", "SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK"+strconv.Itoa(i))
		i++
		if _, err := p.uac.Request(req, "uas", true, t0); err != nil {
			b.Fatal(err)
		}
		p.drain()
	}
	if p.done != i {
		b.Fatalf("%d of %d transactions completed", p.done, i)
	}
	// Reliable transport: every transaction has ended already.
	if c, s := p.uac.Len(); c != 0 || s != 0 {
		b.Fatalf("uac holds %d/%d", c, s)
	}
	if c, s := p.uas.Len(); c != 0 || s != 0 {
		if method != "INVITE" || s != i { // INVITE servers linger in Accepted (Timer L)
			b.Fatalf("uas holds %d/%d", c, s)
		}
	}
}

// BenchmarkNonInviteTransaction runs a whole non-INVITE transaction, both
// sides, in memory: request, 200, completion.
func BenchmarkNonInviteTransaction(b *testing.B) { benchTransactions(b, "OPTIONS", false) }

// BenchmarkNonInviteTransactionWire does the same with every message
// written and parsed.
func BenchmarkNonInviteTransactionWire(b *testing.B) { benchTransactions(b, "OPTIONS", true) }
