package transport

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/sipua/sip/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestResolve(t *testing.T) {
	ip := netip.MustParseAddr
	dns := fakeDNS{
		srv: map[string][]*net.SRV{
			"_sip._udp.example.com":  {{Target: "b.example.com.", Port: 5070, Priority: 20, Weight: 0}, {Target: "a.example.com.", Port: 5060, Priority: 10, Weight: 0}},
			"_sip._tcp.example.com":  {{Target: "a.example.com.", Port: 5080, Priority: 10}},
			"_sips._tcp.example.com": {{Target: "a.example.com.", Port: 5061, Priority: 10}},
			"_sip._tcp.tcponly.net":  {{Target: "a.example.com.", Port: 6000, Priority: 1}},
			"_sip._udp.gone.net":     {{Target: ".", Port: 0}},
		},
		hosts: map[string][]netip.Addr{
			"a.example.com":    {ip("192.0.2.1"), ip("2001:db8::1")},
			"b.example.com":    {ip("192.0.2.2")},
			"plain.example":    {ip("192.0.2.9")},
			"example.com":      {ip("192.0.2.100")},
			"gone.net":         {ip("192.0.2.50")},
			"ws.example.com":   {ip("192.0.2.60")},
			"maddr.example":    {ip("192.0.2.70")},
			"tcponly.net":      {ip("192.0.2.80")},
			"noaddr.example":   {},
			"other.example":    {ip("192.0.2.90")},
			"sipua.test":       {ip("127.0.0.1")},
			"v6only.example":   {ip("2001:db8::5")},
			"v4mapped.example": {ip("::ffff:192.0.2.3")},
		},
	}
	tr := New(Config{DNS: dns})
	defer tr.Close()
	tg := func(p Proto, addr, host string) Target {
		return Target{Proto: p, Addr: netip.MustParseAddrPort(addr), Host: host}
	}
	for _, tc := range []struct {
		uri  string
		want []Target
	}{
		{"sip:alice@192.0.2.5", []Target{tg(UDP, "192.0.2.5:5060", "")}},
		{"sip:192.0.2.5:5080;transport=tcp", []Target{tg(TCP, "192.0.2.5:5080", "")}},
		{"sips:[2001:db8::9]", []Target{tg(TLS, "[2001:db8::9]:5061", "")}},
		{"sip:[2001:db8::9]:7000;transport=ws", []Target{tg(WS, "[2001:db8::9]:7000", "")}},
		{"sips:192.0.2.5;transport=ws", []Target{tg(WSS, "192.0.2.5:443", "")}},
		{"sip:bob@plain.example:5099", []Target{tg(UDP, "192.0.2.9:5099", "plain.example")}},
		{"sip:plain.example:5099;transport=TLS", []Target{tg(TLS, "192.0.2.9:5099", "plain.example")}},
		// SRV: priority order, each target with A and AAAA.
		{"sip:bob@example.com", []Target{
			tg(UDP, "192.0.2.1:5060", "example.com"), tg(UDP, "[2001:db8::1]:5060", "example.com"),
			tg(UDP, "192.0.2.2:5070", "example.com")}},
		{"sip:bob@example.com;transport=tcp", []Target{
			tg(TCP, "192.0.2.1:5080", "example.com"), tg(TCP, "[2001:db8::1]:5080", "example.com")}},
		{"sips:bob@example.com", []Target{
			tg(TLS, "192.0.2.1:5061", "example.com"), tg(TLS, "[2001:db8::1]:5061", "example.com")}},
		// No UDP SRV record: the TCP one is used.
		{"sip:tcponly.net", []Target{tg(TCP, "192.0.2.1:6000", "tcponly.net"), tg(TCP, "[2001:db8::1]:6000", "tcponly.net")}},
		// SRV "." means no service: fall back to A/AAAA.
		{"sip:gone.net", []Target{tg(UDP, "192.0.2.50:5060", "gone.net")}},
		// No SRV at all: A/AAAA with the default port.
		{"sip:plain.example", []Target{tg(UDP, "192.0.2.9:5060", "plain.example")}},
		{"sips:plain.example", []Target{tg(TLS, "192.0.2.9:5061", "plain.example")}},
		{"sip:ws.example.com;transport=ws", []Target{tg(WS, "192.0.2.60:80", "ws.example.com")}},
		{"sip:ws.example.com;transport=wss", []Target{tg(WSS, "192.0.2.60:443", "ws.example.com")}},
		{"sip:other.example;maddr=maddr.example", []Target{tg(UDP, "192.0.2.70:5060", "maddr.example")}},
		{"sip:v4mapped.example:1", []Target{tg(UDP, "192.0.2.3:1", "v4mapped.example")}},
	} {
		got, err := tr.Resolve(t.Context(), message.MustParseURI(tc.uri))
		require.NoError(t, err, tc.uri)
		assert.Equal(t, tc.want, got, tc.uri)
	}
	for _, tc := range []struct {
		uri  string
		want error
	}{
		{"tel:+1-201-555-0123", ErrUnsupported},
		{"sip:a@b.example;transport=sctp", ErrUnsupported},
		{"sips:192.0.2.1;transport=udp", ErrUnsupported},
		{"sip:unknown.example", ErrResolve},
		{"sip:noaddr.example:5060", ErrResolve},
	} {
		_, err := tr.Resolve(t.Context(), message.MustParseURI(tc.uri))
		assert.ErrorIs(t, err, tc.want, tc.uri)
	}

	// Server addresses of an Upstream: WebSocket URLs too.
	got, err := tr.resolveServer(t.Context(), "wss://ws.example.com:8443/sip?x=1")
	require.NoError(t, err)
	assert.Equal(t, []Target{{Proto: WSS, Addr: netip.MustParseAddrPort("192.0.2.60:8443"), Host: "ws.example.com", Path: "/sip?x=1"}}, got)
	got, err = tr.resolveServer(t.Context(), "ws://127.0.0.1")
	require.NoError(t, err)
	assert.Equal(t, []Target{{Proto: WS, Addr: netip.MustParseAddrPort("127.0.0.1:80"), Host: "127.0.0.1", Path: ""}}, got)
	_, err = tr.resolveServer(t.Context(), "ws://h:0/")
	assert.ErrorIs(t, err, ErrUnsupported)
	_, err = tr.resolveServer(t.Context(), "not a uri")
	assert.Error(t, err)
}

