package trace_test

import (
	"bytes"
	"net/netip"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/trace"
)

// FuzzWriters feeds arbitrary bytes, as a peer may send, to every writer:
// the pcap reads back with good checksums, the text log is valid UTF-8
// without control characters but "\n", and the SVG ladder is well-formed.
func FuzzWriters(f *testing.F) {
	for _, ev := range exampleCall() {
		f.Add(ev.Raw, "UDP", false)
	}
	f.Add([]byte("INVITE sip:x SIP/2.0\r\nCall-ID: <&>\"\x00\r\n\r\n"), "TCP", true)
	f.Add([]byte("\xff\xfe\x1b[31m"), "WS", false)
	f.Fuzz(func(t *testing.T, raw []byte, transport string, v6 bool) {
		local, remote := alice, bob
		if v6 {
			local, remote = netip.MustParseAddrPort("[2001:db8::1]:5060"), netip.MustParseAddrPort("[2001:db8::2]:5060")
		}
		m, perr := message.Parse(raw)
		ev := trace.Event{Time: t0, Dir: trace.Received, Transport: transport, Local: local, Remote: remote, Raw: raw, Message: m, Err: perr}

		var pcap bytes.Buffer
		pw, err := trace.NewPcapWriter(&pcap)
		require.NoError(t, err)
		pw.Trace(ev)
		var got []byte
		for _, r := range readPcap(t, pcap.Bytes()) {
			got = append(got, r.payload...)
		}
		if len(raw) <= 65507 {
			require.Equal(t, string(raw), string(got))
		}

		var text bytes.Buffer
		trace.NewTextWriter(&text, trace.TextOptions{}).Trace(ev)
		require.True(t, utf8.Valid(text.Bytes()))
		for _, c := range text.Bytes() {
			require.False(t, c < 0x20 && c != '\n' && c != '\t', "control byte %#x in the text log", c)
		}

		if ev.CallID() != "" {
			l := trace.NewLadder([]trace.Event{ev}, ev.CallID(), trace.LadderOptions{Title: string(raw)})
			var svg bytes.Buffer
			require.NoError(t, l.WriteSVG(&svg))
			wellFormed(t, svg.Bytes())
		}
	})
}
