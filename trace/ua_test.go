package trace_test

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/siptest"
	"github.com/sipua/sip/trace"
)

// TestUserAgentTracesRetransmissions: two UserAgents on the in-memory
// network; the first INVITE is lost, so alice's tracer sees it sent twice
// (the transaction layer's retransmission), in causal order with what she
// receives; a shared, deduplicated recorder draws the whole call once.
func TestUserAgentTracesRetransmissions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		aliceAddr, bobAddr := siptest.Addr("192.0.2.1:5060"), siptest.Addr("192.0.2.2:5060")
		n := siptest.NewNetwork(11)
		defer n.Close()
		require.NoError(t, n.SetLinks(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		require.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Down: true, Delay: 10 * time.Millisecond}))

		aliceRec := trace.NewRecorder(0)
		both := trace.NewRecorder(0)
		shared := trace.Dedup(both, 0)
		var text bytes.Buffer
		tw := trace.NewTextWriter(&text, trace.TextOptions{})
		invs := make(chan *sip.Invitation, 1)
		start := func(name string, addr netip.AddrPort, tr trace.Tracer, d sip.UserAgentDelegate) *sip.UserAgent {
			ua, err := sip.NewUserAgent(sip.UserAgentOptions{
				URI:          "sip:" + name + "@" + addr.String(),
				Transport:    sip.TransportOptions{Listen: []string{"udp://" + addr.String()}, ListenPacket: n.PacketListener(name)},
				Delegate:     d,
				MediaFactory: sip.NoMedia,
				Tracer:       tr,
			})
			require.NoError(t, err)
			require.NoError(t, ua.Start(context.Background()))
			t.Cleanup(func() { assert.NoError(t, ua.Stop(context.Background())) })
			return ua
		}
		alice := start("alice", aliceAddr, trace.Multi(aliceRec, shared, tw), sip.UserAgentDelegate{})
		start("bob", bobAddr, shared, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			assert.NoError(t, inv.Progress(context.Background(), sip.ProgressOptions{}))
			assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{}))
			invs <- inv
		}})
		go func() {
			time.Sleep(100 * time.Millisecond) // the first INVITE is lost
			assert.NoError(t, n.SetLink(aliceAddr, bobAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		}()
		call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
		require.NoError(t, err)
		require.NoError(t, call.Invite(context.Background(), sip.InviteOptions{}))
		<-invs
		time.Sleep(time.Second)
		require.NoError(t, call.Bye(context.Background()))
		synctest.Wait()

		var seen []string
		for _, ev := range aliceRec.Events() {
			require.Equal(t, "UDP", ev.Transport)
			require.Equal(t, aliceAddr, ev.Local)
			require.Equal(t, bobAddr, ev.Remote)
			require.NotNil(t, ev.Message, "parsed")
			seen = append(seen, ev.Dir.String()+" "+strings.Fields(ev.Summary())[0])
		}
		assert.Equal(t, []string{
			"sent INVITE", "sent INVITE", "received 180", "received 200", "sent ACK", "sent BYE", "received 200",
		}, seen, "retransmission traced; each request before its responses")
		evs := aliceRec.Events()
		assert.Equal(t, evs[0].Raw, evs[1].Raw, "a retransmission is the same bytes")
		assert.Equal(t, 500*time.Millisecond, evs[1].Time.Sub(evs[0].Time), "Timer A: T1")

		ids := both.CallIDs()
		require.Len(t, ids, 1)
		l := trace.NewLadder(both.Events(), ids[0], trace.LadderOptions{Name: func(a netip.AddrPort) string {
			return map[netip.AddrPort]string{aliceAddr: "alice", bobAddr: "bob"}[a]
		}})
		var mmd bytes.Buffer
		require.NoError(t, l.WriteMermaid(&mmd))
		var arrows []string
		for _, line := range strings.Split(mmd.String(), "\n") {
			if strings.HasPrefix(line, "    P") {
				arrows = append(arrows, strings.TrimSpace(line))
			}
		}
		assert.Equal(t, []string{
			"P1->>P2: INVITE",
			"P1->>P2: INVITE (retransmission)",
			"P2-->>P1: 180 Ringing",
			"P2-->>P1: 200 OK",
			"P1->>P2: ACK",
			"P1->>P2: BYE",
			"P2-->>P1: 200 OK",
		}, arrows, "each message once, though both UserAgents traced it")
		assert.Equal(t, 7, strings.Count("\n"+text.String(), "\n----- "), "the text log has alice's 7 messages")
		require.NoError(t, tw.Err())
	})
}
