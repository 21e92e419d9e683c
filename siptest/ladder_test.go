package siptest_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/siptest"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in          string
		full, short string
	}{
		{"INVITE sip:bob@example.com SIP/2.0\r\nVia: x\r\n\r\n", "INVITE", "INVITE"},
		{"SIP/2.0 180 Ringing\r\n\r\n", "180 Ringing", "180"},
		{"SIP/2.0 200 OK\r\n\r\n", "200 OK", "200"},
		{"SIP/2.0 503 Service Unavailable\n\n", "503 Service Unavailable", "503"},
		{"SIP/2.0 486\r\n\r\n", "486", "486"},
		{"\r\nOPTIONS sip:x SIP/2.0\r\n\r\n", "OPTIONS", "OPTIONS"},
		{"OPTIONS sip:x SIP/2.0", "OPTIONS", "OPTIONS"},
		{"\r\n\r\n", "CRLFCRLF", "CRLFCRLF"},
		{"\r\n", "CRLF", "CRLF"},
		{"", "[0 bytes]", "[0 bytes]"},
		{"hello world", "[11 bytes]", "[11 bytes]"},
		{"SIP/2.0 2000 OK\r\n", "[17 bytes]", "[17 bytes]"},
		{"HTTP/1.1 200 OK\r\n", "[17 bytes]", "[17 bytes]"},
		{"INV\xffTE sip:x SIP/2.0\r\n", "[22 bytes]", "[22 bytes]"},
		{"INV(TE sip:x SIP/2.0\r\n", "[22 bytes]", "[22 bytes]"},
	} {
		full, short := siptest.Summarize([]byte(tc.in))
		assert.Equal(t, tc.full, full, "%q", tc.in)
		assert.Equal(t, tc.short, short, "%q", tc.in)
	}
}

// call plays an INVITE transaction over a slow, lossy path, with each loss
// forced by a link change so that the expected ladder is exact.
func call(t *testing.T) *siptest.Network {
	n, alice, bob := pair(t, 1)
	carol, err := n.Listen("carol", carolAddr)
	require.NoError(t, err)
	slow := siptest.Link{Delay: 50 * time.Millisecond}
	require.NoError(t, n.SetLinks(aliceAddr, bobAddr, slow))
	send := func(from *siptest.Endpoint, to *siptest.Endpoint, data []byte) {
		t.Helper()
		require.NoError(t, from.Send(to.Addr(), data))
	}

	send(alice, bob, request("INVITE"))
	time.Sleep(50 * time.Millisecond)
	send(bob, alice, response("100 Trying"))
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, n.SetLink(bobAddr, aliceAddr, siptest.Link{Loss: 1}))
	send(bob, alice, response("200 OK"))
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, n.SetLink(bobAddr, aliceAddr, slow))
	send(bob, alice, response("200 OK"))
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Delay: 50 * time.Millisecond, Duplicate: 1}))
	send(alice, bob, request("ACK"))
	send(carol, alice, request("MESSAGE"))
	n.SetDown(carolAddr, bobAddr, true)
	send(carol, bob, request("MESSAGE"))
	send(alice, carol, []byte("\r\n\r\n"))
	time.Sleep(time.Second)
	require.NoError(t, alice.Send(daveAddr, request("BYE")))
	require.NoError(t, n.SetLink(aliceAddr, bobAddr, slow))
	send(alice, bob, request("BYE"))
	synctest.Wait()
	return n
}

func TestLadder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := call(t)
		want := "" +
			"  0.000s  alice           ────INVITE────▶  bob             +50ms\n" +
			"  0.050s  alice           ◀──100 Trying──  bob             +50ms\n" +
			"  0.150s  alice           ✗────200 OK────  bob             ✗ dropped (loss)\n" +
			"  0.650s  alice           ◀────200 OK────  bob             +50ms\n" +
			"  0.700s  alice           ─────ACK──────▶  bob             ×2 +50ms +50ms\n" +
			"  0.700s  alice           ◀───MESSAGE────  carol\n" +
			"  0.700s  bob             ✗───MESSAGE────  carol           ✗ dropped (link down)\n" +
			"  0.700s  alice           ───CRLFCRLF───▶  carol\n" +
			"  1.700s  alice           ─────BYE──────✗  192.0.2.4:5060  ✗ undeliverable (no endpoint)\n" +
			"  1.700s  alice           ─────BYE──────▶  bob             … in flight\n"
		assert.Equal(t, want, n.Ladder())
		t.Logf("\n%s", n.Ladder())
	})
}

func TestFlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := call(t)
		assert.Equal(t, []string{
			"alice→bob INVITE",
			"bob→alice 100",
			"bob→alice 200 (dropped)",
			"bob→alice 200",
			"alice→bob ACK (x2)",
			"carol→alice MESSAGE",
			"carol→bob MESSAGE (dropped)",
			"alice→carol CRLFCRLF",
			"alice→192.0.2.4:5060 BYE (undeliverable)",
			"alice→bob BYE (in flight)",
		}, n.Flow())

		// Closing bob drops the BYE in flight.
		require.NoError(t, n.Close())
		assert.Equal(t, "alice→bob BYE (undeliverable)", n.Flow()[9])

		s := n.Stats()
		assert.Equal(t, siptest.Stats{Sent: 10, Delivered: 7, Lost: 1, Partitioned: 1, Duplicated: 1, Undeliverable: 2}, s)
		assert.Equal(t, s.Sent+s.Duplicated, s.Delivered+s.Lost+s.Partitioned+s.Undeliverable)
	})
}

func TestLadderOfPackets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, alice, bob := pair(t, 1)
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 20 * time.Millisecond, Duplicate: 1}))
		require.NoError(t, alice.Send(bobAddr, request("REGISTER")))
		time.Sleep(time.Second)
		got := drain(bob)
		require.Len(t, got, 2)
		events := siptest.PacketEvents(got)
		names := n.Names()
		assert.Equal(t, []string{"alice→bob REGISTER (x2)"}, siptest.Flow(events, siptest.LadderOptions{Names: names}))
		assert.Equal(t, "  0.000s  alice  ──REGISTER──▶  bob    ×2 +20ms +20ms\n",
			siptest.Ladder(events, siptest.LadderOptions{Names: names}))
		assert.Equal(t, "  0.000s  192.0.2.1:5060  ──REGISTER──▶  192.0.2.2:5060  ×2 +20ms +20ms\n",
			siptest.Ladder(events, siptest.LadderOptions{}), "without names, addresses")
	})
}

func TestPacketEventsHandMade(t *testing.T) {
	t0 := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	pkts := []siptest.Packet{
		{From: aliceAddr, To: bobAddr, Data: request("INVITE"), SentAt: t0, DeliveredAt: t0.Add(time.Millisecond)},
		{From: bobAddr, To: aliceAddr, Data: response("180 Ringing"), SentAt: t0.Add(time.Second), DeliveredAt: t0.Add(time.Second)},
	}
	ev := siptest.PacketEvents(pkts)
	require.Len(t, ev, 4)
	assert.NotEqual(t, ev[0].ID, ev[2].ID, "hand-made packets are distinct datagrams")
	assert.Equal(t, []string{"192.0.2.1:5060→192.0.2.2:5060 INVITE", "192.0.2.2:5060→192.0.2.1:5060 180"},
		siptest.Flow(ev, siptest.LadderOptions{}))
	ladder := siptest.Ladder(ev, siptest.LadderOptions{Start: t0.Add(-time.Second)})
	assert.True(t, strings.HasPrefix(ladder, "  1.000s  "), ladder)
	assert.Contains(t, ladder, "  2.000s  192.0.2.1:5060  ◀──180 Ringing──  192.0.2.2:5060\n")
	assert.Empty(t, siptest.Ladder(nil, siptest.LadderOptions{}))
	assert.Empty(t, siptest.Flow(nil, siptest.LadderOptions{}))
}

func TestEventStrings(t *testing.T) {
	assert.Equal(t, "sent", siptest.EventSent.String())
	assert.Equal(t, "delivered", siptest.EventDelivered.String())
	assert.Equal(t, "dropped", siptest.EventDropped.String())
	assert.Equal(t, "EventKind(9)", siptest.EventKind(9).String())
	assert.Equal(t, "none", siptest.DropReason(0).String())
	assert.Equal(t, "loss", siptest.DropLoss.String())
	assert.Equal(t, "link down", siptest.DropDown.String())
	assert.Equal(t, "no endpoint", siptest.DropNoEndpoint.String())
	assert.Equal(t, "closed", siptest.DropClosed.String())
	assert.Equal(t, "DropReason(9)", siptest.DropReason(9).String())

	e := siptest.Event{Kind: siptest.EventDropped, ID: 3, Duplicate: true, From: aliceAddr, To: bobAddr,
		Data: request("INVITE"), Reason: siptest.DropClosed}
	assert.Equal(t, "#3 dropped 192.0.2.1:5060→192.0.2.2:5060 INVITE (duplicate) (closed)", e.String())
}
