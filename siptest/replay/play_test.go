package replay

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/siptest"
)

// These tests play recorded exchanges to a scripted side B on the
// in-memory network: B sends the recorded messages with other values (its
// address, tags, branches, Call-ID, CSeq numbers, Contact user, cnonce),
// as a real user agent would in another run, possibly altered to check
// that Play notices.

var (
	recA  = netip.MustParseAddrPort("10.0.0.1:5060")
	recB  = netip.MustParseAddrPort("10.0.0.2:5070")
	liveA = siptest.Addr("192.0.2.10:5060")
	liveB = siptest.Addr("192.0.2.2:5060")
)

// vals are the values side B chooses in one run.
type vals struct {
	addr                 netip.AddrPort
	branch1, branch2     string
	tag, callID, user    string
	cseq                 uint32
	cnonce, password, ua string
}

var (
	recorded = vals{recB, "z9hG4bKrec1", "z9hG4bKrec2", "rectag", "reccallid", "recuser", 100, "reccnonce", "secret", "ua"}
	live     = vals{liveB, "z9hG4bKlive1", "z9hG4bKlive2", "livetag", "livecall", "liveuser", 7, "livecnonce", "secret", "ua"}
)

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// register returns B's first (n=1) or second REGISTER, with credentials.
func (v vals) register(n int) string {
	branch, cseq, auth := v.branch1, v.cseq, ""
	if n == 2 {
		branch, cseq = v.branch2, v.cseq+1
		ha1 := md5hex("bob:example.com:" + v.password)
		resp := md5hex(ha1 + ":n0nce:00000001:" + v.cnonce + ":auth:" + md5hex("REGISTER:sip:example.com"))
		auth = fmt.Sprintf("Authorization: Digest username=\"bob\", realm=\"example.com\", nonce=\"n0nce\", "+
			"uri=\"sip:example.com\", response=\"%s\", qop=auth, nc=00000001, cnonce=\"%s\"\r\n", resp, v.cnonce)
	}
	return "REGISTER sip:example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + v.addr.String() + ";branch=" + branch + ";rport\r\n" +
		"From: <sip:bob@example.com>;tag=" + v.tag + "\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"Call-ID: " + v.callID + "\r\n" +
		fmt.Sprintf("CSeq: %d REGISTER\r\n", cseq) +
		"Contact: <sip:" + v.user + "@" + v.addr.String() + ">\r\n" +
		"Expires: 600\r\n" +
		"User-Agent: " + v.ua + "\r\n" +
		auth +
		"Content-Length: 0\r\n\r\n"
}

// answer returns A's 401 (n=1) or 200 (n=2) to B's REGISTER n, as B must
// receive it.
func (v vals) answer(n int) string {
	branch, cseq, status, extra := v.branch1, v.cseq, "401 Unauthorized", "WWW-Authenticate: Digest realm=\"example.com\", nonce=\"n0nce\", qop=\"auth\"\r\n"
	if n == 2 {
		branch, cseq, status = v.branch2, v.cseq+1, "200 OK"
		extra = "Contact: <sip:" + v.user + "@" + v.addr.String() + ">;expires=600\r\n"
	}
	return "SIP/2.0 " + status + "\r\n" +
		"Via: SIP/2.0/UDP " + v.addr.String() + ";branch=" + branch + ";rport=" + fmt.Sprint(v.addr.Port()) + ";received=" + v.addr.Addr().String() + "\r\n" +
		"From: <sip:bob@example.com>;tag=" + v.tag + "\r\n" +
		fmt.Sprintf("To: <sip:bob@example.com>;tag=a-tag-%d\r\n", n) +
		"Call-ID: " + v.callID + "\r\n" +
		fmt.Sprintf("CSeq: %d REGISTER\r\n", cseq) +
		extra +
		"Server: registrar\r\n" +
		"Content-Length: 0\r\n\r\n"
}

// registerTrace is the recorded exchange: REGISTER, 401, REGISTER with
// credentials, 200.
func registerTrace() *Trace {
	return &Trace{
		Title: "register",
		A:     Party{Name: "registrar", Addr: recA},
		B:     Party{Name: "ua", Addr: recB},
		Messages: []Message{
			{From: SideB, Data: []byte(recorded.register(1))},
			{From: SideA, Data: []byte(recorded.answer(1))},
			{From: SideB, Data: []byte(recorded.register(2))},
			{From: SideA, Data: []byte(recorded.answer(2))},
		},
	}
}

