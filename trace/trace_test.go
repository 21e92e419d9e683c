package trace_test

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// pcapRecord is one packet read back from a pcap file.
type pcapRecord struct {
	time    time.Time
	v6      bool
	proto   byte
	src     netip.AddrPort
	dst     netip.AddrPort
	seq     uint32
	ack     uint32
	flags   byte
	payload []byte
}

// readPcap parses what PcapWriter writes and checks the IP and transport
// checksums of every packet.
func readPcap(t *testing.T, b []byte) []pcapRecord {
	t.Helper()
	require.GreaterOrEqual(t, len(b), 24)
	require.Equal(t, uint32(0xa1b2c3d4), binary.LittleEndian.Uint32(b))
	require.Equal(t, uint32(1), binary.LittleEndian.Uint32(b[20:]), "Ethernet link type")
	b = b[24:]
	var out []pcapRecord
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), 16)
		sec, usec := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
		incl, orig := binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[12:])
		require.Equal(t, incl, orig)
		pkt := b[16 : 16+incl]
		b = b[16+incl:]
		r := pcapRecord{time: time.Unix(int64(sec), int64(usec)*1000)}
		ip := pkt[14:]
		var l4 []byte
		var pseudo []byte
		switch binary.BigEndian.Uint16(pkt[12:]) {
		case 0x0800:
			require.Equal(t, uint16(0), ipChecksum(ip[:20]), "IPv4 header checksum")
			require.Equal(t, int(binary.BigEndian.Uint16(ip[2:])), len(ip))
			r.proto = ip[9]
			s, _ := netip.AddrFromSlice(ip[12:16])
			d, _ := netip.AddrFromSlice(ip[16:20])
			l4 = ip[20:]
			pseudo = append(append(append([]byte{}, ip[12:20]...), 0, r.proto), byte(len(l4)>>8), byte(len(l4)))
			r.src, r.dst = netip.AddrPortFrom(s, binary.BigEndian.Uint16(l4)), netip.AddrPortFrom(d, binary.BigEndian.Uint16(l4[2:]))
		case 0x86dd:
			r.v6 = true
			require.Equal(t, int(binary.BigEndian.Uint16(ip[4:])), len(ip)-40)
			r.proto = ip[6]
			s, _ := netip.AddrFromSlice(ip[8:24])
			d, _ := netip.AddrFromSlice(ip[24:40])
			l4 = ip[40:]
			pseudo = append(append([]byte{}, ip[8:40]...), 0, 0, byte(len(l4)>>8), byte(len(l4)), 0, 0, 0, r.proto)
			r.src, r.dst = netip.AddrPortFrom(s, binary.BigEndian.Uint16(l4)), netip.AddrPortFrom(d, binary.BigEndian.Uint16(l4[2:]))
		default:
			t.Fatalf("ether type %x", pkt[12:14])
		}
		require.Equal(t, uint16(0), ipChecksum(append(pseudo, l4...)), "transport checksum")
		switch r.proto {
		case 17:
			require.Equal(t, int(binary.BigEndian.Uint16(l4[4:])), len(l4))
			r.payload = l4[8:]
		case 6:
			r.seq, r.ack, r.flags = binary.BigEndian.Uint32(l4[4:]), binary.BigEndian.Uint32(l4[8:]), l4[13]
			r.payload = l4[20:]
		default:
			t.Fatalf("IP protocol %d", r.proto)
		}
		out = append(out, r)
	}
	return out
}

func ipChecksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func TestPcapUDP(t *testing.T) {
	var buf bytes.Buffer
	w, err := trace.NewPcapWriter(&buf)
	require.NoError(t, err)
	evs := exampleCall()
	for _, ev := range evs {
		w.Trace(ev)
	}
	w.Trace(trace.Event{Dir: trace.SendFailed, Transport: "UDP", Raw: []byte("x"), Err: io.ErrClosedPipe})
	require.NoError(t, w.Err())
	recs := readPcap(t, buf.Bytes())
	require.Len(t, recs, len(evs), "one datagram per message; the failed send left out")
	for i, r := range recs {
		assert.Equal(t, byte(17), r.proto)
		assert.Equal(t, evs[i].Raw, r.payload)
		assert.Equal(t, evs[i].Source(), r.src)
		assert.Equal(t, evs[i].Destination(), r.dst)
		assert.True(t, evs[i].Time.Equal(r.time))
	}
}