func TestOrderSRV(t *testing.T) {
	// Within a priority, a record with weight 0 comes last while others
	// have weight; the share of first places follows the weights.
	first := map[string]int{}
	for range 2000 {
		out := orderSRV([]*net.SRV{
			{Target: "z", Priority: 1, Weight: 0},
			{Target: "heavy", Priority: 1, Weight: 90},
			{Target: "light", Priority: 1, Weight: 10},
			{Target: "low", Priority: 0, Weight: 0},
		})
		require.Len(t, out, 4)
		assert.Equal(t, "low", out[0].Target)
		assert.Equal(t, "z", out[3].Target)
		first[out[1].Target]++
	}
	assert.Greater(t, first["heavy"], 1600)
	assert.Greater(t, first["light"], 100)
}

func TestProtoAndFlow(t *testing.T) {
	for _, s := range []string{"udp", "TCP", "tls", "Ws", "WSS"} {
		p, ok := ParseProto(s)
		assert.True(t, ok, s)
		assert.Equal(t, p.Stream(), p != UDP)
	}
	_, ok := ParseProto("sctp")
	assert.False(t, ok)
	assert.Equal(t, uint16(443), WSS.DefaultPort())
	assert.True(t, WSS.Secure() && WSS.WebSocket() && TLS.Secure() && !TCP.Secure())
	f := Flow{Proto: TCP, Local: netip.MustParseAddrPort("127.0.0.1:5060"), Remote: netip.MustParseAddrPort("127.0.0.1:40000"), ID: 3}
	assert.Equal(t, "TCP#3 127.0.0.1:5060->127.0.0.1:40000", f.String())
	assert.Equal(t, Target{Proto: TCP, Addr: f.Remote, Local: f.Local, ConnID: 3}, f.Target())
	assert.True(t, Flow{}.IsZero())
	assert.Equal(t, "TLS 192.0.2.1:5061 (example.com)", Target{Proto: TLS, Addr: netip.MustParseAddrPort("192.0.2.1:5061"), Host: "example.com"}.String())
	assert.Equal(t, "open", ConnOpen.String())
	assert.Equal(t, "connected", Connected.String())
	assert.Equal(t, "State(9)", State(9).String())
}

