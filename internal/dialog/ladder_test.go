package dialog

import (
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/internal/transaction"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
)

// ua is a minimal user agent core built from the transaction layer and
// this package, enough to run calls over a siptest network: the UAC
// acknowledges every 2xx (forked ones too, one dialog each), the UAS
// retransmits its 2xx until the ACK and sends BYE when none comes,
// in-dialog requests are matched (481) and sequenced (500).
type ua struct {
	t       *testing.T
	name    string
	addr    netip.AddrPort
	ep      *siptest.Endpoint
	layer   *transaction.Layer
	dialogs *Set
	waits   map[ID]*AckWait // UAS: 2xx waiting for their ACK
	branch  int
	in      chan siptest.Packet
	cmds    chan func()
	stop    chan struct{}
	wg      sync.WaitGroup

	// behaviour of the UAS side
	answer  func(u *ua, tx *transaction.Server, req *message.Request)
	events  []string
	dialogN int
}

func newUA(t *testing.T, n *siptest.Network, name, addr string) *ua {
	u := &ua{t: t, name: name, addr: siptest.Addr(addr), dialogs: NewSet(),
		waits: map[ID]*AckWait{},
		in:    make(chan siptest.Packet, 1024), cmds: make(chan func()), stop: make(chan struct{})}
	ep, err := n.ListenFunc(name, u.addr, func(p siptest.Packet) { u.in <- p })
	require.NoError(t, err)
	u.ep = ep
	u.layer = transaction.NewLayer(transaction.Config{}, transaction.Callbacks{
		Send: func(_ transaction.Transaction, m message.Message, dest any) error {
			return u.send(m, dest.(netip.AddrPort))
		},
		Request:  u.onRequest,
		Response: u.onResponse,
		Failed: func(tx transaction.Transaction, err error) {
			u.events = append(u.events, "failed "+tx.Request().Method)
		},
	})
	u.answer = func(u *ua, tx *transaction.Server, req *message.Request) {
		u.respond(tx, req, 180)
		u.respond(tx, req, 200)
	}
	u.wg.Add(1)
	go u.loop()
	return u
}

func (u *ua) send(m message.Message, to netip.AddrPort) error { return u.ep.Send(to, m.AppendTo(nil)) }

func (u *ua) newBranch() string {
	u.branch++
	return message.MagicCookie + u.name + strconv.Itoa(u.branch)
}

func (u *ua) via() message.Via {
	return message.Via{Transport: "UDP", Host: u.addr.Addr().String(), Port: int(u.addr.Port()), Params: message.Params("branch=" + u.newBranch())}
}

func (u *ua) contact() string { return "<sip:" + u.name + "@" + u.addr.String() + ">" }

func (u *ua) loop() {
	defer u.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, ok := u.layer.NextDeadline()
		for _, w := range u.waits {
			if d := w.Deadline(); !d.IsZero() && (!ok || d.Before(next)) {
				next, ok = d, true
			}
		}
		if ok {
			timer.Reset(time.Until(next))
		} else {
			timer.Stop()
		}
		select {
		case p := <-u.in:
			m, err := message.Parse(p.Data)
			if err == nil && m.Validate() == nil {
				u.layer.Receive(m, p.From, false, time.Now())
			}
		case <-timer.C:
			now := time.Now()
			u.layer.Tick(now)
			for id, w := range u.waits {
				resend, timedOut := w.Tick(now)
				if resend != nil {
					u.sendToDialog(id, resend)
				}
				if timedOut {
					delete(u.waits, id)
					u.events = append(u.events, "no ACK: BYE")
					u.bye(id)
				}
			}
		case f := <-u.cmds:
			f()
		case <-u.stop:
			return
		}
	}
}

func (u *ua) do(f func()) {
	done := make(chan struct{})
	u.cmds <- func() { f(); close(done) }
	<-done
}

func (u *ua) close() {
	close(u.stop)
	u.wg.Wait()
	u.ep.Close()
}

// sendToDialog sends a 2xx retransmission to the peer (its Contact).
func (u *ua) sendToDialog(id ID, m message.Message) {
	d := u.dialogs.Get(id)
	target := d.RemoteTarget()
	_ = u.send(m, netip.MustParseAddrPort(target.HostPort()))
}

// invite sends an INVITE to peer.
func (u *ua) invite(peer *ua) {
	from := message.Address{URI: message.MustParseURI("sip:" + u.name + "@example.com")}
	to := message.Address{URI: message.MustParseURI("sip:" + peer.name + "@example.com")}
	req := message.NewRequest("INVITE", message.MustParseURI("sip:"+peer.name+"@"+peer.addr.String()), from, to)
	req.Header.PrependVia(u.via())
	req.Header.Add("Contact", u.contact())
	_, err := u.layer.Request(req, peer.addr, false, time.Now())
	require.NoError(u.t, err)
}

