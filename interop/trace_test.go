package interop

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
	"github.com/sipua/sip/transport"
)

// TestTracePcap makes real calls between two of our UserAgents on
// 127.0.0.1 (plain RTP media), one over each of UDP, TCP and WS, traces
// them all into one pcap file (deduplicated, so that each packet is there
// once, as in a capture on lo) and a text log, and checks the file with
// tshark and sngrep: the SIP messages of each call in order, with the
// right addresses, no malformed packet nor checksum or TCP sequence
// warning, and one dialog per call. With SIPUA_TRACE_DOCS=1 it writes the
// ladders, the text log and the pcap to docs/trace/.
func TestTracePcap(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	require.NoError(t, err, "tshark is missing: run interop/install.sh (Debian package tshark)")
	sngrep, err := exec.LookPath("sngrep")
	require.NoError(t, err, "sngrep is missing: run interop/install.sh (Debian package sngrep)")

	dir := t.TempDir()
	pcapPath := filepath.Join(dir, "calls.pcap")
	f, err := os.Create(pcapPath)
	require.NoError(t, err)
	pw, err := trace.NewPcapWriter(f)
	require.NoError(t, err)
	rec := trace.NewRecorder(0)
	var text bytes.Buffer
	tw := trace.NewTextWriter(&text, trace.TextOptions{})
	shared := trace.Dedup(trace.Multi(pw, rec, tw), 0)

	protos := []string{"udp", "tcp", "ws"}
	ladders := map[string]*trace.Ladder{}
	callIDs := map[string]string{}
	for _, proto := range protos {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := func(name string, d sip.UserAgentDelegate) *sip.UserAgent {
			ua, err := sip.NewUserAgent(sip.UserAgentOptions{
				URI:          "sip:" + name + "@127.0.0.1",
				Transport:    sip.TransportOptions{Listen: []string{proto + "://127.0.0.1:0"}},
				Delegate:     d,
				MediaFactory: rtp.NewFactory(rtp.Config{IP: net.IPv4(127, 0, 0, 1)}),
				Tracer:       shared,
			})
			require.NoError(t, err)
			require.NoError(t, ua.Start(ctx))
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				assert.NoError(t, ua.Stop(ctx))
			})
			return ua
		}
		invs := make(chan *sip.Invitation, 1)
		alice := start("alice", sip.UserAgentDelegate{})
		bob := start("bob", sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
			assert.NoError(t, inv.Progress(ctx, sip.ProgressOptions{}))
			assert.NoError(t, inv.Accept(ctx, sip.AcceptOptions{}))
			invs <- inv
		}})
		call, err := sip.NewInviter(alice, bob.ContactURI().String(), sip.InviterOptions{})
		require.NoError(t, err)
		require.NoError(t, call.Invite(ctx, sip.InviteOptions{}))
		inv := <-invs
		require.NoError(t, call.Bye(ctx))
		select {
		case <-inv.Done():
		case <-ctx.Done():
			t.Fatal("bob's side did not end")
		}
		cancel()
		ids := rec.CallIDs()
		require.Len(t, ids, len(callIDs)+1)
		callID := ids[len(ids)-1]
		callIDs[proto] = callID
		bobURI := bob.ContactURI()
		bobAddr := netip.AddrPortFrom(netip.MustParseAddr(bobURI.Host), uint16(bobURI.Port))
		l := trace.NewLadder(rec.Events(), callID, trace.LadderOptions{
			Title: "A call over " + strings.ToUpper(proto) + ", traced by sipua",
			Name: func(a netip.AddrPort) string {
				if a == bobAddr {
					return "bob " + a.String()
				}
				return "alice" // her UDP socket or TCP/WS connection
			},
		})
		assert.Equal(t, []string{"alice", "bob " + bobAddr.String()}, l.Participants)
		ladders[proto] = l
	}
	require.NoError(t, pw.Err())
	require.NoError(t, f.Close())
	require.NoError(t, tw.Err())

	// tshark: every frame, with the checksums checked; the SIP messages of
	// each call in order.
	out, err := exec.Command(tshark, "-r", pcapPath,
		"-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=,", "-e", "frame.number", "-e", "frame.protocols",
		"-e", "sip.Call-ID", "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.CSeq.method",
		"-e", "ip.src", "-e", "ip.dst", "-e", "_ws.expert.severity", "-e", "_ws.malformed").Output()
	require.NoError(t, err, "tshark: %s", out)
	t.Logf("tshark -r calls.pcap -T fields ...:\n%s", out)
	got := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fs := strings.Split(line, ",")
		require.Len(t, fs, 10, "line %q", line)
		assert.Equal(t, "127.0.0.1", fs[6], "frame %s source", fs[0])
		assert.Equal(t, "127.0.0.1", fs[7], "frame %s destination", fs[0])
		assert.Empty(t, fs[9], "frame %s is malformed", fs[0])
		for _, sev := range strings.Fields(strings.ReplaceAll(fs[8], ";", " ")) {
			// PI_CHAT (0x200000) marks the made-up SYNs; PI_WARN
			// (0x600000) and above would be checksum or sequence errors.
			n, err := strconv.Atoi(sev)
			require.NoError(t, err)
			assert.Less(t, n, 0x600000, "frame %s has an expert warning", fs[0])
		}
		if !strings.Contains(fs[1], ":sip") {
			assert.NotContains(t, fs[1], "data", "frame %s has undissected data", fs[0])
			continue
		}
		got[fs[2]] = append(got[fs[2]], strings.TrimSpace(fs[3]+fs[4]+" "+fs[5]))
	}
	for _, proto := range protos {
		// A UA may answer 100 Trying or not; the rest is fixed.
		assert.Equal(t, []string{"INVITE INVITE", "180 INVITE", "200 INVITE", "ACK ACK", "BYE BYE", "200 BYE"},
			without(got[callIDs[proto]], "100 INVITE"), "the call over %s", proto)
	}
	assert.Len(t, got, len(protos))

	// sngrep reads the file and finds the three dialogs.
	cmd := exec.Command(sngrep, "-N", "-I", pcapPath, "-O", filepath.Join(dir, "sngrep.pcap"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir) // no user sngreprc
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "sngrep: %s", out)
	counts := regexp.MustCompile(`Dialog count: (\d+)`).FindAllStringSubmatch(string(out), -1)
	require.NotEmpty(t, counts, "sngrep output: %q", out)
	assert.Equal(t, strconv.Itoa(len(protos)), counts[len(counts)-1][1], "sngrep: %q", out)

	assert.Equal(t, 6*len(protos), strings.Count("\n"+text.String(), "\n----- "), "the text log has every message once")
	if os.Getenv("SIPUA_TRACE_DOCS") == "1" {
		docs := filepath.Join("..", "docs", "trace")
		require.NoError(t, os.MkdirAll(docs, 0o755))
		for proto, l := range ladders {
			var svg, mmd bytes.Buffer
			require.NoError(t, l.WriteSVG(&svg))
			require.NoError(t, l.WriteMermaid(&mmd))
			require.NoError(t, os.WriteFile(filepath.Join(docs, "ladder-"+proto+".svg"), svg.Bytes(), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(docs, "ladder-"+proto+".mmd"), mmd.Bytes(), 0o644))
		}
		require.NoError(t, os.WriteFile(filepath.Join(docs, "calls.txt"), text.Bytes(), 0o644))
		b, err := os.ReadFile(pcapPath)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(docs, "calls.pcap"), b, 0o644))
	}
}

