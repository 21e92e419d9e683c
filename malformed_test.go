package sip

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
)

// The hostile-input corpus of testdata/malformed: each file is sent from
// the wire to a running UserAgent over UDP, TCP and WebSocket, and the
// outcome is checked against expected.tsv. See testdata/malformed/README.md
// for the placeholders and the outcome words.

// hostileReadTimeout is the UserAgent's ReadTimeout in these tests: a
// stream message that never completes is cut off after it.
const hostileReadTimeout = 3 * time.Second

// outcome is what a UserAgent must do with one corpus message on one
// transport.
type outcome struct {
	codes []int // acceptable answers; empty: no answer at all
	// close: the UserAgent closes the connection at once; wait: it waits
	// for the rest of the message and closes the connection after
	// ReadTimeout. Neither: the connection stays usable.
	close, wait bool
	any         bool // tolerable: any answer or none
	skip        bool // "-": not sent on this transport
}

func parseOutcome(s string) (outcome, error) {
	var o outcome
	switch s {
	case "-":
		o.skip = true
		return o, nil
	case "any":
		o.any = true
		return o, nil
	}
	for part := range strings.SplitSeq(s, "+") {
		switch part {
		case "drop":
		case "close":
			o.close = true
		case "wait":
			o.wait = true
		default:
			for c := range strings.SplitSeq(part, "|") {
				if c == "drop" {
					o.codes = append(o.codes, 0) // no answer is fine too
					continue
				}
				var code int
				if _, err := fmt.Sscanf(c, "%d", &code); err != nil || code < 100 || code > 699 {
					return o, fmt.Errorf("bad outcome %q", s)
				}
				o.codes = append(o.codes, code)
			}
		}
	}
	return o, nil
}

func (o outcome) String() string {
	switch {
	case o.skip:
		return "-"
	case o.any:
		return "any"
	}
	var parts []string
	if len(o.codes) > 0 {
		var cs []string
		for _, c := range o.codes {
			if c == 0 {
				cs = append(cs, "drop")
			} else {
				cs = append(cs, fmt.Sprint(c))
			}
		}
		parts = append(parts, strings.Join(cs, "|"))
	}
	if o.close {
		parts = append(parts, "close")
	}
	if o.wait {
		parts = append(parts, "wait")
	}
	if len(parts) == 0 {
		return "drop"
	}
	return strings.Join(parts, "+")
}

type corpusCase struct {
	name         string
	udp, tcp, ws outcome
	data         []byte // nil: generated per transport
	generate     func(proto transport.Proto) []byte
	description  string
}

// generated corpus entries, too big to keep as files.
var generatedCases = map[string]func(proto transport.Proto) []byte{
	// 10 000 Via header fields (as many as fit in a datagram over UDP).
	"gen-via10000": func(proto transport.Proto) []byte {
		var b bytes.Buffer
		b.WriteString("MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: $VIA\r\n")
		for i := 1; i < 10000; i++ {
			if proto == transport.UDP && b.Len() > 60000 {
				break
			}
			fmt.Fprintf(&b, "Via: SIP/2.0/UDP 192.0.2.%d:5060;branch=z9hG4bK%d\r\n", i%250+1, i)
		}
		b.WriteString("Max-Forwards: 70\r\nFrom: <sip:mallory@127.0.0.1>;tag=m1\r\nTo: <sip:bob@127.0.0.1>\r\n" +
			"Call-ID: $CALLID\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n")
		return b.Bytes()
	},
	// A 1 MiB body (over UDP: announced, with what fits a datagram).
	"gen-body1mib": func(proto transport.Proto) []byte {
		n := 1 << 20
		present := n
		if proto == transport.UDP {
			present = 60000
		}
		return []byte(fmt.Sprintf("MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: $VIA\r\nMax-Forwards: 70\r\n"+
			"From: <sip:mallory@127.0.0.1>;tag=m1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: $CALLID\r\nCSeq: 1 MESSAGE\r\n"+
			"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", n, strings.Repeat("A", present)))
	},
}

