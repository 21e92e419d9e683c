package bench

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	sipgo "github.com/emiago/sipgo/sip"
	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/message"
)

// The bench module's import path, github.com/sipua/sip/bench, lies under
// github.com/sipua/sip, so Go's internal rule (by import-path prefix)
// lets it import github.com/sipua/sip/internal/transaction even though it
// is a module of its own.

// uaPair is two sipua transaction Layers back to back in memory: what one
// sends the other receives, through a queue so that no call re-enters a
// layer. With wire set every message is written and parsed again.
type uaPair struct {
	uac, uas *transaction.Layer
	queue    []func()
	wire     bool
	buf      []byte
	done     int
}

var t0 = time.Unix(1_700_000_000, 0)

func newUAPair(wire bool) *uaPair {
	p := &uaPair{wire: wire}
	p.uac = transaction.NewLayer(transaction.Config{}, transaction.Callbacks{
		Send: func(_ transaction.Transaction, m message.Message, dest any) error {
			m = p.carry(m)
			p.queue = append(p.queue, func() { p.uas.Receive(m, "uac", true, t0) })
			return nil
		},
		Response: func(tx *transaction.Client, resp *message.Response) {
			if resp.StatusCode >= 200 {
				p.done++
			}
		},
	})
	p.uas = transaction.NewLayer(transaction.Config{}, transaction.Callbacks{
		Send: func(_ transaction.Transaction, m message.Message, dest any) error {
			m = p.carry(m)
			p.queue = append(p.queue, func() { p.uac.Receive(m, "uas", true, t0) })
			return nil
		},
		Request: func(tx *transaction.Server, req *message.Request, src any) {
			if tx != nil {
				_ = p.uas.Respond(tx, message.NewResponse(req, 200, "", "totag"), t0)
			}
		},
	})
	return p
}

func (p *uaPair) carry(m message.Message) message.Message {
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

func (p *uaPair) drain() {
	for len(p.queue) > 0 {
		f := p.queue[0]
		p.queue = p.queue[1:]
		f()
	}
}

// goConn is a sipgo Connection in memory: WriteMsg hands the message to
// the other side.
type goConn struct {
	deliver func(sipgo.Message)
}

func (c *goConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060} }
func (c *goConn) WriteMsg(m sipgo.Message) error {
	c.deliver(m)
	return nil
}
func (c *goConn) Ref(int) int            { return 1 }
func (c *goConn) TryClose() (int, error) { return 0, nil }
func (c *goConn) Close() error           { return nil }

// BenchmarkTransaction runs one whole non-INVITE transaction, both sides,
// in memory over a reliable transport (so no timer runs after the final
// response): the client sends OPTIONS, the server transaction passes it up,
// the server answers 200, the client transaction passes the 200 up. Every
// iteration starts from a clone of the same parsed request with a new
// branch. sipua drives its Layers on one goroutine; sipgo's transactions
// are driven directly (NewClientTx/NewServerTx with the keys its
// TransactionLayer makes, kept in maps as the layer does), with the one
// goroutine sipgo needs to deliver a response (ClientTx.Receive blocks
// until the user reads Responses(); sipgo's layer starts a goroutine per
// incoming message anyway). Messages pass as objects, not bytes: this
// measures the transaction layers, not the parsers.
func BenchmarkTransaction(b *testing.B) {
	data := load(b, "options.sip")
	b.Run("lib=sipua", func(b *testing.B) {
		p := newUAPair(false)
		base := sipuaParse(b, data).(*message.Request)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			req := base.Clone()
			req.Header.Set("Via", "SIP/2.0/TCP pc33.atlanta.example.com;branch=z9hG4bK"+strconv.Itoa(i))
			i++
			if _, err := p.uac.Request(req, "uas", true, t0); err != nil {
				b.Fatal(err)
			}
			p.drain()
		}
		if p.done != i {
			b.Fatalf("%d of %d transactions completed", p.done, i)
		}
		if c, s := p.uac.Len(); c != 0 || s != 0 {
			b.Fatalf("uac holds %d/%d", c, s)
		}
		if c, s := p.uas.Len(); c != 0 || s != 0 {
			b.Fatalf("uas holds %d/%d", c, s)
		}
	})
	b.Run("lib=sipgo", func(b *testing.B) {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		base := sipgoParse(b, data).(*sipgo.Request)
		// sipgo's TransactionLayer keeps its transactions in maps under a
		// lock; so do these.
		var mu sync.Mutex
		clients := map[string]*sipgo.ClientTx{}
		servers := map[string]*sipgo.ServerTx{}
		var toUAC, toUAS *goConn
		toUAC = &goConn{deliver: func(m sipgo.Message) {
			res := m.(*sipgo.Response)
			key, err := sipgo.ClientTxKeyMake(res)
			if err != nil {
				b.Fatal(err)
			}
			mu.Lock()
			tx, ok := clients[key]
			mu.Unlock()
			if !ok {
				b.Fatal("no client transaction for", key)
			}
			go tx.Receive(res)
		}}
		toUAS = &goConn{deliver: func(m sipgo.Message) {
			req := m.(*sipgo.Request)
			key, err := sipgo.ServerTxKeyMake(req)
			if err != nil {
				b.Fatal(err)
			}
			tx := sipgo.NewServerTx(key, req, toUAC, log)
			if err := tx.Init(); err != nil {
				b.Fatal(err)
			}
			mu.Lock()
			servers[key] = tx
			mu.Unlock()
			tx.OnTerminate(func(key string, err error) {
				mu.Lock()
				delete(servers, key)
				mu.Unlock()
			})
			if err := tx.Respond(sipgo.NewResponseFromRequest(req, 200, "OK", nil)); err != nil {
				b.Fatal(err)
			}
		}}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			req := base.Clone()
			req.SetTransport("TCP")
			via := req.Via()
			via.Transport = "TCP"
			via.Params.Add("branch", "z9hG4bK"+strconv.Itoa(i))
			i++
			key, err := sipgo.ClientTxKeyMake(req)
			if err != nil {
				b.Fatal(err)
			}
			tx := sipgo.NewClientTx(key, req, toUAS, log)
			mu.Lock()
			clients[key] = tx
			mu.Unlock()
			if err := tx.Init(); err != nil {
				b.Fatal(err)
			}
			res := <-tx.Responses()
			if res.StatusCode != 200 {
				b.Fatal(res.StatusCode)
			}
			tx.Terminate()
			mu.Lock()
			delete(clients, key)
			mu.Unlock()
		}
		mu.Lock()
		defer mu.Unlock()
		if len(clients) != 0 {
			b.Fatalf("uac holds %d", len(clients))
		}
	})
}