// action is one step of a scripted side B: send a message, or receive
// one and compare it with want (when want is not empty).
type action struct {
	send, want string
}

// scriptB runs side B's actions on conn towards to and reports the first
// difference or error.
func scriptB(conn net.PacketConn, to netip.AddrPort, actions []action) <-chan error {
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 65536)
		for i, a := range actions {
			if a.send != "" {
				if _, err := conn.WriteTo([]byte(a.send), net.UDPAddrFromAddrPort(to)); err != nil {
					errc <- err
					return
				}
				continue
			}
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				errc <- fmt.Errorf("action %d: %w", i, err)
				return
			}
			if a.want != "" && string(buf[:n]) != a.want {
				errc <- fmt.Errorf("action %d: B got\n%s\nwant\n%s", i, buf[:n], a.want)
				return
			}
		}
		errc <- nil
	}()
	return errc
}

// play runs Play for tr against a scripted B inside a synctest bubble
// and returns Play's result and error and the script's error.
func play(t *testing.T, tr *Trace, opts Options, actions []action) (*Result, error, error) {
	t.Helper()
	var res *Result
	var perr, serr error
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		a, err := n.ListenPacket("registrar", liveA)
		require.NoError(t, err)
		b, err := n.ListenPacket("ua", liveB)
		require.NoError(t, err)
		errc := scriptB(b, liveA, actions)
		if opts.Timeout == 0 {
			opts.Timeout = time.Second
		}
		res, perr = Play(context.Background(), a, tr, opts)
		if perr != nil {
			b.Close() // ends the script: Play gave up
		}
		serr = <-errc
	})
	return res, perr, serr
}

// registerScript is side B's part of registerTrace in this run, with
// mutate applied to what B sends.
func registerScript(mutate func(n int, msg string) string) []action {
	if mutate == nil {
		mutate = func(_ int, m string) string { return m }
	}
	return []action{
		{send: mutate(1, live.register(1))},
		{want: live.answer(1)},
		{send: mutate(2, live.register(2))},
		{want: live.answer(2)},
	}
}

// TestPlayRegister: Play learns B's values from its REGISTER and writes
// them into the 401 and the 200 it sends (the script checks them byte for
// byte), and verifies the digest response with the password.
func TestPlayRegister(t *testing.T) {
	var steps []string
	res, err, serr := play(t, registerTrace(), Options{
		Passwords: map[string]string{"bob": "secret"},
		OnStep:    func(s Step) { steps = append(steps, fmt.Sprintf("%d %v", s.Index, s.From)) },
		Logf:      t.Logf,
	}, registerScript(nil))
	require.NoError(t, err)
	require.NoError(t, serr)
	assert.Equal(t, []string{"0 B", "1 A", "2 B", "3 A"}, steps)
	assert.Equal(t, []string{"B->A REGISTER", "A->B 401", "B->A REGISTER", "A->B 200"}, res.Trace.Flow())
	assert.Equal(t, liveA, res.Trace.A.Addr)
	assert.Equal(t, liveB, res.Trace.B.Addr)
	assert.Equal(t, map[string]string{
		"10.0.0.1:5060": "192.0.2.10:5060", "10.0.0.2:5070": "192.0.2.2:5060",
		"z9hG4bKrec1": "z9hG4bKlive1", "z9hG4bKrec2": "z9hG4bKlive2",
		"rectag": "livetag", "reccallid": "livecall", "recuser": "liveuser",
	}, res.Mapping)
	assert.Zero(t, res.Retransmissions)
}

