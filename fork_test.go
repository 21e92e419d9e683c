package sip_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
)

// scriptPeer is a scripted SIP element on the in-memory network: a
// forking proxy, a redirect server, a peer answering 491. Its handler
// sees each request with a function sending responses (or requests) back.
type scriptPeer struct {
	mu   sync.Mutex
	reqs []seenRequest
}

type seenRequest struct {
	at  netip.AddrPort
	req *message.Request
}

func (p *scriptPeer) requests(method string) []seenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []seenRequest
	for _, r := range p.reqs {
		if method == "" || r.req.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// listen starts the peer on addr; h answers each request (ACKs included).
func (p *scriptPeer) listen(t *testing.T, n *siptest.Network, name string, addr netip.AddrPort,
	h func(req *message.Request, send func(message.Message))) {
	t.Helper()
	var ep *siptest.Endpoint
	ep, err := n.ListenFunc(name, addr, func(pk siptest.Packet) {
		m, err := message.Parse(pk.Data)
		if err != nil {
			t.Errorf("%s: unparsable message: %v", name, err)
			return
		}
		req, ok := m.(*message.Request)
		if !ok {
			return
		}
		p.mu.Lock()
		p.reqs = append(p.reqs, seenRequest{addr, req})
		p.mu.Unlock()
		h(req, func(out message.Message) {
			var b []byte
			switch o := out.(type) {
			case *message.Response:
				b = o.AppendTo(nil)
			case *message.Request:
				b = o.AppendTo(nil)
			}
			_ = ep.Send(pk.From, b)
		})
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ep.Close() })
}

// reply builds a response to req with To tag tag, a Contact at addr and
// an SDP body when sdp is not empty.
func reply(req *message.Request, code int, tag string, addr netip.AddrPort, sdp string) *message.Response {
	r := message.NewResponse(req, code, "", tag)
	if addr.IsValid() {
		r.Header.Add("Contact", "<sip:peer@"+addr.String()+">")
	}
	if sdp != "" {
		r.Header.Add("Content-Type", "application/sdp")
		r.Body = []byte(sdp)
	}
	return r
}

// startSimUA starts a UserAgent on n at addr.
func startSimUA(t *testing.T, n *siptest.Network, name string, addr netip.AddrPort, f media.Factory, d sip.UserAgentDelegate) *sip.UserAgent {
	t.Helper()
	if f == nil {
		f = sip.NoMedia
	}
	return sip.StartTestUA(t, sip.UserAgentOptions{
		URI:          "sip:" + name + "@" + addr.String(),
		Transport:    sip.TransportOptions{Listen: []string{"udp://" + addr.String()}, ListenPacket: n.PacketListener(name)},
		MediaFactory: f,
		Delegate:     d,
	})
}

// TestSimForkedCall: the INVITE forks into two early dialogs (180 from
// one, 183 with early media from the other), both answer 200; the first
// 2xx wins, the second is acknowledged and ended with BYE (RFC 3261
// §13.2.2.4), and the winner's answer replaces the early one.
func TestSimForkedCall(t *testing.T) {
	for _, policy := range []sip.EarlyMediaPolicy{sip.EarlyMediaFirst, sip.EarlyMediaLatest} {
		t.Run(policy.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := siptest.NewNetwork(11)
				defer n.Close()
				require.NoError(t, n.SetDefaultLink(siptest.Link{Delay: 5 * time.Millisecond}))
				var p scriptPeer
				p.listen(t, n, "forker", bobAddr, func(req *message.Request, send func(message.Message)) {
					switch req.Method {
					case "INVITE":
						go func() {
							send(reply(req, 183, "tagA", bobAddr, "sdp-A"))
							time.Sleep(10 * time.Millisecond)
							send(reply(req, 183, "tagB", bobAddr, "sdp-B"))
							time.Sleep(10 * time.Millisecond)
							send(reply(req, 200, "tagA", bobAddr, "sdp-A2"))
							time.Sleep(10 * time.Millisecond)
							send(reply(req, 200, "tagB", bobAddr, "sdp-B"))
						}()
					case "BYE":
						send(reply(req, 200, "", netip.AddrPort{}, ""))
					}
				})
				h := sip.TestReplacingMedia{TestMedia: &sip.TestMedia{SDP: "sdp-offer"}}
				alice := startSimUA(t, n, "alice", aliceAddr, func(media.SessionInfo) (media.Handler, error) { return h, nil }, sip.UserAgentDelegate{})
				call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{EarlyMedia: true, EarlyMediaPolicy: policy})
				require.NoError(t, err)
				var mu sync.Mutex
				var progress, earlyMedia []string
				require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{
					OnProgress: func(r *message.Response) {
						mu.Lock()
						progress = append(progress, fmt.Sprintf("%d %s", r.StatusCode, r.Header.ToTag()))
						mu.Unlock()
					},
					OnEarlyMedia: func(e sip.EarlyDialog) {
						mu.Lock()
						earlyMedia = append(earlyMedia, e.RemoteTag)
						mu.Unlock()
					},
				}))
				time.Sleep(time.Second)
				synctest.Wait()
				assert.Equal(t, sip.SessionEstablished, call.State())
				_, _, remote := call.DialogID()
				assert.Equal(t, "tagA", remote, "the first 2xx wins")

				eds := call.EarlyDialogs()
				require.Len(t, eds, 2)
				assert.Equal(t, "tagA", eds[0].RemoteTag)
				assert.Equal(t, "tagB", eds[1].RemoteTag)
				assert.True(t, eds[0].HasAnswer && eds[1].HasAnswer)
				mu.Lock()
				assert.Equal(t, []string{"183 tagA", "183 tagB"}, progress)
				if policy == sip.EarlyMediaLatest {
					assert.Equal(t, []string{"tagA", "tagB"}, earlyMedia)
					assert.True(t, eds[1].MediaActive)
					assert.Equal(t, []string{"set sdp-A", "replace sdp-B", "replace sdp-A2"}, h.Calls())
				} else {
					assert.Equal(t, []string{"tagA"}, earlyMedia)
					assert.True(t, eds[0].MediaActive)
					assert.Equal(t, []string{"set sdp-A", "replace sdp-A2"}, h.Calls(),
						"the 2xx's answer differs from the 183's: it replaces it")
				}
				mu.Unlock()

				// Both 2xx acknowledged; the second dialog ended with BYE.
				acks := map[string]int{}
				for _, r := range p.requests("ACK") {
					acks[r.req.Header.ToTag()]++
				}
				assert.Equal(t, map[string]int{"tagA": 1, "tagB": 1}, acks)
				byes := p.requests("BYE")
				require.Len(t, byes, 1)
				assert.Equal(t, "tagB", byes[0].req.Header.ToTag())

				require.NoError(t, call.Bye(context.Background()))
				byes = p.requests("BYE")
				require.Len(t, byes, 2)
				assert.Equal(t, "tagA", byes[1].req.Header.ToTag())
			})
		})
	}
}