func (u *ua) respond(tx *transaction.Server, req *message.Request, code int) *message.Response {
	resp := message.NewResponse(req, code, "", u.name+"tag"+strconv.Itoa(u.dialogN))
	if code > 100 && code < 300 {
		resp.Header.Add("Contact", u.contact())
	}
	require.NoError(u.t, u.layer.Respond(tx, resp, time.Now()))
	if code >= 200 && code < 300 && req.Method == "INVITE" {
		d, err := NewUAS(req, resp)
		require.NoError(u.t, err)
		u.dialogs.Add(d)
		u.waits[d.ID] = NewAckWait(resp, Timers{}, time.Now())
	}
	return resp
}

func (u *ua) onResponse(tx *transaction.Client, resp *message.Response) {
	cs, _ := resp.Header.CSeq()
	if cs.Method != "INVITE" || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		if tx != nil && resp.StatusCode >= 200 {
			u.events = append(u.events, cs.Method+" "+strconv.Itoa(resp.StatusCode))
		}
		return
	}
	// Every 2xx to INVITE is acknowledged, by its dialog; a retransmitted
	// one gets the same ACK again.
	if tx == nil {
		return // the INVITE transaction is over (Timer M): nothing to match
	}
	d, ack, created, err := u.dialogs.Ack2xx(tx.Request(), resp, u.via())
	require.NoError(u.t, err)
	if created {
		u.events = append(u.events, "confirmed "+d.ID.RemoteTag)
	}
	_ = u.send(ack, netip.MustParseAddrPort(NextHop(ack).HostPort()))
}

func (u *ua) onRequest(tx *transaction.Server, req *message.Request, src any) {
	if req.Method == "ACK" {
		if w := u.waits[RequestID(req)]; w != nil && w.Ack(req) {
			delete(u.waits, RequestID(req))
			u.events = append(u.events, "acked")
		}
		return
	}
	d, err := u.dialogs.MatchRequest(req)
	switch {
	case errors.Is(err, ErrNoDialog):
		u.respond(tx, req, 481)
		return
	case d != nil:
		if err := d.ReceiveRequest(req); err != nil {
			u.respond(tx, req, 500)
			return
		}
		if req.Method == "BYE" {
			d.Terminate()
			u.dialogs.Remove(d.ID)
			u.events = append(u.events, "bye")
		}
		u.respond(tx, req, 200)
		return
	}
	u.dialogN++
	u.answer(u, tx, req)
}

func (u *ua) bye(id ID) {
	d := u.dialogs.Get(id)
	req, err := d.NewRequest("BYE")
	require.NoError(u.t, err)
	req.Header.PrependVia(u.via())
	d.Terminate()
	u.dialogs.Remove(id)
	_, err = u.layer.Request(req, netip.MustParseAddrPort(NextHop(req).HostPort()), false, time.Now())
	require.NoError(u.t, err)
}

func (u *ua) onlyDialog() ID {
	require.Equal(u.t, 1, u.dialogs.Len())
	for id := range u.dialogs.m {
		return id
	}
	return ID{}
}

// ladder runs a scenario in a synctest bubble with two UAs on a network
// with 10 ms links, and returns the compact ladder.
func ladder(t *testing.T, setup func(n *siptest.Network, alice, bob *ua)) ([]string, *ua, *ua) {
	var flow []string
	var a, b *ua
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(7)
		defer n.Close()
		require.NoError(t, n.SetDefaultLink(siptest.Link{Delay: 10 * time.Millisecond}))
		a = newUA(t, n, "alice", "192.0.2.1:5060")
		b = newUA(t, n, "bob", "192.0.2.2:5060")
		setup(n, a, b)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		a.close()
		b.close()
		flow = n.Flow()
		t.Log("\n" + n.Ladder())
	})
	return flow, a, b
}

func TestLadderBasicCall(t *testing.T) {
	flow, alice, bob := ladder(t, func(n *siptest.Network, alice, bob *ua) {
		alice.do(func() { alice.invite(bob) })
		time.Sleep(time.Second)
		alice.do(func() { alice.bye(alice.onlyDialog()) })
	})
	assert.Equal(t, []string{
		"alice→bob INVITE",
		"bob→alice 180",
		"bob→alice 200",
		"alice→bob ACK",
		"alice→bob BYE",
		"bob→alice 200",
	}, flow)
	assert.Equal(t, []string{"confirmed bobtag1", "BYE 200"}, alice.events)
	assert.Equal(t, []string{"acked", "bye"}, bob.events)
}

func TestLadderLostAck(t *testing.T) {
	flow, _, bob := ladder(t, func(n *siptest.Network, alice, bob *ua) {
		// The first ACK is lost: bob's core retransmits the 2xx at T1,
		// alice answers the retransmission with the same ACK.
		alice.do(func() { alice.invite(bob) })
		time.Sleep(15 * time.Millisecond) // the 200 is in flight
		n.SetDown(alice.addr, bob.addr, true)
		time.Sleep(10 * time.Millisecond) // alice's ACK goes into the void
		n.SetDown(alice.addr, bob.addr, false)
	})
	assert.Equal(t, []string{
		"alice→bob INVITE",
		"bob→alice 180",
		"bob→alice 200",
		"alice→bob ACK (dropped)",
		"bob→alice 200",
		"alice→bob ACK",
	}, flow)
	assert.Equal(t, []string{"acked"}, bob.events)
}

