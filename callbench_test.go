package sip

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/sipua/sip/media"
	"github.com/sipua/sip/transport"
)

// benchAnswer answers any offer with one fixed SDP and carries no media,
// as bench/load's UAS does.
type benchAnswer struct{}

var benchSDP = []byte("v=0\r\no=uas 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")

func (benchAnswer) GetDescription(context.Context, media.Options) (media.Description, error) {
	return media.Description{ContentType: "application/sdp", Body: benchSDP}, nil
}
func (benchAnswer) SetDescription(context.Context, media.Description, media.Options) error {
	return nil
}
func (benchAnswer) HasDescription(ct string) bool        { return ct == "application/sdp" }
func (benchAnswer) SendDTMF(string, time.Duration) error { return media.ErrNotSupported }
func (benchAnswer) Close() error                         { return nil }

// BenchmarkUASCall runs whole calls against a UserAgent on loopback UDP,
// one after the other, as sipp's UAC does under bench/load: INVITE with
// an SDP offer, 200 (OnInvite calls Accept), ACK, BYE, 200. The client is
// a bare socket writing prepared bytes, so allocs/op and B/op are the
// UserAgent's (and the few of the client's formatting). "listener" adds a
// state listener to each call, as bench/load's UAS does to count calls.
func BenchmarkUASCall(b *testing.B) {
	for _, listener := range []bool{false, true} {
		name := "plain"
		if listener {
			name = "listener"
		}
		b.Run(name, func(b *testing.B) { benchUASCall(b, listener) })
	}
}

func benchUASCall(b *testing.B, listener bool) {
	ua, call := rawUAS(b, listener, func(media.SessionInfo) (media.Handler, error) { return benchAnswer{}, nil })
	defer stopUA(ua)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, st0 := cpuMicros(), ua.tp.Stats()
	for i := range b.N {
		call(i)
	}
	b.StopTimer()
	// The process's CPU per call, UserAgent and client together: the
	// figure bench/load measures (for the UAS alone) under sipp.
	if cpu := cpuMicros() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-µs/op")
	}
	reportWrites(b, ua, st0)
}

// reportWrites reports the UserAgent's UDP socket writes (sendto or
// sendmmsg) per call since st0.
func reportWrites(b *testing.B, ua *UserAgent, st0 transport.Stats) {
	st := ua.tp.Stats()
	b.ReportMetric(float64(st.WriteCalls-st0.WriteCalls)/float64(b.N), "writes/op")
}

// BenchmarkUASCallParallel runs the calls of BenchmarkUASCall from
// several callers at once (GOMAXPROCS × 8 sockets), so that the
// UserAgent works under load as under sipp rather than idling between
// two round trips: its cpu-µs/op is nearer what bench/load measures.
func BenchmarkUASCallParallel(b *testing.B) {
	ua, _ := rawUAS(b, true, func(media.SessionInfo) (media.Handler, error) { return benchAnswer{}, nil })
	defer stopUA(ua)
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, st0 := cpuMicros(), ua.tp.Stats()
	b.RunParallel(func(pb *testing.PB) {
		call, err := rawCaller(b, ua, true)
		if err != nil {
			b.Error(err)
			return
		}
		for i := 0; pb.Next(); i++ {
			call(i)
		}
	})
	b.StopTimer()
	if cpu := cpuMicros() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-µs/op")
	}
	reportWrites(b, ua, st0)
}

func stopUA(ua *UserAgent) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ua.Stop(ctx)
}

// rawUAS starts a UserAgent on loopback UDP whose OnInvite accepts every
// call (with a state listener on each when listener is set), and returns
// it with a function that runs call number i against it from a bare
// socket: INVITE with an SDP offer, 200, ACK, BYE, 200.
func rawUAS(tb testing.TB, listener bool, mf media.Factory, edit ...func(*UserAgentOptions)) (*UserAgent, func(i int)) {
	o := UserAgentOptions{
		URI:          "sip:uas@127.0.0.1",
		MediaFactory: mf,
		Limits:       Limits{MaxServerTransactions: -1, MaxPendingInvites: -1},
		Transport:    TransportOptions{Listen: []string{"udp://127.0.0.1:0"}},
		Delegate: UserAgentDelegate{OnInvite: func(inv *Invitation) {
			if listener {
				inv.OnStateChange(func(SessionState) {})
			}
			if err := inv.Accept(context.Background(), AcceptOptions{}); err != nil {
				tb.Error(err)
			}
		}},
	}
	for _, e := range edit {
		e(&o)
	}
	ua, err := NewUserAgent(o)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ua.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	call, err := rawCaller(tb, ua, mf != nil)
	if err != nil {
		stopUA(ua)
		tb.Fatal(err)
	}
	return ua, call
}

// rawCaller returns a function that runs call number i against ua from a
// socket of its own (see rawUAS); offer puts an SDP offer in the INVITE.
// Calls of different callers do not collide.
func rawCaller(tb testing.TB, ua *UserAgent, offer bool) (func(i int), error) {
	uas := ua.listenAddrs[0].addr
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.SetReadBuffer(1 << 20); err != nil {
		return nil, err
	}
	to := net.UDPAddrFromAddrPort(uas)
	local := c.LocalAddr().String()
	dst := uas.String()
	sdp := "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	if !offer {
		sdp = ""
	}
	port := strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
	var out []byte
	in := make([]byte, 65536)
	send := func(method string, cseq int, callID, branch, toTag string, body string) {
		out = out[:0]
		out = fmt.Appendf(out, "%s sip:uas@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s\r\n", method, dst, local, branch)
		out = fmt.Appendf(out, "From: sipp <sip:sipp@%s>;tag=t%s\r\nTo: <sip:uas@%s>%s\r\n", local, callID, dst, toTag)
		out = fmt.Appendf(out, "Call-ID: %s\r\nCSeq: %d %s\r\nContact: <sip:sipp@%s>\r\nMax-Forwards: 70\r\n", callID, cseq, method, local)
		if body != "" {
			out = append(out, "Content-Type: application/sdp\r\n"...)
		}
		out = fmt.Appendf(out, "Content-Length: %d\r\n\r\n%s", len(body), body)
		if _, err := c.WriteToUDP(out, to); err != nil {
			tb.Fatal(err)
		}
	}
	// recv reads until a final response to method, and returns its To tag
	// parameter (";tag=…").
	recv := func(method string) string {
		for {
			if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				tb.Fatal(err)
			}
			n, _, err := c.ReadFromUDP(in)
			if err != nil {
				tb.Fatal(err)
			}
			m := in[:n]
			if !bytes.HasPrefix(m, []byte("SIP/2.0 ")) || len(m) < 12 {
				continue
			}
			if m[8] == '1' || !bytes.Contains(m, []byte(" "+method+"\r\n")) {
				continue
			}
			if !bytes.HasPrefix(m[8:], []byte("200")) {
				tb.Fatalf("response %q", m[:12])
			}
			i := bytes.Index(m, []byte("\r\nTo:"))
			if i < 0 {
				tb.Fatal("no To")
			}
			line := m[i+2:]
			line = line[:bytes.Index(line, []byte("\r\n"))]
			j := bytes.Index(line, []byte(";tag="))
			if j < 0 {
				tb.Fatal("no To tag")
			}
			return string(line[j:])
		}
	}
	return func(i int) {
		id := strconv.Itoa(i) + "-" + port
		send("INVITE", 1, id, "i"+id, "", sdp)
		tag := recv("INVITE")
		send("ACK", 1, id, "a"+id, tag, "")
		send("BYE", 2, id, "b"+id, tag, "")
		recv("BYE")
	}, nil
}
