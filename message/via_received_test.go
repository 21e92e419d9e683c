package message

import (
	"net/netip"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// receivedOracle is SetReceivedFrom written with Params.Set and
// SetTopVia, the way it was before it was built in one allocation.
func receivedOracle(h *Header, src netip.AddrPort) bool {
	v, err := h.TopVia()
	if err != nil {
		return false
	}
	ip := src.Addr().Unmap()
	changed := false
	if a, err := netip.ParseAddr(v.Host); err != nil || a.Unmap() != ip {
		v.Params = v.Params.Set("received", ip.String())
		changed = true
	}
	if p, ok := v.RPort(); ok && p == 0 {
		v.Params = v.Params.Set("rport", strconv.Itoa(int(src.Port())))
		changed = true
	}
	if changed {
		h.SetTopVia(v)
	}
	return changed
}

// TestSetReceivedFrom: received and rport as RFC 3261 §18.2.1 and RFC
// 3581 §4 ask, the same as Params.Set and SetTopVia would write them.
func TestSetReceivedFrom(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.9:5062")
	src6 := netip.MustParseAddrPort("[2001:db8::9]:5070")
	for _, tc := range []struct {
		via     string
		src     netip.AddrPort
		want    string
		changed bool
	}{
		{"SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK1;rport", src,
			"SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK1;rport=5062;received=192.0.2.9", true},
		{"SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK1;rport", src,
			"SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK1;rport=5062", true},
		{"SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK1", src, "SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK1", false},
		{"SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK1;rport=5062", src, "SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK1;rport=5062", false},
		{"SIP/2.0/UDP host.example.com;branch=z9hG4bK1", src,
			"SIP/2.0/UDP host.example.com;branch=z9hG4bK1;received=192.0.2.9", true},
		{"SIP/2.0/UDP host.example.com;received=10.0.0.1;branch=z9hG4bK1;RPORT=0;ttl=4", src,
			"SIP/2.0/UDP host.example.com;received=192.0.2.9;branch=z9hG4bK1;rport=5062;ttl=4", true},
		{"SIP/2.0/TCP [2001:db8::1]:5060;rport;branch=z9hG4bK1 , SIP/2.0/UDP proxy.example.com;branch=z9hG4bK0", src6,
			"SIP/2.0/TCP [2001:db8::1]:5060;rport=5070;branch=z9hG4bK1;received=2001:db8::9, SIP/2.0/UDP proxy.example.com;branch=z9hG4bK0", true},
		{"SIP/2.0/UDP 192.0.2.9:5060;rport", netip.MustParseAddrPort("[::ffff:192.0.2.9]:5062"),
			"SIP/2.0/UDP 192.0.2.9:5060;rport=5062", true},
	} {
		t.Run(tc.via, func(t *testing.T) {
			var h, oracle Header
			h.Add("Via", tc.via)
			h.Add("Via", "SIP/2.0/UDP second.example.com;branch=z9hG4bK2")
			oracle.Add("Via", tc.via)
			oracle.Add("Via", "SIP/2.0/UDP second.example.com;branch=z9hG4bK2")
			assert.Equal(t, tc.changed, h.SetReceivedFrom(tc.src))
			assert.Equal(t, tc.changed, receivedOracle(&oracle, tc.src))
			require.Equal(t, 2, h.Len())
			assert.Equal(t, tc.want, h.fields[0].Value)
			assert.Equal(t, oracle.fields, h.fields, "as Params.Set and SetTopVia write it")
			assert.Equal(t, "SIP/2.0/UDP second.example.com;branch=z9hG4bK2", h.fields[1].Value)
		})
	}
	var none Header
	assert.False(t, none.SetReceivedFrom(src), "no Via")
	var bad Header
	bad.Add("Via", "garbage")
	assert.False(t, bad.SetReceivedFrom(src), "an unreadable Via is left alone")
	assert.Equal(t, "garbage", bad.Get("Via"))
}

func BenchmarkSetReceivedFrom(b *testing.B) {
	src := netip.MustParseAddrPort("192.0.2.9:5062")
	b.ReportAllocs()
	for b.Loop() {
		var h Header
		h.fields = []Field{{Name: "Via", Value: "SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK776asd;rport", id: hVia}}
		h.SetReceivedFrom(src)
	}
}