func TestContactURI(t *testing.T) {
	tr := New(Config{})
	defer tr.Close()
	host := tr.InvalidHost()
	assert.Regexp(t, `^[a-z0-9]{12}\.invalid$`, host)
	ws := Flow{Proto: WSS, Local: netip.MustParseAddrPort("127.0.0.1:40000"), Remote: netip.MustParseAddrPort("127.0.0.1:443"), ID: 1}
	assert.Equal(t, "sip:alice@"+host+";transport=wss", tr.ContactURI("alice", ws).String())
	udp := Flow{Proto: UDP, Local: netip.MustParseAddrPort("127.0.0.1:5062"), Remote: netip.MustParseAddrPort("127.0.0.1:5060")}
	assert.Equal(t, "sip:alice@127.0.0.1:5062", tr.ContactURI("alice", udp).String())
	tcp := Flow{Proto: TCP, Local: netip.MustParseAddrPort("127.0.0.1:40001"), Remote: netip.MustParseAddrPort("127.0.0.1:5060"), ID: 2}
	assert.Equal(t, "sip:alice@127.0.0.1:40001;transport=tcp", tr.ContactURI("alice", tcp).String())
	// An unspecified local address is replaced by the routing source.
	any := Flow{Proto: UDP, Local: netip.MustParseAddrPort("0.0.0.0:5062"), Remote: netip.MustParseAddrPort("127.0.0.1:5060")}
	assert.Equal(t, "sip:bob@127.0.0.1:5062", tr.ContactURI("bob", any).String())
}

// TestResolverEndsWithItsContext: the default resolver's queries end when
// their context does, although the name server never answers and the
// resolver's own timeout is 5 s; and it still resolves through a name
// server that answers.
func TestResolverEndsWithItsContext(t *testing.T) {
	answering := dnsServer(t, netip.MustParseAddr("127.0.0.7"))
	ips, err := newResolver(answering).LookupNetIP(context.Background(), "ip4", "ok.sipua.example.")
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.7")}, ips)

	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	r := newResolver(silent.LocalAddr().String())
	for _, lookup := range []func(ctx context.Context) error{
		func(ctx context.Context) error {
			_, _, err := r.LookupSRV(ctx, "sip", "udp", "stuck.sipua.example")
			return err
		},
		func(ctx context.Context) error {
			_, err := r.LookupNetIP(ctx, "ip", "stuck.sipua.example")
			return err
		},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- lookup(ctx) }()
		time.Sleep(100 * time.Millisecond)
		t0 := time.Now()
		cancel()
		select {
		case err := <-done:
			require.Error(t, err)
			assert.Less(t, time.Since(t0), time.Second)
		case <-time.After(3 * time.Second):
			t.Fatal("the look-up did not end with its context")
		}
	}
}

// dnsServer answers every A query on a UDP socket of 127.0.0.1 with a, for
// the test's lifetime, and returns its address.
func dnsServer(t *testing.T, a netip.Addr) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if q.Type == dnsmessage.TypeA {
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a.As4()})
			}
			out, err := b.Finish()
			if err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}
