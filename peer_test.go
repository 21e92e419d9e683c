package sip_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sipua/sip"
	"github.com/sipua/sip/siptest"
)

// newPeer is a sip.TestPeer named name at addr on the in-memory network.
func newPeer(t testing.TB, n *siptest.Network, name string, addr fmt.Stringer) *sip.TestPeer {
	t.Helper()
	pc, err := n.PacketListener(name)(context.Background(), "udp", addr.String())
	require.NoError(t, err)
	return sip.NewTestPeer(t, pc, name)
}