func loadCorpus(t *testing.T) []*corpusCase {
	t.Helper()
	dir := filepath.Join("testdata", "malformed")
	f, err := os.Open(filepath.Join(dir, "expected.tsv"))
	require.NoError(t, err)
	defer f.Close()
	var cases []*corpusCase
	files := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		require.Len(t, cols, 5, "expected.tsv line %q", line)
		c := &corpusCase{name: cols[0], description: cols[4]}
		for i, o := range []*outcome{&c.udp, &c.tcp, &c.ws} {
			*o, err = parseOutcome(cols[1+i])
			require.NoError(t, err, line)
		}
		if g := generatedCases[c.name]; g != nil {
			c.generate = g
		} else {
			c.data, err = os.ReadFile(filepath.Join(dir, c.name+".sip"))
			require.NoError(t, err)
			files[c.name+".sip"] = true
		}
		cases = append(cases, c)
	}
	require.NoError(t, sc.Err())
	// Every file has its line.
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sip") {
			assert.True(t, files[e.Name()], "%s has no line in expected.tsv", e.Name())
		}
	}
	return cases
}

// hostileUA is a UserAgent listening on UDP, TCP and WS whose application
// accepts every MESSAGE and rejects every call.
type hostileUA struct {
	ua            *UserAgent
	udp, tcp, ws  string
	mu            sync.Mutex
	bodies        map[string][]byte // MESSAGE bodies by Call-ID
	invites       int
	stopped       bool
	messagesTaken int
}

func startHostileUA(t *testing.T, edit func(*UserAgentOptions)) *hostileUA {
	t.Helper()
	h := &hostileUA{bodies: map[string][]byte{}}
	opts := UserAgentOptions{
		URI: "sip:bob@127.0.0.1",
		Transport: TransportOptions{
			Listen:      []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0", "ws://127.0.0.1:0"},
			ReadTimeout: hostileReadTimeout,
		},
		MediaFactory: NoMedia,
		Delegate: UserAgentDelegate{
			OnMessage: func(m *IncomingRequest) {
				h.mu.Lock()
				h.bodies[m.Request.Header.CallID()] = bytes.Clone(m.Request.Body)
				h.messagesTaken++
				h.mu.Unlock()
			},
			OnInvite: func(inv *Invitation) {
				h.mu.Lock()
				h.invites++
				h.mu.Unlock()
				_ = inv.Reject(context.Background(), 486, "")
			},
		},
	}
	if edit != nil {
		edit(&opts)
	}
	ua, err := NewUserAgent(opts)
	require.NoError(t, err)
	require.NoError(t, ua.Start(ctx5(t)))
	h.ua = ua
	for _, la := range ua.listenAddrs {
		switch la.proto {
		case transport.UDP:
			h.udp = la.addr.String()
		case transport.TCP:
			h.tcp = la.addr.String()
		case transport.WS:
			h.ws = la.addr.String()
		}
	}
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *hostileUA) stop(t *testing.T) {
	if h.stopped {
		return
	}
	h.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, h.ua.Stop(ctx))
}

// wire is one client channel to the UserAgent: a UDP socket, a TCP or a
// WebSocket connection.
type wire struct {
	proto  transport.Proto
	udp    *net.UDPConn
	to     *net.UDPAddr
	tcp    net.Conn
	ws     *websocket.Conn
	resps  chan *message.Response
	closed chan struct{} // the UserAgent closed the connection
}