func TestPcapTCPSequence(t *testing.T) {
	var buf bytes.Buffer
	w, err := trace.NewPcapWriter(&buf)
	require.NoError(t, err)
	evs := exampleCall()
	for i := range evs {
		evs[i].Transport = "TCP"
		evs[i].ConnID = 7
	}
	big := bytes.Repeat([]byte("a"), 40000) // over one synthesized segment
	evs = append(evs, trace.Event{Time: t0, Dir: trace.Received, Transport: "TCP", Local: alice, Remote: bob, Raw: big})
	for _, ev := range evs {
		w.Trace(ev)
	}
	recs := readPcap(t, buf.Bytes())
	require.Len(t, recs, 3+len(evs)+1, "handshake, one segment per message, two for the big one")
	assert.Equal(t, byte(0x02), recs[0].flags, "SYN from the first sender")
	assert.Equal(t, alice, recs[0].src)
	assert.Equal(t, byte(0x12), recs[1].flags, "SYN-ACK")
	assert.Equal(t, recs[0].seq+1, recs[1].ack)
	assert.Equal(t, byte(0x10), recs[2].flags, "ACK")
	next := map[netip.AddrPort]uint32{alice: recs[2].seq, bob: recs[1].seq + 1}
	var stream []byte
	for _, r := range recs[3:] {
		assert.Equal(t, byte(0x18), r.flags)
		assert.Equal(t, next[r.src], r.seq, "contiguous sequence numbers")
		assert.Equal(t, next[r.dst], r.ack, "acknowledges all the peer sent")
		next[r.src] += uint32(len(r.payload))
		stream = append(stream, r.payload...)
	}
	var want []byte
	for _, ev := range evs {
		want = append(want, ev.Raw...)
	}
	assert.Equal(t, want, stream)
}

func TestPcapIPv6(t *testing.T) {
	var buf bytes.Buffer
	w, err := trace.NewPcapWriter(&buf)
	require.NoError(t, err)
	a, b := netip.MustParseAddrPort("[2001:db8::1]:5060"), netip.MustParseAddrPort("[2001:db8::2]:5080")
	raw := exampleCall()[0].Raw
	w.Trace(trace.Event{Time: t0, Dir: trace.Sent, Transport: "UDP", Local: a, Remote: b, Raw: raw})
	w.Trace(trace.Event{Time: t0, Dir: trace.Received, Transport: "TLS", Local: a, Remote: b, Raw: raw})
	recs := readPcap(t, buf.Bytes())
	require.Len(t, recs, 5)
	for _, r := range recs {
		assert.True(t, r.v6)
	}
	assert.Equal(t, a, recs[0].src)
	assert.Equal(t, b, recs[1].src, "the received TLS message's connection is opened by its sender")
	assert.Equal(t, raw, recs[4].payload)
}

type failWriter struct{ n int }

func (f *failWriter) Write(b []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(b), nil
}

func TestWritersKeepTheFirstError(t *testing.T) {
	_, err := trace.NewPcapWriter(&failWriter{})
	assert.ErrorContains(t, err, "disk full")
	fw := &failWriter{n: 1}
	p, err := trace.NewPcapWriter(fw)
	require.NoError(t, err)
	ev := exampleCall()[0]
	p.Trace(ev)
	p.Trace(ev)
	assert.ErrorContains(t, p.Err(), "disk full")
	tw := trace.NewTextWriter(&failWriter{}, trace.TextOptions{})
	tw.Trace(ev)
	assert.ErrorContains(t, tw.Err(), "disk full")
}