func TestLadderLost200(t *testing.T) {
	flow, alice, _ := ladder(t, func(n *siptest.Network, alice, bob *ua) {
		// The 2xx is lost: bob retransmits it at T1.
		n.SetLink(bob.addr, alice.addr, siptest.Link{Delay: 10 * time.Millisecond})
		bob.answer = func(u *ua, tx *transaction.Server, req *message.Request) {
			n.SetDown(bob.addr, alice.addr, true)
			u.respond(tx, req, 200)
			n.SetDown(bob.addr, alice.addr, false)
		}
		alice.do(func() { alice.invite(bob) })
	})
	assert.Equal(t, []string{
		"alice→bob INVITE",
		"bob→alice 200 (dropped)",
		"alice→bob INVITE",
		"bob→alice 200",
		"alice→bob ACK",
	}, flow[:5], "alice's INVITE retransmission (Timer A) is absorbed by bob's transaction in Accepted; bob's own retransmission follows")
	assert.Contains(t, alice.events, "confirmed bobtag1")
}

func TestLadderNoAckEndsWithBye(t *testing.T) {
	flow, _, bob := ladder(t, func(n *siptest.Network, alice, bob *ua) {
		alice.do(func() { alice.invite(bob) })
		time.Sleep(15 * time.Millisecond)
		// Alice vanishes for good after the INVITE went out.
		n.SetLink(alice.addr, bob.addr, siptest.Link{Down: true})
	})
	want := []string{"alice→bob INVITE", "bob→alice 180", "bob→alice 200", "alice→bob ACK (dropped)"}
	// 2xx retransmissions at T1, 2T1, 4T1, then every T2 until 64*T1:
	// 10 of them, each answered by an ACK that never arrives.
	for range 10 {
		want = append(want, "bob→alice 200", "alice→bob ACK (dropped)")
	}
	want = append(want, "bob→alice BYE", "alice→bob 200 (dropped)")
	assert.Equal(t, want, flow[:len(want)])
	assert.Equal(t, []string{"no ACK: BYE", "failed BYE"}, bob.events, "the BYE itself times out too")
}

func TestLadderUnknownDialog481(t *testing.T) {
	flow, alice, _ := ladder(t, func(n *siptest.Network, alice, bob *ua) {
		alice.do(func() {
			alice.invite(bob)
		})
		time.Sleep(time.Second)
		// Bob forgets the call; alice's BYE then matches no dialog.
		bob.do(func() { bob.dialogs = NewSet() })
		alice.do(func() { alice.bye(alice.onlyDialog()) })
	})
	assert.Equal(t, []string{"alice→bob BYE", "bob→alice 481"}, flow[4:])
	assert.Equal(t, []string{"confirmed bobtag1", "BYE 481"}, alice.events)
}

func TestLadderCSeqOrder500(t *testing.T) {
	flow, alice, _ := ladder(t, func(n *siptest.Network, alice, bob *ua) {
		alice.do(func() { alice.invite(bob) })
		time.Sleep(time.Second)
		alice.do(func() {
			d := alice.dialogs.Get(alice.onlyDialog())
			d.LocalSeq = 0 // a broken peer restarting its CSeq below the INVITE's
			req := d.build("INFO", 0)
			req.Header.PrependVia(alice.via())
			_, err := alice.layer.Request(req, bob.addr, false, time.Now())
			require.NoError(t, err)
		})
	})
	assert.Equal(t, []string{"alice→bob INFO", "bob→alice 500"}, flow[4:])
	assert.Equal(t, []string{"confirmed bobtag1", "INFO 500"}, alice.events)
}

func TestLadderForked2xx(t *testing.T) {
	flow, alice, _ := ladder(t, func(n *siptest.Network, alice, bob *ua) {
		// Bob plays a forking proxy: two 2xx with different To tags come
		// back for one INVITE. Alice acknowledges both: two dialogs.
		bob.answer = func(u *ua, tx *transaction.Server, req *message.Request) {
			u.respond(tx, req, 200)
			u.dialogN++
			second := message.NewResponse(req, 200, "", "bobtag-fork")
			second.Header.Add("Contact", u.contact())
			require.NoError(t, u.layer.Respond(tx, second, time.Now()))
			d, err := NewUAS(req, second)
			require.NoError(t, err)
			u.dialogs.Add(d)
			u.waits[d.ID] = NewAckWait(second, Timers{}, time.Now())
		}
		alice.do(func() { alice.invite(bob) })
	})
	assert.Equal(t, []string{
		"alice→bob INVITE",
		"bob→alice 200",
		"bob→alice 200",
		"alice→bob ACK",
		"alice→bob ACK",
	}, flow)
	assert.Equal(t, []string{"confirmed bobtag1", "confirmed bobtag-fork"}, alice.events)
	assert.Equal(t, 2, alice.dialogs.Len())
}
