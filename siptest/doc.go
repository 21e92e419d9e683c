// Package siptest is the public test kit of sipua: tools to test SIP
// applications without sockets, sleeps or flaky timing.
//
// This part of the kit is a deterministic in-memory datagram network. A
// Network holds named Endpoints, each bound to a netip.AddrPort, that send
// datagrams to each other as UDP sockets would: Send copies the bytes, a
// datagram to an address where nobody listens is silently dropped (and
// counted), and nothing is ever delivered twice unless a link says so.
//
// Every direction between two addresses is a Link: a probability of Loss,
// a probability of Duplicate delivery, a fixed one-way Delay, a uniform
// random Jitter (which reorders datagrams) and a Down switch (a partition).
// Links can be changed at any moment of a test to simulate an outage; a
// change applies to datagrams sent after it.
//
// # Determinism
//
// Every random decision comes from math/rand/v2 sources seeded from the
// seed given to NewNetwork: each direction (from, to) has its own stream, so
// the fate of a datagram depends only on the seed and on what was sent
// before it in the same direction, not on how goroutines interleave
// elsewhere. The same seed and the same traffic give the same run.
//
// # Virtual time
//
// Deliveries are timed with the standard time package (one time.Timer per
// Network). Run your test inside a testing/synctest bubble and the network's
// delays cost no wall time: time is virtual, a 32-second SIP timer B
// elapses instantly, and the timestamps of the trace are exact.
//
//	func TestInvite(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			n := siptest.NewNetwork(1)
//			defer n.Close()
//			alice, _ := n.Listen("alice", siptest.Addr("192.0.2.1:5060"))
//			bob, _ := n.Listen("bob", siptest.Addr("192.0.2.2:5060"))
//			n.SetLinks(alice.Addr(), bob.Addr(), siptest.Link{Delay: 50 * time.Millisecond, Loss: 0.1})
//			// … run the UAs over alice and bob …
//			synctest.Wait()
//			require.Equal(t, []string{"alice→bob INVITE", "bob→alice 100", "bob→alice 200"}, n.Flow())
//		})
//	}
//
// Create the Network inside the bubble: its timer belongs to the bubble in
// which it is first used. Outside a bubble the kit works on real time; a
// link with no Delay and no Jitter then still delivers at once (though
// asynchronously, as a real network does).
//
// # Receiving
//
// An Endpoint queues what it receives until Recv or TryRecv takes it, or
// hands each datagram, in order, to a handler given to ListenFunc. A handler
// runs on a goroutine that exists only while datagrams are waiting, and
// never while the Network holds a lock, so it may call back into the kit.
// Close an Endpoint (or the whole Network) to drop everything still in
// flight to it; no goroutine of the kit outlives it.
//
// # Sockets and whole user agents
//
// Network.ListenPacket returns an Endpoint as a net.PacketConn (a
// *PacketConn), for code written against UDP sockets: ReadFrom blocks until
// a datagram arrives, its deadline expires (on virtual time in a bubble) or
// the conn is closed (net.ErrClosed). Network.PacketListener returns a
// function with the signature of net.ListenConfig.ListenPacket that opens
// such conns at the numeric address asked for (port 0: a free port), for
// components that open their own sockets.
//
// Give it to a sip.UserAgent as TransportOptions.ListenPacket and the
// UserAgent's UDP runs on the Network: two or more UserAgents then talk
// through its Links, and every RFC 3261 timer (retransmissions, the
// 32-second timeouts) runs on virtual time:
//
//	func TestMessage(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			n := siptest.NewNetwork(1)
//			defer n.Close()
//			newUA := func(name, addr string, d sip.UserAgentDelegate) *sip.UserAgent {
//				ua, err := sip.NewUserAgent(sip.UserAgentOptions{
//					URI: "sip:" + name + "@" + addr,
//					Transport: sip.TransportOptions{
//						Listen:       []string{"udp://" + addr},
//						ListenPacket: n.PacketListener(name),
//					},
//					Delegate: d,
//				})
//				require.NoError(t, err)
//				require.NoError(t, ua.Start(t.Context()))
//				t.Cleanup(func() { ua.Stop(context.Background()) })
//				return ua
//			}
//			alice := newUA("alice", "192.0.2.1:5060", sip.UserAgentDelegate{})
//			newUA("bob", "192.0.2.2:5060", sip.UserAgentDelegate{
//				OnMessage: func(r *sip.IncomingRequest) { r.Accept(context.Background()) },
//			})
//			n.SetLinks(siptest.Addr("192.0.2.1:5060"), siptest.Addr("192.0.2.2:5060"), siptest.Link{Loss: 0.3})
//			m, _ := sip.NewMessager(alice, "sip:bob@192.0.2.2:5060", []byte("hi"), "text/plain", sip.RequestOptions{})
//			require.NoError(t, m.Message(t.Context()))
//			t.Log(n.Ladder()) // the losses and the retransmissions
//		})
//	}
//
// Use numeric addresses only (host names would need real DNS), create the
// Network and the UserAgents inside the bubble, and Stop every UserAgent
// before the bubble ends: synctest fails a test that leaves goroutines
// behind. A UserAgent on a Network keeps every request on UDP, however
// large (the RFC 3261 §18.1.1 switch to TCP would leave the Network).
//
// # Traces and ladder diagrams
//
// The Network records every sent, delivered and dropped datagram as an
// Event with its (virtual) time. Ladder renders a trace as a text ladder
// diagram, one line per datagram, labelled with the first line of the SIP
// message it carries; Flow renders the compact form meant for assertions:
//
//	alice→bob INVITE
//	bob→alice 100
//	bob→alice 200 (dropped)
//
// # A registrar and proxy
//
// Package github.com/sipua/sip/siptest/sipserver completes the kit with a
// small registrar and record-routing proxy, for tests that need a server
// between user agents and for demos: sipserver.New, Listen on UDP, TCP or
// WebSocket on loopback (or, through Options.ListenPacket, on a Network,
// inside a synctest bubble), optional digest authentication, and a trace
// of every message the server sees (Flow, Ladder). It is a package of its
// own because it is built on package transport, whose tests use siptest.
package siptest