func dialWire(t *testing.T, h *hostileUA, proto transport.Proto) (*wire, error) {
	w := &wire{proto: proto, resps: make(chan *message.Response, 64), closed: make(chan struct{})}
	switch proto {
	case transport.UDP:
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		w.udp = c
		w.to = net.UDPAddrFromAddrPort(netip.MustParseAddrPort(h.udp))
		go func() {
			defer close(w.closed)
			buf := make([]byte, 65536)
			for {
				n, _, err := c.ReadFromUDP(buf)
				if err != nil {
					return
				}
				if r, err := message.ParseResponse(buf[:n]); err == nil {
					w.resps <- r
				}
			}
		}()
	case transport.TCP:
		c, err := net.Dial("tcp", h.tcp)
		if err != nil {
			return nil, err
		}
		w.tcp = c
		go func() {
			defer close(w.closed)
			sr := message.NewStreamReader(c, message.Limits{})
			for {
				m, _, err := sr.Next()
				if err != nil {
					return
				}
				if r, ok := m.(*message.Response); ok {
					w.resps <- r
				}
			}
		}()
	case transport.WS:
		d := websocket.Dialer{Subprotocols: []string{"sip"}}
		c, _, err := d.Dial("ws://"+h.ws+"/", nil)
		if err != nil {
			return nil, err
		}
		w.ws = c
		go func() {
			defer close(w.closed)
			for {
				_, b, err := c.ReadMessage()
				if err != nil {
					return
				}
				if r, err := message.ParseResponse(b); err == nil {
					w.resps <- r
				}
			}
		}()
	}
	t.Cleanup(w.close)
	return w, nil
}

func (w *wire) close() {
	switch {
	case w.udp != nil:
		w.udp.Close()
	case w.tcp != nil:
		w.tcp.Close()
	case w.ws != nil:
		w.ws.Close()
	}
	<-w.closed
}

// local returns the Via sent-by of the wire.
func (w *wire) via(branch string) string {
	switch w.proto {
	case transport.UDP:
		return "SIP/2.0/UDP " + w.udp.LocalAddr().String() + ";branch=" + branch + ";rport"
	case transport.TCP:
		return "SIP/2.0/TCP " + w.tcp.LocalAddr().String() + ";branch=" + branch + ";rport"
	}
	return "SIP/2.0/WS hostile.invalid;branch=" + branch
}

func (w *wire) send(t *testing.T, data []byte) {
	var err error
	switch w.proto {
	case transport.UDP:
		_, err = w.udp.WriteToUDP(data, w.to)
	case transport.TCP:
		_, err = w.tcp.Write(data)
	case transport.WS:
		typ := websocket.TextMessage
		if !isUTF8(data) {
			typ = websocket.BinaryMessage
		}
		err = w.ws.WriteMessage(typ, data)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
		// A write the UserAgent cut short (it closed the connection on a
		// message over the limits) is part of the outcome, not a failure.
		t.Logf("send on %s: %v", w.proto, err)
	}
}

func isUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

// fill replaces the placeholders of a corpus message.
func fill(data []byte, w *wire, branch, callID string) []byte {
	data = bytes.ReplaceAll(data, []byte("$VIA"), []byte(w.via(branch)))
	return bytes.ReplaceAll(data, []byte("$CALLID"), []byte(callID))
}