func TestTextWriter(t *testing.T) {
	var buf bytes.Buffer
	w := trace.NewTextWriter(&buf, trace.TextOptions{})
	ev := exampleCall()[4] // 200 OK with SDP
	w.Trace(ev)
	out := buf.String()
	assert.True(t, strings.HasPrefix(out, "----- 2026-11-25 21:30:02.040000 UTC  received  UDP 192.0.2.20:5060 -> 192.0.2.10:5060  ("), out)
	assert.Contains(t, out, "\nSIP/2.0 200 OK\n")
	assert.Contains(t, out, "\nv=0\n", "bodies are written")
	assert.NotContains(t, out, "\r")

	buf.Reset()
	w.Trace(trace.Event{Time: t0, Dir: trace.Received, Transport: "TCP", ConnID: 3, Local: alice, Remote: bob,
		Raw: []byte("GARBAGE\x00\x1b[2J\xff é\r\n"), Err: message.ErrMalformed})
	w.Trace(trace.Event{Time: t0, Dir: trace.SendFailed, Transport: "TCP", ConnID: 3, Local: alice, Remote: bob,
		Raw: []byte("BYE sip:x SIP/2.0\r\n"), Err: io.ErrClosedPipe})
	assert.Equal(t, "----- 2026-11-25 21:30:00.000000 UTC  received  TCP#3 192.0.2.20:5060 -> 192.0.2.10:5060  (18 bytes)\n"+
		"!! malformed: "+message.ErrMalformed.Error()+"\n"+
		"GARBAGE\\x00\\x1b[2J\\xff é\n\n"+
		"----- 2026-11-25 21:30:00.000000 UTC  send failed  TCP#3 192.0.2.10:5060 -> 192.0.2.20:5060  (19 bytes)\n"+
		"!! send failed: io: read/write on closed pipe\n\n", buf.String())
}

func TestDedup(t *testing.T) {
	var got []string
	d := trace.Dedup(trace.Func(func(ev trace.Event) { got = append(got, ev.Dir.String()+" "+ev.Summary()) }), time.Second)
	evs := exampleCall()
	inv := evs[0]
	recv := func(ev trace.Event) trace.Event {
		ev.Dir = trace.Received
		ev.Local, ev.Remote = ev.Remote, ev.Local
		return ev
	}
	d.Trace(inv)       // alice sends
	d.Trace(recv(inv)) // bob receives: the same message
	d.Trace(inv)       // a retransmission
	d.Trace(inv)       // another
	d.Trace(recv(inv)) // one arrives
	ringing := evs[3]  // alice receives 180; bob's Sent is traced after it
	d.Trace(ringing)
	sent := ringing
	sent.Dir = trace.Sent
	sent.Local, sent.Remote = ringing.Remote, ringing.Local
	d.Trace(sent)
	failed := inv
	failed.Dir = trace.SendFailed
	d.Trace(failed)
	late := recv(inv)
	late.Time = inv.Time.Add(2 * time.Second) // past the window: the unpaired retransmission is forgotten
	d.Trace(late)
	assert.Equal(t, []string{
		"sent INVITE sip:bob@192.0.2.20",
		"sent INVITE sip:bob@192.0.2.20",
		"sent INVITE sip:bob@192.0.2.20",
		"received 180 Ringing",
		"send failed INVITE sip:bob@192.0.2.20",
		"received INVITE sip:bob@192.0.2.20",
	}, got)
}

func TestRecorderClonesAndBounds(t *testing.T) {
	r := trace.NewRecorder(3)
	evs := exampleCall()
	raw := append([]byte(nil), evs[0].Raw...)
	ev := evs[0]
	ev.Raw = raw
	r.Trace(ev)
	copy(raw, "XXXXXX") // the transport reuses its buffer
	for _, ev := range evs[1:] {
		r.Trace(ev)
	}
	kept := r.Events()
	require.Len(t, kept, 3)
	assert.Equal(t, len(evs)-3, r.Dropped())
	assert.True(t, bytes.HasPrefix(kept[0].Raw, []byte("INVITE ")), "a copy was kept")
	assert.Equal(t, "INVITE sip:bob@192.0.2.20", kept[0].Summary())
	assert.Equal(t, []string{"call-1@192.0.2.10"}, r.CallIDs())
	r.Reset()
	assert.Empty(t, r.Events())
	assert.Zero(t, r.Dropped())
}

func TestEventHelpers(t *testing.T) {
	ev := trace.Event{Dir: trace.Received, Local: alice, Remote: bob}
	assert.Equal(t, bob, ev.Source())
	assert.Equal(t, alice, ev.Destination())
	assert.Equal(t, "?", ev.Summary())
	assert.Equal(t, "", ev.CallID())
	assert.Equal(t, "Direction(9)", trace.Direction(9).String())
	c := trace.Event{Raw: []byte("not SIP"), Message: &message.Request{Method: "X"}}.Clone()
	assert.Nil(t, c.Message, "a clone whose bytes do not parse has no Message")
	var n int
	m := trace.Multi(nil, trace.Func(func(trace.Event) { n++ }), trace.Func(func(trace.Event) { n += 10 }))
	m.Trace(ev)
	assert.Equal(t, 11, n)
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create it")
	assert.Equal(t, string(want), string(got))
}

