package replay

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/siptest"
)

const ok200 = "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"

// TestRecorder: the Recorder sees what a conn writes (side B) and reads
// (side A), with virtual times, and leaves out keep-alives, other
// addresses and failed writes.
func TestRecorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		uaAddr, peerAddr := siptest.Addr("192.0.2.2:5070"), siptest.Addr("192.0.2.1:5060")
		require.NoError(t, n.SetLinks(uaAddr, peerAddr, siptest.Link{Delay: 10 * time.Millisecond}))
		rec := &Recorder{}
		pc, err := rec.ListenPacket(n.PacketListener("ua"))(context.Background(), "udp", uaAddr.String())
		require.NoError(t, err)
		peer, err := n.ListenPacket("peer", peerAddr)
		require.NoError(t, err)
		other, err := n.ListenPacket("other", siptest.Addr("192.0.2.3:5060"))
		require.NoError(t, err)
		buf := make([]byte, 2048)

		time.Sleep(time.Second) // the trace starts with its first message
		_, err = pc.WriteTo([]byte(register), net.UDPAddrFromAddrPort(peerAddr))
		require.NoError(t, err)
		_, from, err := peer.ReadFrom(buf)
		require.NoError(t, err)
		_, err = peer.WriteTo([]byte(ok200), from)
		require.NoError(t, err)
		m, _, err := pc.ReadFrom(buf)
		require.NoError(t, err)
		assert.Equal(t, ok200, string(buf[:m]))

		_, err = pc.WriteTo([]byte("\r\n\r\n"), net.UDPAddrFromAddrPort(peerAddr)) // a keep-alive
		require.NoError(t, err)
		_, err = other.WriteTo([]byte(ok200), net.UDPAddrFromAddrPort(uaAddr)) // another party
		require.NoError(t, err)
		_, _, err = pc.ReadFrom(buf)
		require.NoError(t, err)

		require.NoError(t, pc.Close())
		_, err = pc.WriteTo([]byte(register), net.UDPAddrFromAddrPort(peerAddr))
		require.Error(t, err, "a closed conn")

		tr := rec.Trace()
		assert.Equal(t, []string{"B->A REGISTER", "A->B 200"}, tr.Flow())
		assert.Equal(t, []time.Duration{0, 20 * time.Millisecond}, []time.Duration{tr.Messages[0].At, tr.Messages[1].At})
		assert.Equal(t, peerAddr, tr.A.Addr)
		assert.Equal(t, uaAddr, tr.B.Addr)
		assert.Equal(t, register, string(tr.Messages[0].Data))
		assert.Equal(t, 1, rec.Skipped())
		assert.Equal(t, 2, rec.Len())

		rec.Reset()
		assert.Zero(t, rec.Len())
		assert.Empty(t, rec.Trace().Messages)
	})
}

// TestRecorderRemoteAndKeepAlives: Remote selects the party; KeepAlives
// keeps the CRLFs.
func TestRecorderRemoteAndKeepAlives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		uaAddr, peerAddr := siptest.Addr("192.0.2.2:5070"), siptest.Addr("192.0.2.1:5060")
		other, err := n.ListenPacket("other", siptest.Addr("192.0.2.3:5060"))
		require.NoError(t, err)
		peer, err := n.ListenPacket("peer", peerAddr)
		require.NoError(t, err)
		rec := &Recorder{Remote: peerAddr, KeepAlives: true}
		raw, err := n.ListenPacket("ua", uaAddr)
		require.NoError(t, err)
		pc := rec.Wrap(raw)
		_, err = pc.WriteTo([]byte(register), other.LocalAddr()) // not the Remote
		require.NoError(t, err)
		_, err = pc.WriteTo([]byte("\r\n\r\n"), peer.LocalAddr())
		require.NoError(t, err)
		tr := rec.Trace()
		assert.Equal(t, []string{"B->A CRLFCRLF"}, tr.Flow())
		assert.Equal(t, 1, rec.Skipped())
		assert.Equal(t, "ua", tr.B.Name)
		assert.Equal(t, "peer", tr.A.Name)
	})
}
