package siptest_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/siptest"
)

// netipAddr is a net.Addr known only by its String.
type netipAddr netip.AddrPort

func (a netipAddr) Network() string { return "udp" }
func (a netipAddr) String() string  { return netip.AddrPort(a).String() }

var _ net.PacketConn = (*siptest.PacketConn)(nil)

// listenFunc is the signature of net.ListenConfig.ListenPacket, which
// PacketListener's functions have.
type listenFunc = func(ctx context.Context, network, address string) (net.PacketConn, error)

var _ listenFunc = new(net.ListenConfig).ListenPacket

func TestPacketConnReadWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		a, err := n.ListenPacket("alice", siptest.Addr("192.0.2.1:5060"))
		require.NoError(t, err)
		b, err := n.ListenPacket("bob", siptest.Addr("192.0.2.2:5060"))
		require.NoError(t, err)
		require.NoError(t, n.SetLinks(a.Endpoint().Addr(), b.Endpoint().Addr(), siptest.Link{Delay: 50 * time.Millisecond}))

		la, ok := a.LocalAddr().(*net.UDPAddr)
		require.True(t, ok, "LocalAddr is a *net.UDPAddr")
		assert.Equal(t, "192.0.2.1:5060", la.String())
		assert.Equal(t, "alice", a.Endpoint().Name())

		start := time.Now()
		nw, err := a.WriteTo([]byte("OPTIONS sip:bob@192.0.2.2 SIP/2.0\r\n\r\n"), b.LocalAddr())
		require.NoError(t, err)
		assert.Equal(t, 37, nw)
		buf := make([]byte, 100)
		nr, from, err := b.ReadFrom(buf)
		require.NoError(t, err)
		assert.Equal(t, 50*time.Millisecond, time.Since(start), "delivered after the link's delay")
		assert.Equal(t, "OPTIONS sip:bob@192.0.2.2 SIP/2.0\r\n\r\n", string(buf[:nr]))
		assert.Equal(t, la, from)

		// Any net.Addr naming an address and port will do; the reply
		// arrives truncated to the buffer, as from a UDP socket.
		_, err = b.WriteTo([]byte("SIP/2.0 200 OK\r\n\r\n"), netipAddr(siptest.Addr("192.0.2.1:5060")))
		require.NoError(t, err)
		nr, ap, err := a.ReadFromUDPAddrPort(buf[:7])
		require.NoError(t, err)
		assert.Equal(t, "SIP/2.0", string(buf[:nr]))
		assert.Equal(t, siptest.Addr("192.0.2.2:5060"), ap)
		assert.Equal(t, []string{"alice→bob OPTIONS", "bob→alice 200"}, n.Flow())

		for _, bad := range []net.Addr{nil, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2)}, netipAddr{}} {
			_, err = a.WriteTo([]byte("x"), bad)
			assert.ErrorIs(t, err, siptest.ErrInvalidAddr, "%v", bad)
			var oe *net.OpError
			assert.ErrorAs(t, err, &oe)
		}
	})
}

func TestPacketConnDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		a, err := n.ListenPacket("alice", netip.AddrPort{})
		require.NoError(t, err)
		b, err := n.ListenPacket("bob", netip.AddrPort{})
		require.NoError(t, err)
		buf := make([]byte, 100)
		timeout := func(t *testing.T, err error) {
			t.Helper()
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			assert.True(t, ne.Timeout())
		}

		// A deadline ends a read on virtual time, to the instant.
		start := time.Now()
		require.NoError(t, b.SetReadDeadline(start.Add(time.Second)))
		_, _, err = b.ReadFrom(buf)
		timeout(t, err)
		assert.Equal(t, time.Second, time.Since(start))

		// A deadline that has passed fails at once, even with a
		// datagram waiting, as on a socket; clearing it reads it.
		_, err = a.WriteTo([]byte("hello"), b.LocalAddr())
		require.NoError(t, err)
		synctest.Wait()
		_, _, err = b.ReadFrom(buf)
		timeout(t, err)
		require.NoError(t, b.SetReadDeadline(time.Time{}))
		nr, _, err := b.ReadFrom(buf)
		require.NoError(t, err)
		assert.Equal(t, "hello", string(buf[:nr]))

		// Changing the deadline affects a pending read: extended from 1s
		// to 3s at 500ms, it ends at 3s.
		start = time.Now()
		require.NoError(t, b.SetDeadline(start.Add(time.Second)))
		done := make(chan error)
		go func() {
			_, _, err := b.ReadFrom(buf)
			done <- err
		}()
		time.Sleep(500 * time.Millisecond)
		require.NoError(t, b.SetReadDeadline(start.Add(3*time.Second)))
		timeout(t, <-done)
		assert.Equal(t, 3*time.Second, time.Since(start))

		// Cleared while pending, the read waits for a datagram.
		require.NoError(t, b.SetReadDeadline(time.Now().Add(time.Second)))
		go func() {
			_, _, err := b.ReadFrom(buf)
			done <- err
		}()
		synctest.Wait()
		require.NoError(t, b.SetReadDeadline(time.Time{}))
		time.Sleep(5 * time.Second)
		_, err = a.WriteTo([]byte("late"), b.LocalAddr())
		require.NoError(t, err)
		require.NoError(t, <-done)

		// Writes never block; a write deadline that has passed fails.
		require.NoError(t, a.SetWriteDeadline(time.Now().Add(time.Second)))
		_, err = a.WriteTo([]byte("x"), b.LocalAddr())
		require.NoError(t, err)
		time.Sleep(time.Second)
		_, err = a.WriteTo([]byte("x"), b.LocalAddr())
		timeout(t, err)
	})
}

func TestPacketConnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		a, err := n.ListenPacket("alice", netip.AddrPort{})
		require.NoError(t, err)
		done := make(chan error)
		go func() {
			_, _, err := a.ReadFrom(make([]byte, 10))
			done <- err
		}()
		synctest.Wait()
		require.NoError(t, a.Close())
		err = <-done
		assert.ErrorIs(t, err, net.ErrClosed)
		var oe *net.OpError
		require.ErrorAs(t, err, &oe)
		assert.Equal(t, "read", oe.Op)
		_, err = a.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 5060})
		assert.ErrorIs(t, err, net.ErrClosed)
		require.NoError(t, a.Close(), "idempotent")

		// Closing the Network closes its PacketConns.
		b, err := n.ListenPacket("bob", netip.AddrPort{})
		require.NoError(t, err)
		go func() {
			_, _, err := b.ReadFrom(make([]byte, 10))
			done <- err
		}()
		synctest.Wait()
		require.NoError(t, n.Close())
		assert.ErrorIs(t, <-done, net.ErrClosed)
	})
}

func TestPacketListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		ctx := context.Background()
		var listen listenFunc = n.PacketListener("alice")
		addrOf := func(pc net.PacketConn) string { return pc.LocalAddr().String() }

		// The address asked for; port 0 picks a free port.
		pc1, err := listen(ctx, "udp", "192.0.2.10:5060")
		require.NoError(t, err)
		assert.Equal(t, "192.0.2.10:5060", addrOf(pc1))
		pc2, err := listen(ctx, "udp", "192.0.2.10:0")
		require.NoError(t, err)
		assert.Equal(t, "192.0.2.10:49152", addrOf(pc2))

		// A wildcard stands for the host's address, the first it bound.
		pc3, err := listen(ctx, "udp4", "0.0.0.0:0")
		require.NoError(t, err)
		assert.Equal(t, "192.0.2.10:49153", addrOf(pc3))
		pc4, err := listen(ctx, "udp", ":5070")
		require.NoError(t, err)
		assert.Equal(t, "192.0.2.10:5070", addrOf(pc4))

		// A new host takes the first address where nobody has listened.
		bob := n.PacketListener("bob")
		_, err = n.Listen("carol", siptest.Addr("192.0.2.1:7000"))
		require.NoError(t, err)
		pc5, err := bob(ctx, "udp4", "0.0.0.0:0")
		require.NoError(t, err)
		assert.Equal(t, "192.0.2.2:49152", addrOf(pc5))
		pc6, err := bob(ctx, "udp6", "[::]:5060")
		require.NoError(t, err)
		assert.Equal(t, "[2001:db8::1]:5060", addrOf(pc6))

		names := n.Names()
		assert.Equal(t, "alice", names[siptest.Addr("192.0.2.10:49153")])
		assert.Equal(t, "bob", names[siptest.Addr("192.0.2.2:49152")])

		_, err = pc3.WriteTo([]byte("MESSAGE sip:bob@192.0.2.2 SIP/2.0\r\n\r\n"), pc5.LocalAddr())
		require.NoError(t, err)
		synctest.Wait()
		assert.Equal(t, []string{"alice→bob MESSAGE"}, n.Flow())

		for _, c := range []struct{ network, address string }{
			{"tcp", "192.0.2.10:0"},
			{"udp", "localhost:5060"},
			{"udp", "192.0.2.10"},
			{"udp", "192.0.2.10:x"},
			{"udp6", "192.0.2.10:0"},
			{"udp4", "[2001:db8::1]:0"},
		} {
			pc, err := listen(ctx, c.network, c.address)
			assert.Error(t, err, "%s %s", c.network, c.address)
			assert.True(t, pc == nil, "an untyped nil")
		}
		_, err = listen(ctx, "udp", "192.0.2.10:5060")
		assert.ErrorIs(t, err, siptest.ErrAddrInUse)
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		_, err = listen(canceled, "udp", "192.0.2.10:0")
		assert.ErrorIs(t, err, context.Canceled)
		require.NoError(t, pc1.Close())
	})
}