func without(ss []string, drop string) []string {
	var out []string
	for _, s := range ss {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

// tracedUser starts a user of k over proto whose messages go to tr, and
// returns it with the set of its local addresses seen so far.
func tracedUser(t *testing.T, k *Kamailio, user string, proto transport.Proto, tr trace.Tracer, d sip.UserAgentDelegate) (*sip.UserAgent, *addrSet) {
	t.Helper()
	mine := &addrSet{m: map[netip.AddrPort]bool{}}
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:" + user + "@" + Domain,
		AuthorizationPassword: Users[user],
		Transport:             sip.TransportOptions{Server: server(k, proto)},
		Delegate:              d,
		MediaFactory:          rtp.NewFactory(rtp.Config{IP: net.IPv4(127, 0, 0, 1)}),
		Tracer:                trace.Multi(trace.Func(func(ev trace.Event) { mine.add(ev.Local) }), tr),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ua.Stop(ctx)
	})
	return ua, mine
}

type addrSet struct {
	mu sync.Mutex
	m  map[netip.AddrPort]bool
}

func (s *addrSet) add(a netip.AddrPort) {
	s.mu.Lock()
	s.m[a] = true
	s.mu.Unlock()
}

func (s *addrSet) has(a netip.AddrPort) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[a]
}

// TestTraceThroughKamailio: alice (UDP) calls bob (WS) through Kamailio,
// which asks her to authenticate; both UserAgents trace into one pcap and
// one recorder. tshark sees each party's side of the call in order, and
// the ladder of the call has the three parties. With SIPUA_TRACE_DOCS=1
// the ladder and the pcap go to docs/trace/.
func TestTraceThroughKamailio(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	require.NoError(t, err, "tshark is missing: run interop/install.sh (Debian package tshark)")
	k := StartKamailio(t)
	dir := t.TempDir()
	pcapPath := filepath.Join(dir, "kamailio.pcap")
	f, err := os.Create(pcapPath)
	require.NoError(t, err)
	pw, err := trace.NewPcapWriter(f)
	require.NoError(t, err)
	rec := trace.NewRecorder(0)
	shared := trace.Multi(pw, rec)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	invs := make(chan *sip.Invitation, 1)
	bob, bobAddrs := tracedUser(t, k, "bob", transport.WS, shared, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		assert.NoError(t, inv.Progress(ctx, sip.ProgressOptions{}))
		assert.NoError(t, inv.Accept(ctx, sip.AcceptOptions{}))
		invs <- inv
	}})
	reg, err := sip.NewRegisterer(bob, sip.RegistererOptions{Expires: 300})
	require.NoError(t, err)
	require.NoError(t, reg.Register(ctx, sip.RegisterOptions{}), "REGISTER\n%s", k.Log())
	alice, aliceAddrs := tracedUser(t, k, "alice", transport.UDP, shared, sip.UserAgentDelegate{})
	call, err := sip.NewInviter(alice, "sip:bob@"+Domain, sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, call.Invite(ctx, sip.InviteOptions{}), "INVITE\n%s", k.Log())
	inv := <-invs
	require.NoError(t, call.Bye(ctx))
	select {
	case <-inv.Done():
	case <-ctx.Done():
		t.Fatal("bob's side did not end")
	}
	require.NoError(t, pw.Err())
	require.NoError(t, f.Close())

	var callID string
	for _, ev := range rec.Events() {
		if r, ok := ev.Message.(*message.Request); ok && r.Method == "INVITE" {
			callID = ev.CallID()
			break
		}
	}
	require.NotEmpty(t, callID)
	kamailio := map[uint16]bool{k.SIPPort: true, k.WSPort: true}
	name := func(a netip.AddrPort) string {
		switch {
		case kamailio[a.Port()]:
			return "Kamailio"
		case aliceAddrs.has(a):
			return "alice (UDP)"
		case bobAddrs.has(a):
			return "bob (WS)"
		}
		return a.String()
	}

	// tshark: each party's side of the call, in order.
	out, err := exec.Command(tshark, "-r", pcapPath, "-Y", "sip.Call-ID == \""+callID+"\"",
		"-T", "fields", "-E", "separator=,", "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.CSeq.method",
		"-e", "ip.src", "-e", "udp.srcport", "-e", "tcp.srcport", "-e", "udp.dstport", "-e", "tcp.dstport").Output()
	require.NoError(t, err, "tshark: %s", out)
	t.Logf("tshark -r kamailio.pcap -Y 'sip.Call-ID == ...' -T fields ...:\n%s", out)
	sides := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fs := strings.Split(line, ",")
		require.Len(t, fs, 8, "line %q", line)
		port := func(udp, tcp string) netip.AddrPort {
			p := udp + tcp
			n, err := strconv.Atoi(p)
			require.NoError(t, err, "port %q", p)
			return netip.AddrPortFrom(netip.MustParseAddr(fs[3]), uint16(n))
		}
		from, to := name(port(fs[4], fs[5])), name(port(fs[6], fs[7]))
		party := from
		if from == "Kamailio" {
			party = to
		}
		sides[party] = append(sides[party], from+" "+strings.TrimSpace(fs[0]+fs[1]+" "+fs[2]))
	}
	assert.Equal(t, []string{
		"alice (UDP) INVITE INVITE", "Kamailio 407 INVITE", "alice (UDP) ACK ACK",
		"alice (UDP) INVITE INVITE", "Kamailio 100 INVITE", "Kamailio 180 INVITE", "Kamailio 200 INVITE",
		"alice (UDP) ACK ACK", "alice (UDP) BYE BYE", "Kamailio 200 BYE",
	}, sides["alice (UDP)"])
	assert.Equal(t, []string{
		"Kamailio INVITE INVITE", "bob (WS) 180 INVITE", "bob (WS) 200 INVITE",
		"Kamailio ACK ACK", "Kamailio BYE BYE", "bob (WS) 200 BYE",
	}, without(sides["bob (WS)"], "bob (WS) 100 INVITE"))
	assert.Len(t, sides, 2)

	l := trace.NewLadder(rec.Events(), callID, trace.LadderOptions{Title: "alice calls bob through Kamailio, traced by sipua", Name: name})
	assert.Equal(t, []string{"alice (UDP)", "Kamailio", "bob (WS)"}, l.Participants)
	assert.Len(t, l.Steps, len(sides["alice (UDP)"])+len(sides["bob (WS)"]), "every message of the call once")
	if os.Getenv("SIPUA_TRACE_DOCS") == "1" {
		docs := filepath.Join("..", "docs", "trace")
		require.NoError(t, os.MkdirAll(docs, 0o755))
		var svg, mmd bytes.Buffer
		require.NoError(t, l.WriteSVG(&svg))
		require.NoError(t, l.WriteMermaid(&mmd))
		require.NoError(t, os.WriteFile(filepath.Join(docs, "ladder-kamailio.svg"), svg.Bytes(), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(docs, "ladder-kamailio.mmd"), mmd.Bytes(), 0o644))
		b, err := os.ReadFile(pcapPath)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(docs, "kamailio.pcap"), b, 0o644))
	}
}
