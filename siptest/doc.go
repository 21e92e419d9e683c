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
package siptest
