package transaction

import (
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
)

// node is a transaction layer on a siptest endpoint, driven by one
// goroutine as a user agent's event loop drives it.
type node struct {
	ep    *siptest.Endpoint
	layer *Layer
	in    chan siptest.Packet
	cmds  chan func()
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startNode(t *testing.T, n *siptest.Network, name, addr string, cb func(*node) Callbacks) *node {
	nd := &node{in: make(chan siptest.Packet, 4096), cmds: make(chan func()), stop: make(chan struct{})}
	ep, err := n.ListenFunc(name, siptest.Addr(addr), func(p siptest.Packet) { nd.in <- p })
	require.NoError(t, err)
	nd.ep = ep
	c := cb(nd)
	c.Send = func(_ Transaction, m message.Message, dest any) error {
		return nd.ep.Send(dest.(netip.AddrPort), m.AppendTo(nil))
	}
	nd.layer = NewLayer(Config{}, c)
	nd.wg.Add(1)
	go nd.loop()
	return nd
}

func (nd *node) loop() {
	defer nd.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if d, ok := nd.layer.NextDeadline(); ok {
			timer.Reset(time.Until(d))
		} else {
			timer.Stop()
		}
		select {
		case p := <-nd.in:
			m, err := message.Parse(p.Data)
			if err == nil && m.Validate() == nil {
				nd.layer.Receive(m, p.From, false, time.Now())
			}
		case <-timer.C:
			nd.layer.Tick(time.Now())
		case f := <-nd.cmds:
			f()
		case <-nd.stop:
			return
		}
	}
}

func (nd *node) do(f func()) { nd.cmds <- f }

func (nd *node) close() {
	close(nd.stop)
	nd.wg.Wait()
	nd.ep.Close()
}

type clientOutcome struct {
	start   time.Time
	finals  int
	final   int
	failAt  time.Time
	failErr error
}

type serverOutcome struct {
	passUps int
	failAt  time.Time
	state   State
	tx      *Server
}

func branchOf(data []byte) (string, string, int) {
	m, err := message.Parse(data)
	if err != nil {
		return "", "", 0
	}
	v, _ := m.Headers().TopVia()
	cs, _ := m.Headers().CSeq()
	if r, ok := m.(*message.Response); ok {
		return v.Branch(), cs.Method, r.StatusCode
	}
	return v.Branch(), m.(*message.Request).Method, 0
}

// TestLossyNetwork runs 1000 INVITE and 1000 non-INVITE transactions over
// UDP with 30% loss each way, 5% duplication and reordering jitter, and
// checks every transaction against what RFC 3261 prescribes given what the
// network actually delivered.
func TestLossyNetwork(t *testing.T) {
	for _, method := range []string{"OPTIONS", "INVITE"} {
		t.Run(method, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runLossy(t, method, 1000) })
		})
	}
}