// TestLadderGolden draws the example call as SVG and Mermaid.
func TestLadderGolden(t *testing.T) {
	names := map[netip.AddrPort]string{alice: "alice 192.0.2.10", bob: "bob 192.0.2.20"}
	l := trace.NewLadder(exampleCall(), "call-1@192.0.2.10", trace.LadderOptions{
		Name: func(a netip.AddrPort) string { return names[a] },
	})
	require.Len(t, l.Steps, 8)
	assert.True(t, l.Steps[1].Retransmission)
	assert.Equal(t, 200, l.Steps[4].StatusCode)
	assert.Equal(t, "200 OK (SDP)", l.Steps[4].Label)

	var svg, mmd bytes.Buffer
	require.NoError(t, l.WriteSVG(&svg))
	require.NoError(t, l.WriteMermaid(&mmd))
	golden(t, "ladder.svg", svg.Bytes())
	golden(t, "ladder.mmd", mmd.Bytes())
	wellFormed(t, svg.Bytes())
}

// wellFormed checks that b is well-formed XML.
func wellFormed(t *testing.T, b []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		require.NoError(t, err)
	}
}

// TestLadderEscapes: names and labels from the network cannot break the
// SVG or the Mermaid text.
func TestLadderEscapes(t *testing.T) {
	l := &trace.Ladder{
		Title:        `Call-ID <x>&"y"; #z`,
		Participants: []string{"a<b>", "c&d;#1\n"},
		Steps: []trace.Step{
			{Time: t0, From: 0, To: 1, Label: "INVITE <script>alert(1)</script>; #x\x00", Transport: "UDP"},
			{Time: t0, From: 1, To: 1, Label: "MESSAGE", Transport: "UDP"},
			{Time: t0, From: 1, To: 0, Label: "603 Decline", StatusCode: 603, Transport: "UDP", Malformed: true},
		},
	}
	var svg, mmd bytes.Buffer
	require.NoError(t, l.WriteSVG(&svg))
	wellFormed(t, svg.Bytes())
	assert.NotContains(t, svg.String(), "<script>")
	require.NoError(t, l.WriteMermaid(&mmd))
	lines := strings.Split(strings.TrimSuffix(mmd.String(), "\n"), "\n")
	assert.Equal(t, []string{
		"sequenceDiagram",
		`    title Call-ID ‹x›&"y"； ＃z`,
		"    participant P1 as a‹b›",
		"    participant P2 as c&d；＃1 ",
		"    %% 21:30:00.000000 UDP",
		"    P1->>P2: INVITE ‹script›alert(1)‹/script›； ＃x ",
		"    %% 21:30:00.000000 UDP",
		"    P2->>P2: MESSAGE",
		"    %% 21:30:00.000000 UDP",
		"    P2-->>P1: 603 Decline (malformed)",
	}, lines)
}

// TestLadderDedupsTwoSides: a ladder from the events of both UserAgents
// draws each message once.
func TestLadderDedupsTwoSides(t *testing.T) {
	var evs []trace.Event
	for _, ev := range exampleCall() {
		evs = append(evs, ev)
		other := ev
		other.Dir = map[trace.Direction]trace.Direction{trace.Sent: trace.Received, trace.Received: trace.Sent}[ev.Dir]
		other.Local, other.Remote = ev.Remote, ev.Local
		other.Time = ev.Time.Add(time.Millisecond)
		if ev.Dir == trace.Received {
			other.Time = ev.Time.Add(-time.Millisecond)
		}
		evs = append(evs, other)
	}
	l := trace.NewLadder(evs, "call-1@192.0.2.10", trace.LadderOptions{})
	require.Len(t, l.Steps, 8)
	assert.Equal(t, []string{"192.0.2.10:5060", "192.0.2.20:5060"}, l.Participants)
	assert.Empty(t, trace.NewLadder(evs, "other", trace.LadderOptions{}).Steps)
}