// TestPlayMismatch: each way side B can differ is reported with a clear
// message and a diff.
func TestPlayMismatch(t *testing.T) {
	for _, c := range []struct {
		name   string
		at     int // B's message to alter: 1 or 2
		mutate func(string) string
		index  int    // the trace's message reported
		want   string // in the problems
		diff   string // in the diff
	}{
		{"value", 1, repl("Expires: 600", "Expires: 3600"), 0, `Expires: want "600", got "3600"`, "- Expires: 600\n+ Expires: 3600"},
		{"method", 1, repl("REGISTER sip:", "OPTIONS sip:"), 0, "want a REGISTER request, got a OPTIONS request", "+ OPTIONS sip:example.com SIP/2.0"},
		{"request-uri", 1, repl("REGISTER sip:example.com", "REGISTER sip:example.org"), 0, "Request-URI: want sip:example.com, got sip:example.org", ""},
		{"call-id", 2, repl("livecall", "othercall"), 2, `Call-ID: the trace's "reccallid" is "livecall" in this run, but here it is "othercall"`, "- Call-ID: livecall\n+ Call-ID: othercall"},
		{"branch reused", 2, repl("z9hG4bKlive2", "z9hG4bKlive1"), 2,
			`Via branch: "z9hG4bKlive1" stands for the trace's "z9hG4bKrec1" in this run, but here for "z9hG4bKrec2"`, ""},
		{"cseq", 2, repl("CSeq: 8", "CSeq: 9"), 2, "CSeq: the trace's 101 is 9 here, but the numbers of this call so far were offset by -93 (want 8)", ""},
		{"missing header", 1, repl("User-Agent: ua\r\n", ""), 0, "header User-Agent: missing", "- User-Agent: ua"},
		{"extra header", 1, repl("Expires: 600\r\n", "Expires: 600\r\nX-Extra: 1\r\n"), 0, "header X-Extra: not in the trace", "+ X-Extra: 1"},
		{"tag", 1, repl("To: <sip:bob@example.com>", "To: <sip:bob@example.com>;tag=x"), 0, "To tag: want none, got one", ""},
		{"via count", 1, repl("Via: ", "Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKx\r\nVia: "), 0, "Via: want 1 values, got 2", ""},
		{"contact user", 2, repl("sip:liveuser@", "sip:otheruser@"), 2, `Contact user: the trace's "recuser" is "liveuser"`, ""},
		{"password", 2, func(string) string { v := live; v.password = "wrong"; return v.register(2) }, 2,
			"Authorization: the response is not the digest of bob's password", ""},
		{"nonce", 2, repl(`nonce="n0nce"`, `nonce="other"`), 2, `Authorization: nonce: want "n0nce", got "other"`, ""},
		{"cnonce", 2, repl(`, cnonce="livecnonce"`, ""), 2, "Authorization: cnonce: want one, got none", ""},
		{"digest length", 2, func(s string) string {
			i := strings.Index(s, `response="`) + len(`response="`)
			return s[:i] + "abc" + s[i+32:]
		}, 2, `Authorization: response "abc" is not a MD5 digest`, ""},
		{"no credentials", 2, func(s string) string {
			i := strings.Index(s, "Authorization:")
			j := strings.Index(s[i:], "\r\n") + i + 2
			return s[:i] + s[j:]
		}, 2, "header Authorization: missing", ""},
		{"body", 1, func(s string) string {
			return strings.Replace(s, "Content-Length: 0\r\n\r\n", "Content-Length: 2\r\n\r\nhi", 1)
		}, 0, "body: want none, got 2 bytes", "+ hi"},
		{"not sip", 1, func(string) string { return "hello" }, 0, "not a SIP message", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err, _ := play(t, registerTrace(), Options{Passwords: map[string]string{"bob": "secret"}},
				registerScript(func(n int, m string) string {
					if n == c.at {
						return c.mutate(m)
					}
					return m
				}))
			var me *MismatchError
			require.ErrorAs(t, err, &me)
			t.Logf("%v", err)
			assert.Equal(t, c.index, me.Index)
			assert.Contains(t, strings.Join(me.Problems, "\n"), c.want)
			assert.Contains(t, err.Error(), c.diff)
			assert.Contains(t, err.Error(), fmt.Sprintf("replay: message %d (B->A REGISTER) does not match", c.index))
		})
	}
}