// probe is a valid OPTIONS request.
func probe(w *wire, branch, callID string) []byte {
	return []byte("OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: " + w.via(branch) + "\r\nMax-Forwards: 70\r\n" +
		"From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: " + callID + "\r\n" +
		"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
}

func branchOf(r *message.Response) string {
	v, err := r.Header.TopVia()
	if err != nil {
		return ""
	}
	return v.Branch()
}

// result is what happened to one corpus message on one wire.
type result struct {
	codes  []int // answers to the message
	closed bool  // the UserAgent closed the connection
	after  time.Duration
	probe  string // what came of the probe after the message, for a failure's text
	sends  int    // times the message was sent (UDP: again until answered)
}

func (r result) String() string {
	return fmt.Sprintf("answers %v, closed %v after %v, probe %s, sent %d times", r.codes, r.closed, r.after.Round(100*time.Millisecond), r.probe, r.sends)
}

// runCase sends one corpus message on a new wire and observes the result.
func runCase(t *testing.T, h *hostileUA, c *corpusCase, proto transport.Proto, want outcome) result {
	// The UserAgent's ReadTimeout for a connection's first message runs
	// from its accept, so the time to a close is taken from the dial: from
	// the send, a dial slowed by load would make a close in time look
	// early.
	start := time.Now()
	w, err := dialWire(t, h, proto)
	if err != nil {
		t.Errorf("%s on %s: %v", c.name, proto, err)
		return result{}
	}
	defer w.close()
	id := strings.ReplaceAll(c.name, "-", "") + "-" + strings.ToLower(string(proto))
	branch, callID := "z9hG4bK-"+id, "call-"+id
	data := c.data
	if c.generate != nil {
		data = c.generate(proto)
	}
	var res result
	msg := fill(data, w, branch, callID)
	w.send(t, msg)
	res.sends++
	// A probe after the message on the same wire (unless the message
	// leaves the stream waiting or closed): answered in order, it shows
	// that the message was handled and the wire still works.
	probeBranch, probeCallID := "z9hG4bK-probe-"+id, "probe-"+id
	probed := !want.wait && !want.close && !want.any
	if probed {
		w.send(t, probe(w, probeBranch, probeCallID))
	}
	// Over UDP the message and the probe are sent again every T1 until
	// answered, as a UDP client does (RFC 3261 §17.1.2.2): a datagram
	// lost on a loaded machine is not the UserAgent's outcome. A copy is
	// a retransmission to the UserAgent: answered again or absorbed.
	var resend <-chan time.Time
	if proto == transport.UDP {
		tk := time.NewTicker(500 * time.Millisecond)
		defer tk.Stop()
		resend = tk.C
	}
	deadline := time.After(10 * time.Second)
	if want.wait || want.close {
		deadline = time.After(hostileReadTimeout + 10*time.Second)
	}
	if want.any {
		deadline = time.After(hostileReadTimeout + time.Second)
	}
	probeOK := false
	closed := w.closed
	needAnswer := 0
	if len(want.codes) > 0 && !slices.Contains(want.codes, 0) {
		needAnswer = 1
	}
	done := func() bool {
		switch {
		case want.any:
			return false
		case probed:
			return probeOK && len(res.codes) >= needAnswer
		}
		return res.closed && len(res.codes) >= needAnswer
	}
	answered := false // the message got its final answer
	take := func(r *message.Response) {
		b := branchOf(r)
		switch {
		case b == probeBranch || r.Header.CallID() == probeCallID:
			assert.Equal(t, 200, r.StatusCode, "probe after %s on %s", c.name, proto)
			probeOK = true
		case b == branch || r.Header.CallID() == callID:
			if r.StatusCode >= 200 && len(res.codes) == 0 { // not the retransmissions
				res.codes = append(res.codes, r.StatusCode)
				answered = true
			}
		default:
			t.Errorf("%s on %s: unexpected response %d %s", c.name, proto, r.StatusCode, r.Header.CallID())
		}
	}
loop:
	for !done() {
		select {
		case r := <-w.resps:
			take(r)
		case <-closed:
			res.closed, res.after = true, time.Since(start)
			closed = nil
			// The reader queued every response before it saw the end.
			for len(w.resps) > 0 {
				take(<-w.resps)
			}
			if !done() {
				break loop
			}
		case <-resend:
			if !answered {
				w.send(t, msg)
				res.sends++
			}
			if probed && !probeOK {
				w.send(t, probe(w, probeBranch, probeCallID))
			}
		case <-deadline:
			break loop
		}
	}
	switch {
	case !probed:
		res.probe = "not sent"
	case probeOK:
		res.probe = "answered"
	default:
		res.probe = "not answered"
	}
	return res
}

func check(t *testing.T, c *corpusCase, proto transport.Proto, want outcome, got result) {
	t.Helper()
	if want.any {
		return
	}
	if len(want.codes) == 0 {
		assert.Empty(t, got.codes, "%s on %s: want no answer", c.name, proto)
	} else if !(slices.Contains(want.codes, 0) && len(got.codes) == 0) {
		require.Len(t, got.codes, 1, "%s on %s: want one of %v, got %v", c.name, proto, want.codes, got)
		assert.Contains(t, want.codes, got.codes[0], "%s on %s: %v", c.name, proto, got)
	}
	switch {
	case want.close:
		assert.True(t, got.closed, "%s on %s: want the connection closed: %v", c.name, proto, got)
		assert.Less(t, got.after, hostileReadTimeout, "%s on %s: want it closed at once", c.name, proto)
	case want.wait:
		assert.True(t, got.closed, "%s on %s: want the connection closed after ReadTimeout: %v", c.name, proto, got)
		assert.GreaterOrEqual(t, got.after, hostileReadTimeout-100*time.Millisecond, "%s on %s: closed before ReadTimeout", c.name, proto)
	default:
		assert.False(t, got.closed, "%s on %s: connection closed: %v", c.name, proto, got)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestMalformedCorpus sends every message of testdata/malformed to a
// running UserAgent over UDP, TCP and WebSocket, each on a wire of its
// own and all at once, and checks each outcome against expected.tsv: the
// right answer or none, the connection kept, closed at once, or closed
// after ReadTimeout. Then the UserAgent still answers OPTIONS on every
// transport, its heap has not grown by more than a bound, and after Stop
// no goroutine is left.
func TestMalformedCorpus(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	cases := loadCorpus(t)
	h := startHostileUA(t, nil)
	heap0 := heapInUse()

	// Every case on every transport at once, each on a wire of its own
	// (goroutines, not parallel subtests: -parallel is only GOMAXPROCS).
	type job struct {
		c     *corpusCase
		proto transport.Proto
		want  outcome
		got   result
	}
	var jobs []*job
	for _, c := range cases {
		for _, proto := range []transport.Proto{transport.UDP, transport.TCP, transport.WS} {
			want := map[transport.Proto]outcome{transport.UDP: c.udp, transport.TCP: c.tcp, transport.WS: c.ws}[proto]
			if !want.skip {
				jobs = append(jobs, &job{c: c, proto: proto, want: want})
			}
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 24)
	for _, j := range jobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			j.got = runCase(t, h, j.c, j.proto, j.want)
		})
	}
	wg.Wait()
	report := map[string]map[transport.Proto]result{}
	for _, j := range jobs {
		t.Run(j.c.name+"/"+string(j.proto), func(t *testing.T) { check(t, j.c, j.proto, j.want, j.got) })
		if report[j.c.name] == nil {
			report[j.c.name] = map[transport.Proto]result{}
		}
		report[j.c.name][j.proto] = j.got
	}
	if testing.Verbose() {
		for _, c := range cases {
			t.Logf("%-20s udp %-28v tcp %-28v ws %v", c.name, report[c.name][transport.UDP], report[c.name][transport.TCP], report[c.name][transport.WS])
		}
	}

	// The application saw exactly the bodies the valid parts announced.
	h.mu.Lock()
	for _, proto := range []string{"udp", "tcp", "ws"} {
		assert.Equal(t, []byte("hello"), h.bodies["call-clsmaller-"+proto], "cl-smaller on %s: body cut at Content-Length", proto)
		assert.Equal(t, []byte("\x00\x01\x00binary\x00\r\n\r\n\x00"), h.bodies["call-nulbody-"+proto], "nul-body on %s", proto)
	}
	h.mu.Unlock()

	// Still answering, on every transport.
	for _, proto := range []transport.Proto{transport.UDP, transport.TCP, transport.WS} {
		w, err := dialWire(t, h, proto)
		require.NoError(t, err)
		w.send(t, probe(w, "z9hG4bK-final-"+string(proto), "final-"+string(proto)))
		select {
		case r := <-w.resps:
			assert.Equal(t, 200, r.StatusCode, "OPTIONS after the corpus on %s", proto)
		case <-time.After(5 * time.Second):
			t.Fatalf("no answer to OPTIONS after the corpus on %s", proto)
		}
		w.close()
	}

	grown := int64(heapInUse()) - int64(heap0)
	t.Logf("heap in use grew by %d KiB over the corpus", grown>>10)
	assert.Less(t, grown, int64(16<<20), "heap growth over the corpus")

	h.stop(t)
	goleak.VerifyNone(t, leaks)
}