func runLossy(t *testing.T, method string, count int) {
	n := siptest.NewNetwork(uint64(len(method)))
	defer n.Close()
	require.NoError(t, n.SetDefaultLink(siptest.Link{Loss: 0.3, Duplicate: 0.05, Delay: 20 * time.Millisecond, Jitter: 15 * time.Millisecond}))

	clients := map[string]*clientOutcome{}
	servers := map[string]*serverOutcome{}
	uac := startNode(t, n, "uac", "192.0.2.1:5060", func(nd *node) Callbacks {
		return Callbacks{
			Response: func(tx *Client, resp *message.Response) {
				if tx == nil || resp.StatusCode < 200 {
					return
				}
				o := clients[tx.Request().Header.Get("Via")]
				o.finals++
				o.final = resp.StatusCode
			},
			Failed: func(tx Transaction, err error) {
				o := clients[tx.Request().Header.Get("Via")]
				o.failAt, o.failErr = time.Now(), err
			},
		}
	})
	uas := startNode(t, n, "uas", "192.0.2.2:5060", func(nd *node) Callbacks {
		return Callbacks{
			Request: func(tx *Server, req *message.Request, src any) {
				if tx == nil {
					return
				}
				v, _ := req.Header.TopVia()
				o := servers[v.Branch()]
				if o == nil {
					o = &serverOutcome{tx: tx}
					servers[v.Branch()] = o
				}
				o.passUps++
				now := time.Now()
				if req.Method == "INVITE" {
					require.NoError(t, nd.layer.Respond(tx, message.NewResponse(req, 180, "", "tag"), now))
					require.NoError(t, nd.layer.Respond(tx, message.NewResponse(req, 486, "", "tag"), now))
				} else {
					require.NoError(t, nd.layer.Respond(tx, message.NewResponse(req, 200, "", "tag"), now))
				}
			},
			// A server transaction that has answered keeps no request:
			// find its outcome by the transaction.
			Failed: func(tx Transaction, err error) {
				if o := serverOf(servers, tx); o != nil {
					o.failAt = time.Now()
				}
			},
			Terminated: func(tx Transaction) {
				if o := serverOf(servers, tx); o != nil {
					o.state = tx.State()
				}
			},
		}
	})

	base := newReq(t, method, "z9hG4bK0")
	for i := range count {
		time.Sleep(10 * time.Millisecond)
		req := base.Clone()
		b := "z9hG4bK" + strconv.Itoa(i)
		via := "SIP/2.0/UDP 192.0.2.1:5060;branch=" + b
		req.Header.Set("Via", via)
		uac.do(func() {
			clients[via] = &clientOutcome{start: time.Now()}
			_, err := uac.layer.Request(req, siptest.Addr("192.0.2.2:5060"), false, time.Now())
			require.NoError(t, err)
		})
	}
	// Let every timer run out (Timer D, H, J are the longest: 32 s).
	time.Sleep(5 * time.Minute)
	synctest.Wait()
	var stuck int
	uac.do(func() { stuck, _ = uac.layer.Len() })
	uac.close()
	uas.close()

	// What the network delivered, per branch.
	firstResp := map[string]time.Time{} // any response at the UAC
	finalSeen := map[string]bool{}      // a final response at the UAC
	reqSeen := map[string]time.Time{}   // the request at the UAS
	ackSeen := map[string]time.Time{}   // an ACK at the UAS
	for _, e := range n.Trace() {
		if e.Kind != siptest.EventDelivered {
			continue
		}
		b, m, code := branchOf(e.Data)
		switch {
		case code > 0 && e.To.Port() == 5060 && e.To.Addr() == siptest.Addr("192.0.2.1:5060").Addr():
			if t0, ok := firstResp[b]; !ok || e.At.Before(t0) {
				firstResp[b] = e.At
			}
			if code >= 200 {
				finalSeen[b] = true
			}
		case m == "ACK":
			if t0, ok := ackSeen[b]; !ok || e.At.Before(t0) {
				ackSeen[b] = e.At
			}
		case code == 0:
			if t0, ok := reqSeen[b]; !ok || e.At.Before(t0) {
				reqSeen[b] = e.At
			}
		}
	}

	const timerB = 64 * 500 * time.Millisecond
	var completed, timedOut, proceeding, serverTimeouts int
	for via, o := range clients {
		v, _ := message.ParseVia(via)
		b := v.Branch()
		first, answered := firstResp[b]
		answeredInTime := answered && first.Before(o.start.Add(timerB))
		switch {
		case !answeredInTime:
			// Timer B / F: exactly 64*T1 after the start, and nothing passed up.
			require.False(t, o.failAt.IsZero(), "%s: no response in time, must time out", b)
			assert.ErrorIs(t, o.failErr, ErrTimeout)
			assert.Equal(t, o.start.Add(timerB), o.failAt, b)
			assert.Zero(t, o.finals, b)
			timedOut++
		case method == "INVITE" && !finalSeen[b]:
			// Only provisional responses got through: the transaction
			// waits in Proceeding for the TU to give up (RFC 3261 has no
			// Timer B there).
			assert.Zero(t, o.finals, b)
			assert.True(t, o.failAt.IsZero(), b)
			proceeding++
		default:
			assert.Equal(t, 1, o.finals, "%s: the final response is passed up once", b)
			assert.True(t, o.failAt.IsZero(), b)
			completed++
		}
	}
	for b, o := range servers {
		_, ok := reqSeen[b]
		require.True(t, ok)
		assert.Equal(t, 1, o.passUps, "%s: the request is passed up once", b)
		if method != "INVITE" {
			assert.True(t, o.failAt.IsZero())
			continue
		}
		// Timer H unless an ACK arrived within 64*T1 of the 486.
		ack, acked := ackSeen[b]
		if acked && ack.Before(reqSeen[b].Add(timerB)) {
			assert.True(t, o.failAt.IsZero(), "%s: acknowledged", b)
			assert.Equal(t, Terminated, o.state)
		} else {
			assert.Equal(t, reqSeen[b].Add(timerB), o.failAt, "%s: Timer H", b)
			serverTimeouts++
		}
	}
	for b := range reqSeen {
		assert.Contains(t, servers, b)
	}
	assert.Equal(t, proceeding, stuck, "only transactions waiting in Proceeding remain")
	st := n.Stats()
	t.Logf("%s: %d completed, %d timed out, %d left in Proceeding, %d server Timer H; network: %+v",
		method, completed, timedOut, proceeding, serverTimeouts, st)
	assert.Equal(t, count, completed+timedOut+proceeding)
	assert.Greater(t, completed, count*99/100, "at 30% loss nearly every transaction completes")
}

// serverOf returns the outcome of server transaction tx, or nil.
func serverOf(servers map[string]*serverOutcome, tx Transaction) *serverOutcome {
	for _, o := range servers {
		if Transaction(o.tx) == tx {
			return o
		}
	}
	return nil
}
