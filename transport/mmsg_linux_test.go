//go:build linux

package transport

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMmsgReaderSources: the recvmmsg reader returns every datagram of a
// burst with the sender's address, for IPv4, IPv6 and an IPv4 sender on
// a dual-stack socket (unmapped, as the other readers give it), and a
// read allocates nothing once its scratch has grown.
func TestMmsgReaderSources(t *testing.T) {
	for _, tc := range []struct{ name, listen, send string }{
		{"IPv4", "127.0.0.1:0", "127.0.0.1:0"},
		{"IPv6", "[::1]:0", "[::1]:0"},
		{"IPv4 on dual stack", "[::]:0", "127.0.0.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.listen)))
			if err != nil {
				t.Skipf("no such socket here: %v", err)
			}
			defer srv.Close()
			cli, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.send)))
			require.NoError(t, err)
			defer cli.Close()
			to := srv.LocalAddr().(*net.UDPAddr).AddrPort()
			if to.Addr().IsUnspecified() {
				to = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), to.Port())
			}
			from := cli.LocalAddr().(*net.UDPAddr).AddrPort()
			m := newMmsgReader(srv)
			require.NotNil(t, m)
			const slots = 4
			bufs := make([][]byte, slots)
			for i := range bufs {
				bufs[i] = make([]byte, 100)
			}
			n, src := make([]int, slots), make([]netip.AddrPort, slots)
			require.NoError(t, srv.SetReadDeadline(time.Now().Add(5*time.Second)))

			send := func(k int) {
				for i := range k {
					_, err := cli.WriteToUDPAddrPort([]byte{'a' + byte(i), 'b'}[:1+i%2], to)
					require.NoError(t, err)
				}
			}
			send(3)
			got := 0
			for got < 3 {
				k, err := m.read(bufs[got:], n[got:], src[got:])
				require.NoError(t, err)
				got += k
			}
			for i := range got {
				assert.Equal(t, from, src[i], "source of datagram %d", i)
				assert.Equal(t, []byte{'a' + byte(i), 'b'}[:1+i%2], bufs[i][:n[i]], "datagram %d", i)
			}

			allocs := testing.AllocsPerRun(20, func() {
				send(1)
				if _, err := m.read(bufs, n, src); err != nil {
					t.Fatal(err)
				}
			})
			assert.Zero(t, allocs, "allocations per read")
			assert.Equal(t, from, src[0])
		})
	}
}

// TestMmsgReaderClosedAndDeadline: the reader's errors are those the
// read loop acts on: a timeout at the deadline, net.ErrClosed once the
// socket is closed.
func TestMmsgReaderClosedAndDeadline(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	m := newMmsgReader(srv)
	bufs, n, src := [][]byte{make([]byte, 10)}, make([]int, 1), make([]netip.AddrPort, 1)
	require.NoError(t, srv.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	_, err = m.read(bufs, n, src)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	require.NoError(t, srv.Close())
	_, err = m.read(bufs, n, src)
	assert.ErrorIs(t, err, net.ErrClosed)
}

// enosysConn is a RawConn whose reads fail as on a system without
// recvmmsg.
type enosysConn struct{ syscall.RawConn }

func (enosysConn) Read(func(uintptr) bool) error {
	return os.NewSyscallError("recvmmsg", syscall.ENOSYS)
}

// TestMmsgReaderFallback: when recvmmsg fails with ENOSYS the socket's
// reader drops the batch path and reads the same datagram with ReadFrom.
func TestMmsgReaderFallback(t *testing.T) {
	tp := New(Config{})
	defer tp.Close()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer pc.Close()
	s := &udpSock{t: tp, pc: pc, local: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	s.bc = tp.newBatchConn(pc, s.local)
	require.NotNil(t, s.bc)
	r := newUDPReader(s)
	require.NotNil(t, r.mm, "the recvmmsg reader")
	r.mm.rc = enosysConn{}

	cli, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer cli.Close()
	_, err = cli.WriteToUDPAddrPort([]byte("hello"), s.local)
	require.NoError(t, err)
	require.NoError(t, pc.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, err := r.read()
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Nil(t, r.mm, "no more recvmmsg")
	assert.Nil(t, r.bc)
	assert.Equal(t, "hello", string(r.slots[0][:r.n[0]]))
	assert.Equal(t, cli.LocalAddr().(*net.UDPAddr).AddrPort(), r.src[0])
}

// TestMmsgWriter: the raw writer sends a batch (sendmmsg) and a lone
// datagram (sendto) to IPv4 and IPv6 peers, and IPv4 peers from a
// dual-stack socket, in order and to the right port; it allocates
// nothing once its scratch has grown; a destination its socket cannot
// reach and a closed socket give errors that say so.
func TestMmsgWriter(t *testing.T) {
	for _, tc := range []struct{ name, listen, peer string }{
		{"IPv4", "127.0.0.1:0", "127.0.0.1:0"},
		{"IPv6", "[::1]:0", "[::1]:0"},
		{"IPv4 from dual stack", "[::]:0", "127.0.0.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.listen)))
			if err != nil {
				t.Skipf("no such socket here: %v", err)
			}
			defer src.Close()
			peer, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(tc.peer)))
			require.NoError(t, err)
			defer peer.Close()
			to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			w := newMmsgWriter(src)
			require.NotNil(t, w)
			if tc.listen == "[::]:0" {
				to = netip.AddrPortFrom(netip.AddrFrom16(to.Addr().As16()), to.Port()) // as udpSock.sendAddr maps it
			}
			bufs := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
			tos := []netip.AddrPort{to, to, to}
			n, err := w.write(bufs, tos)
			require.NoError(t, err)
			assert.Equal(t, 3, n)
			n, err = w.write([][]byte{[]byte("four")}, []netip.AddrPort{to})
			require.NoError(t, err)
			assert.Equal(t, 1, n)
			require.NoError(t, peer.SetReadDeadline(time.Now().Add(5*time.Second)))
			buf := make([]byte, 100)
			for _, want := range []string{"one", "two", "three", "four"} {
				k, from, err := peer.ReadFromUDPAddrPort(buf)
				require.NoError(t, err)
				assert.Equal(t, want, string(buf[:k]))
				assert.Equal(t, src.LocalAddr().(*net.UDPAddr).Port, int(from.Port()))
			}
			allocs := testing.AllocsPerRun(20, func() {
				if _, err := w.write(bufs, tos); err != nil {
					t.Fatal(err)
				}
			})
			assert.Zero(t, allocs)
		})
	}
	t.Run("IPv6 peer from IPv4 socket", func(t *testing.T) {
		src, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		defer src.Close()
		w := newMmsgWriter(src)
		require.NotNil(t, w)
		_, err = w.write([][]byte{[]byte("x")}, []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:5060")})
		require.ErrorIs(t, err, syscall.EAFNOSUPPORT)
		var op *net.OpError
		require.ErrorAs(t, err, &op)
		// A batch whose second destination fails sends the first only.
		n, err := w.write([][]byte{[]byte("a"), []byte("b")},
			[]netip.AddrPort{src.LocalAddr().(*net.UDPAddr).AddrPort(), netip.MustParseAddrPort("[2001:db8::1]:5060")})
		require.NoError(t, err)
		assert.Equal(t, 1, n)
	})
	t.Run("closed", func(t *testing.T) {
		src, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		w := newMmsgWriter(src)
		require.NotNil(t, w)
		src.Close()
		_, err = w.write([][]byte{[]byte("x")}, []netip.AddrPort{src.LocalAddr().(*net.UDPAddr).AddrPort()})
		require.ErrorIs(t, err, net.ErrClosed)
	})
}