var (
	redirAddr = siptest.Addr("192.0.2.10:5060")
	c1Addr    = siptest.Addr("192.0.2.11:5060")
	c2Addr    = siptest.Addr("192.0.2.12:5060")
	c3Addr    = siptest.Addr("192.0.2.13:5060")
)

// TestSimRedirect: 3xx Contacts are tried in q order, then order of
// appearance, each with a new INVITE (same Call-ID, From tag and To, next
// CSeq, new branch); targets already tried are skipped (loops), and the
// number of redirects followed is bounded.
func TestSimRedirect(t *testing.T) {
	setup := func(t *testing.T, n *siptest.Network, redirContacts string) *scriptPeer {
		var p scriptPeer
		contacts := map[netip.AddrPort]string{
			redirAddr: redirContacts,
			c3Addr:    "<sip:bob@" + c3Addr.String() + ">",       // itself: a loop, skipped
			c2Addr:    "<sip:bob@" + c1Addr.String() + ">;q=0.1", // already pending
		}
		for _, a := range []netip.AddrPort{redirAddr, c1Addr, c2Addr, c3Addr} {
			p.listen(t, n, a.Addr().String(), a, func(req *message.Request, send func(message.Message)) {
				switch req.Method {
				case "INVITE":
					if a == c1Addr {
						send(reply(req, 200, "c1tag", c1Addr, ""))
						return
					}
					r := reply(req, 302, "", netip.AddrPort{}, "")
					if c := contacts[a]; c != "" {
						r.Header.Add("Contact", c)
					}
					send(r)
				case "BYE":
					send(reply(req, 200, "", netip.AddrPort{}, ""))
				}
			})
		}
		return &p
	}
	targetOf := func(p *scriptPeer) []netip.AddrPort {
		var out []netip.AddrPort
		for _, r := range p.requests("INVITE") {
			out = append(out, r.at)
		}
		return out
	}
	order := "<sip:bob@" + c1Addr.String() + ">;q=0.5, <sip:bob@" + c2Addr.String() + ">;q=0.9, <sip:bob@" + c3Addr.String() + ">"

	t.Run("q order", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(12)
			defer n.Close()
			p := setup(t, n, order)
			alice := startSimUA(t, n, "alice", aliceAddr, nil, sip.UserAgentDelegate{})
			call, err := sip.NewInviter(alice, "sip:bob@"+redirAddr.String(), sip.InviterOptions{})
			require.NoError(t, err)
			var redirects []int
			var mu sync.Mutex
			require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{OnRedirect: func(r *message.Response) {
				mu.Lock()
				redirects = append(redirects, r.StatusCode)
				mu.Unlock()
			}}))
			assert.Equal(t, []netip.AddrPort{redirAddr, c3Addr, c2Addr, c1Addr}, targetOf(p))
			invs := p.requests("INVITE")
			first, _ := invs[0].req.Header.CSeq()
			branches := map[string]bool{}
			for k, r := range invs {
				assert.Equal(t, invs[0].req.Header.CallID(), r.req.Header.CallID())
				assert.Equal(t, invs[0].req.Header.FromTag(), r.req.Header.FromTag())
				assert.Equal(t, invs[0].req.Header.Get("To"), r.req.Header.Get("To"))
				c, _ := r.req.Header.CSeq()
				assert.Equal(t, first.Seq+uint32(k), c.Seq)
				v, _ := r.req.Header.TopVia()
				branches[v.Branch()] = true
			}
			assert.Len(t, branches, 4, "a new branch per INVITE")
			synctest.Wait()
			mu.Lock()
			assert.Equal(t, []int{302, 302, 302}, redirects)
			mu.Unlock()
			assert.Equal(t, sip.SessionEstablished, call.State())
			require.NoError(t, call.Bye(context.Background()))
		})
	})
	t.Run("limit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(13)
			defer n.Close()
			p := setup(t, n, order)
			alice := startSimUA(t, n, "alice", aliceAddr, nil, sip.UserAgentDelegate{})
			call, err := sip.NewInviter(alice, "sip:bob@"+redirAddr.String(), sip.InviterOptions{MaxRedirects: 2})
			require.NoError(t, err)
			err = call.Invite(context.Background(), sip.InviteOptions{})
			require.ErrorIs(t, err, sip.ErrRedirectFailed)
			var re *sip.ResponseError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, 302, re.StatusCode)
			assert.Contains(t, err.Error(), "limit of 2")
			assert.Equal(t, []netip.AddrPort{redirAddr, c3Addr, c2Addr}, targetOf(p))
			assert.Equal(t, sip.EndRejected, call.EndReason().Cause)
		})
	})
	t.Run("not followed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(14)
			defer n.Close()
			p := setup(t, n, order)
			alice := startSimUA(t, n, "alice", aliceAddr, nil, sip.UserAgentDelegate{})
			call, err := sip.NewInviter(alice, "sip:bob@"+redirAddr.String(), sip.InviterOptions{MaxRedirects: -1})
			require.NoError(t, err)
			err = call.Invite(context.Background(), sip.InviteOptions{})
			var re *sip.ResponseError
			require.ErrorAs(t, err, &re)
			assert.False(t, errors.Is(err, sip.ErrRedirectFailed))
			assert.Equal(t, []netip.AddrPort{redirAddr}, targetOf(p))
		})
	})
	t.Run("loop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(15)
			defer n.Close()
			p := setup(t, n, "<sip:bob@"+redirAddr.String()+">")
			alice := startSimUA(t, n, "alice", aliceAddr, nil, sip.UserAgentDelegate{})
			call, err := sip.NewInviter(alice, "sip:bob@"+redirAddr.String(), sip.InviterOptions{})
			require.NoError(t, err)
			err = call.Invite(context.Background(), sip.InviteOptions{})
			require.ErrorIs(t, err, sip.ErrRedirectFailed)
			assert.Contains(t, err.Error(), "loop")
			assert.Len(t, targetOf(p), 1)
		})
	})
	t.Run("no contact", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := siptest.NewNetwork(16)
			defer n.Close()
			setup(t, n, "")
			alice := startSimUA(t, n, "alice", aliceAddr, nil, sip.UserAgentDelegate{})
			call, err := sip.NewInviter(alice, "sip:bob@"+redirAddr.String(), sip.InviterOptions{})
			require.NoError(t, err)
			err = call.Invite(context.Background(), sip.InviteOptions{})
			require.ErrorIs(t, err, sip.ErrRedirectFailed)
			assert.Contains(t, err.Error(), "no usable Contact")
		})
	})
}
