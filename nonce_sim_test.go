package sip_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest"
	"github.com/sipua/sip/siptest/sipserver"
)

// TestRegisterRefreshReusesNonce: the registrar's nonce is reused for the
// refreshes with the nonce count going up (RFC 7616 §3.4.5), so a refresh
// is one REGISTER; when the nonce has expired the stale challenge is
// answered and the registration goes on with the new nonce, from nc 1.
// Virtual time: refreshes every 54 s (Expires 60), nonces live 150 s.
func TestRegisterRefreshReusesNonce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(19)
		defer n.Close()
		srv, err := sipserver.New(sipserver.Options{Domain: "sipua.test", Users: map[string]string{"alice": "alice-pw"},
			NonceLifetime: 150 * time.Second, ListenPacket: n.PacketListener("registrar")})
		require.NoError(t, err)
		defer srv.Close()
		_, err = srv.Listen(t.Context(), "udp", "192.0.2.10:5060")
		require.NoError(t, err)
		alice := lifeUA(t, n, "alice", aliceAddr, sip.UserAgentDelegate{}, func(o *sip.UserAgentOptions) {
			o.URI = "sip:alice@sipua.test"
			o.AuthorizationPassword = "alice-pw"
		})
		require.NoError(t, alice.Start(context.Background()))
		reg, err := sip.NewRegisterer(alice, sip.RegistererOptions{Registrar: "sip:192.0.2.10:5060", Expires: 60})
		require.NoError(t, err)
		var lost atomic.Int32
		reg.OnStateChange(func(s sip.RegistererState) {
			if s != sip.Registered {
				lost.Add(1)
			}
		})
		require.NoError(t, reg.Register(context.Background(), sip.RegisterOptions{}))
		time.Sleep(4*54*time.Second + time.Second) // four refreshes
		synctest.Wait()
		assert.Equal(t, sip.Registered, reg.State())
		assert.Zero(t, lost.Load(), "the registration never lapsed")

		// Each REGISTER the registrar received with the nonce count of its
		// credentials, and the answer to it.
		var got []string
		var callIDs = map[string]bool{}
		answers := map[uint32]string{}
		var order []uint32
		for _, e := range srv.Trace() {
			switch m := e.Msg.(type) {
			case *message.Request:
				if e.Dir != sipserver.In || m.Method != "REGISTER" {
					continue
				}
				cs, _ := m.Header.CSeq()
				nc := "-"
				if v := m.Header.Get("Authorization"); v != "" {
					_, after, _ := strings.Cut(v, "nc=")
					nc, _, _ = strings.Cut(after, ",")
				}
				callIDs[m.Header.CallID()] = true
				order = append(order, cs.Seq)
				answers[cs.Seq] = nc
			case *message.Response:
				cs, _ := m.Header.CSeq()
				if e.Dir != sipserver.Out || cs.Method != "REGISTER" {
					continue
				}
				a := strconv.Itoa(m.StatusCode)
				if strings.Contains(m.Header.Get("WWW-Authenticate"), "stale=true") {
					a += " stale"
				}
				answers[cs.Seq] += ":" + a
			}
		}
		for _, seq := range order {
			got = append(got, answers[seq])
		}
		assert.Equal(t, []string{
			"-:401", "00000001:200", // the first registration is challenged
			"00000002:200",                       // refresh 1 (54 s): one REGISTER, nonce reused
			"00000003:200",                       // refresh 2 (108 s)
			"00000004:401 stale", "00000001:200", // refresh 3 (162 s): nonce expired at 150 s
			"00000002:200", // refresh 4 (216 s): the new nonce reused
		}, got)
		assert.Len(t, callIDs, 1)
	})
}