func repl(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

// TestPlayUDP: Play works on real UDP sockets too (on real time).
func TestPlayUDP(t *testing.T) {
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer a.Close()
	b, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()
	v := live
	v.addr = b.LocalAddr().(*net.UDPAddr).AddrPort()
	errc := scriptB(b, a.LocalAddr().(*net.UDPAddr).AddrPort(), []action{
		{send: v.register(1)}, {want: v.answer(1)}, {send: v.register(2)}, {want: v.answer(2)},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := Play(ctx, a, registerTrace(), Options{Passwords: map[string]string{"bob": "secret"}})
	require.NoError(t, err)
	require.NoError(t, <-errc)
	assert.Equal(t, v.addr, res.Trace.B.Addr)
	assert.Equal(t, v.addr.String(), res.Mapping["10.0.0.2:5070"])
}

// TestPlayMap: values known to differ are given in Options.Map.
func TestPlayMap(t *testing.T) {
	toOrg := func(s string) string { return strings.ReplaceAll(s, "example.com", "example.org") }
	script := registerScript(func(_ int, m string) string { return toOrg(m) })
	script[1].want, script[3].want = toOrg(script[1].want), toOrg(script[3].want)
	// The digest is over the recorded realm and URI: compare it with a
	// realm and URI of this run.
	script[2].send = toOrg(live.register(2))
	_, err, _ := play(t, registerTrace(), Options{}, script)
	require.Error(t, err, "without the mapping")
	_, err, serr := play(t, registerTrace(), Options{Map: map[string]string{"example.com": "example.org"}}, script)
	require.NoError(t, err)
	require.NoError(t, serr)
}

// TestPlayIgnoreHeaders: an ignored header field may come and go.
func TestPlayIgnoreHeaders(t *testing.T) {
	_, err, serr := play(t, registerTrace(), Options{IgnoreHeaders: []string{"user-agent"}},
		registerScript(func(_ int, m string) string { return strings.Replace(m, "User-Agent: ua\r\n", "", 1) }))
	require.NoError(t, err)
	require.NoError(t, serr)
}

// TestPlayCompareHeaders: a header field added to the comparison must
// keep its value.
func TestPlayCompareHeaders(t *testing.T) {
	_, err, _ := play(t, registerTrace(), Options{CompareHeaders: []string{"User-Agent"}},
		registerScript(func(_ int, m string) string { return strings.Replace(m, "User-Agent: ua", "User-Agent: other", 1) }))
	var me *MismatchError
	require.ErrorAs(t, err, &me)
	assert.Contains(t, me.Problems, `User-Agent: want "ua", got "other"`)
}

// TestPlayRetransmissions: B's retransmissions are ignored and counted;
// the trace's own retransmissions are not played.
func TestPlayRetransmissions(t *testing.T) {
	tr := registerTrace()
	// The trace holds a retransmitted REGISTER and a retransmitted 401.
	tr.Messages = append(tr.Messages[:2:2], append([]Message{tr.Messages[0], tr.Messages[1]}, tr.Messages[2:]...)...)
	script := registerScript(nil)
	script = append([]action{script[0], script[0]}, script[1:]...) // B sends its REGISTER twice
	res, err, serr := play(t, tr, Options{}, script)
	require.NoError(t, err)
	require.NoError(t, serr)
	assert.Equal(t, 1, res.Retransmissions)
	assert.Equal(t, []int{2, 3}, res.Skipped)
	// The 401 goes as soon as the first REGISTER is there.
	assert.Equal(t, []string{"B->A REGISTER", "A->B 401", "B->A REGISTER", "B->A REGISTER", "A->B 200"}, res.Trace.Flow())
	assert.Equal(t, "retransmission (ignored)", res.Trace.Messages[2].Note)
	assert.Equal(t, "message 4 of the trace", res.Trace.Messages[3].Note)
}

// TestPlayTimeout: a message B never sends ends the replay after
// Options.Timeout (virtual time), saying what was awaited.
func TestPlayTimeout(t *testing.T) {
	var sent, failed time.Time
	_, err, _ := play(t, registerTrace(), Options{Timeout: 3 * time.Second, OnStep: func(s Step) {
		if s.Index == 1 {
			sent = time.Now()
		}
	}, Logf: func(string, ...any) { failed = time.Now() }}, registerScript(nil)[:2])
	require.ErrorIs(t, err, ErrTimeout)
	assert.Contains(t, err.Error(), "nothing from the user agent for 3s, waiting for message 2 (B->A REGISTER); "+
		"the last event: message 1 (A->B 401 Unauthorized) was sent")
	assert.Equal(t, time.Duration(0), failed.Sub(sent), "the last log line is the 401's")
}

// TestPlayLinger: a message after the end of the trace fails the replay
// when Linger is set.
func TestPlayLinger(t *testing.T) {
	script := append(registerScript(nil), action{send: "OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n"})
	_, err, _ := play(t, registerTrace(), Options{Linger: time.Second}, script)
	var me *MismatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, -1, me.Index)
	assert.Contains(t, err.Error(), "unexpected message after the end of the trace")
	assert.Contains(t, err.Error(), "OPTIONS sip:x SIP/2.0")

	// A retransmission is fine.
	script = append(registerScript(nil), action{send: live.register(2)})
	res, err, _ := play(t, registerTrace(), Options{Linger: time.Second}, script)
	require.NoError(t, err)
	assert.Equal(t, 1, res.Retransmissions)
}

// TestPlayAnyOrder: consecutive messages of B may come in another order.
func TestPlayAnyOrder(t *testing.T) {
	options := func(v vals) string {
		return "OPTIONS sip:example.com SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + v.addr.String() + ";branch=" + v.branch2 + "\r\n" +
			"From: <sip:bob@example.com>;tag=" + v.tag + "o\r\n" +
			"To: <sip:example.com>\r\nCall-ID: " + v.callID + "o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	}
	tr := &Trace{A: Party{Addr: recA}, B: Party{Addr: recB}, Messages: []Message{
		{From: SideB, Data: []byte(recorded.register(1))},
		{From: SideB, Data: []byte(options(recorded))},
		{From: SideA, Data: []byte(recorded.answer(1))},
	}}
	_, err, serr := play(t, tr, Options{}, []action{
		{send: options(live)}, {send: live.register(1)}, {want: live.answer(1)},
	})
	require.NoError(t, err)
	require.NoError(t, serr)
}

// TestPlayPeerSpeaksFirst: when side A starts, Options.Peer says where B
// is; B's To tag in its answer is learnt and written into A's next
// request.
func TestPlayPeerSpeaksFirst(t *testing.T) {
	invite := "INVITE sip:recuser@10.0.0.2:5070 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa1\r\n" +
		"From: <sip:alice@example.com>;tag=atag\r\nTo: <sip:bob@example.com>\r\n" +
		"Call-ID: acall\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n"
	ok := func(tag string) string {
		return "SIP/2.0 486 Busy Here\r\n" +
			"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa1\r\n" +
			"From: <sip:alice@example.com>;tag=atag\r\nTo: <sip:bob@example.com>;tag=" + tag + "\r\n" +
			"Call-ID: acall\r\nCSeq: 5 INVITE\r\nContent-Length: 0\r\n\r\n"
	}
	ack := func(tag string) string {
		return "ACK sip:recuser@10.0.0.2:5070 SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa1\r\n" +
			"From: <sip:alice@example.com>;tag=atag\r\nTo: <sip:bob@example.com>;tag=" + tag + "\r\n" +
			"Call-ID: acall\r\nCSeq: 5 ACK\r\nContent-Length: 0\r\n\r\n"
	}
	tr := &Trace{A: Party{Addr: recA}, B: Party{Addr: recB}, Messages: []Message{
		{From: SideA, Data: []byte(invite)},
		{From: SideB, Data: []byte(ok("rectotag"))},
		{From: SideA, Data: []byte(ack("rectotag"))},
	}}
	_, err, _ := play(t, tr, Options{}, nil)
	require.ErrorContains(t, err, "the user agent's address is unknown: set Options.Peer")

	// Side A's address in A's messages becomes this run's.
	liveInvite := strings.NewReplacer("10.0.0.1:5060", "192.0.2.10:5060", "10.0.0.2:5070", "192.0.2.2:5060").Replace(invite)
	liveAck := strings.NewReplacer("10.0.0.1:5060", "192.0.2.10:5060", "10.0.0.2:5070", "192.0.2.2:5060").Replace(ack("livetotag"))
	liveOK := strings.Replace(ok("livetotag"), "10.0.0.1:5060", "192.0.2.10:5060", 1)
	_, err, serr := play(t, tr, Options{Peer: liveB}, []action{{want: liveInvite}, {send: liveOK}, {want: liveAck}})
	require.NoError(t, err)
	require.NoError(t, serr)

	// B must echo A's values: a changed From tag is a mismatch.
	_, err, _ = play(t, tr, Options{Peer: liveB}, []action{{want: liveInvite}, {send: strings.Replace(liveOK, "tag=atag", "tag=btag", 1)}})
	var me *MismatchError
	require.ErrorAs(t, err, &me)
	assert.Contains(t, me.Problems[0], `From tag: the trace's "atag" is "atag" in this run, but here it is "btag"`)
}

// TestPlayBadTrace: a trace message that does not parse is reported
// before anything is sent.
func TestPlayBadTrace(t *testing.T) {
	tr := &Trace{Messages: []Message{{From: SideB, Data: []byte("nonsense")}}}
	_, err, _ := play(t, tr, Options{}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "message 0 of the trace (B->A [8 bytes]) does not parse")
}

// TestPlayContext: a canceled context ends the wait.
func TestPlayContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := siptest.NewNetwork(1)
		defer n.Close()
		a, err := n.ListenPacket("registrar", liveA)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := Play(ctx, a, registerTrace(), Options{Timeout: time.Minute})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NotNil(t, res)
		assert.True(t, errors.Is(err, context.DeadlineExceeded))
	})
}
