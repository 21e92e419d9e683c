package dialog

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

const inviteRaw = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK74bf9\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n" +
	"To: Bob <sip:bob@biloxi.example.com>\r\n" +
	"Call-ID: 3848276298220188511@atlanta.example.com\r\n" +
	"CSeq: 1 INVITE\r\n" +
	"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n" +
	"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n" +
	"Content-Length: 0\r\n\r\n"

func parseReq(t testing.TB, raw string) *message.Request {
	t.Helper()
	r, err := message.ParseRequest([]byte(raw))
	require.NoError(t, err)
	return r
}

// answer builds the UAS's response with Contact and Record-Route copied.
func answer(req *message.Request, code int, tag, contact string) *message.Response {
	resp := message.NewResponse(req, code, "", tag)
	for _, f := range req.Header.Fields() {
		if message.CanonicalName(f.Name) == "Record-Route" {
			resp.Header.Add("Record-Route", f.Value)
		}
	}
	if contact != "" {
		resp.Header.Add("Contact", contact)
	}
	return resp
}

func TestUACAndUASDialogs(t *testing.T) {
	inv := parseReq(t, inviteRaw)
	ok := answer(inv, 200, "8321234356", "<sip:bob@192.0.2.4>")

	uac, err := NewUAC(inv, ok)
	require.NoError(t, err)
	assert.Equal(t, ID{"3848276298220188511@atlanta.example.com", "9fxced76sl", "8321234356"}, uac.ID)
	assert.Equal(t, Confirmed, uac.State)
	assert.True(t, uac.UAC)
	assert.Equal(t, uint32(1), uac.LocalSeq)
	assert.False(t, uac.RemoteSeqSet)
	assert.Equal(t, "sip:bob@192.0.2.4", uac.RemoteTarget().String())
	// UAC: Record-Route reversed.
	require.Len(t, uac.RouteSet(), 2)
	assert.Equal(t, "p1.example.com", uac.RouteSet()[0].Host)
	assert.Equal(t, "p2.example.com", uac.RouteSet()[1].Host)
	assert.Equal(t, "Alice", uac.Local().DisplayName)
	assert.Equal(t, "bob", uac.Remote().URI.User)

	uas, err := NewUAS(inv, ok)
	require.NoError(t, err)
	assert.Equal(t, ID{"3848276298220188511@atlanta.example.com", "8321234356", "9fxced76sl"}, uas.ID)
	assert.False(t, uas.UAC)
	assert.Equal(t, uint32(1), uas.RemoteSeq)
	assert.True(t, uas.RemoteSeqSet)
	assert.Equal(t, "sip:alice@client.atlanta.example.com;transport=tcp", uas.RemoteTarget().String())
	// UAS: Record-Route in order.
	assert.Equal(t, "p2.example.com", uas.RouteSet()[0].Host)
	assert.Equal(t, "p1.example.com", uas.RouteSet()[1].Host)

	// A BYE from the UAC, loose routing.
	bye, err := uac.NewRequest("BYE")
	require.NoError(t, err)
	assert.Equal(t, "sip:bob@192.0.2.4", bye.URI.String())
	assert.Equal(t, []string{"<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"}, values(bye, "Route"))
	assert.Equal(t, "9fxced76sl", bye.Header.FromTag())
	assert.Equal(t, "8321234356", bye.Header.ToTag())
	cs, _ := bye.Header.CSeq()
	assert.Equal(t, message.CSeq{Seq: 2, Method: "BYE"}, cs)
	assert.Equal(t, "p1.example.com", NextHop(bye).Host)
	bye.Header.PrependVia(message.Via{Transport: "UDP", Host: "h", Params: "branch=z9hG4bKx"})
	require.NoError(t, bye.Validate())

	// The UAS receives it: matched, sequenced.
	set := NewSet()
	set.Add(uas)
	d, err := set.MatchRequest(bye)
	require.NoError(t, err)
	assert.Same(t, uas, d)
	require.NoError(t, d.ReceiveRequest(bye))
	assert.ErrorIs(t, d.ReceiveRequest(bye), ErrCSeqOrder, "a repeated CSeq is out of order")
	assert.Equal(t, uint32(2), d.RemoteSeq)

	// From the UAS side, the request goes the other way.
	info, err := uas.NewRequest("INFO")
	require.NoError(t, err)
	assert.Equal(t, "sip:alice@client.atlanta.example.com;transport=tcp", info.URI.String())
	assert.Equal(t, []string{"<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"}, values(info, "Route"))
	assert.Equal(t, "8321234356", info.Header.FromTag())
	assert.Equal(t, "\"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl", info.Header.Get("To"))
	cs, _ = info.Header.CSeq()
	assert.Less(t, cs.Seq, uint32(1<<31))
	assert.Positive(t, cs.Seq)
	n := cs.Seq
	info2, _ := uas.NewRequest("INFO")
	cs, _ = info2.Header.CSeq()
	assert.Equal(t, n+1, cs.Seq)
}

func values(r *message.Request, name string) []string {
	var out []string
	for v := range r.Header.Values(name) {
		out = append(out, v)
	}
	return out
}

func TestStrictRouting(t *testing.T) {
	inv := parseReq(t, strings.Replace(inviteRaw, "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
		"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;transport=udp;maddr=10.0.0.1>", 1))
	uac, err := NewUAC(inv, answer(inv, 200, "t", "<sip:bob@192.0.2.4>"))
	require.NoError(t, err)
	bye, err := uac.NewRequest("BYE")
	require.NoError(t, err)
	// RFC 3261 §12.2.1.1: strict first hop becomes the Request-URI without
	// the parameters not allowed there; the remote target goes last.
	assert.Equal(t, "sip:p1.example.com", bye.URI.String())
	assert.Equal(t, []string{"<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4>"}, values(bye, "Route"))
	assert.Equal(t, "p2.example.com", NextHop(bye).Host)
}

func TestNoRouteSet(t *testing.T) {
	inv := parseReq(t, strings.Replace(inviteRaw, "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n", "", 1))
	uac, err := NewUAC(inv, answer(inv, 200, "t", "<sip:bob@192.0.2.4:5070>"))
	require.NoError(t, err)
	ack := uac.NewAck(1)
	assert.Equal(t, "ACK", ack.Method)
	assert.Equal(t, "sip:bob@192.0.2.4:5070", ack.URI.String())
	assert.False(t, ack.Header.Has("Route"))
	cs, _ := ack.Header.CSeq()
	assert.Equal(t, message.CSeq{Seq: 1, Method: "ACK"}, cs)
	assert.Equal(t, uint32(1), uac.LocalSeq, "ACK takes no new CSeq")
	assert.Equal(t, "192.0.2.4", NextHop(ack).Host)
	_, err = uac.NewRequest("ACK")
	assert.Error(t, err)
}

func TestEarlyDialog(t *testing.T) {
	inv := parseReq(t, inviteRaw)
	ringing := answer(inv, 180, "early1", "")
	uac, err := NewUAC(inv, ringing)
	require.NoError(t, err)
	assert.Equal(t, Early, uac.State)
	assert.Equal(t, inv.URI, uac.RemoteTarget(), "no Contact yet: the Request-URI")

	// The 2xx confirms it, with its own route set and target.
	ok := answer(inv, 200, "early1", "<sip:bob@192.0.2.99>")
	ok.Header.Del("Record-Route")
	ok.Header.Add("Record-Route", "<sip:only.example.com;lr>")
	require.NoError(t, uac.Confirm(ok))
	assert.Equal(t, Confirmed, uac.State)
	assert.Equal(t, "sip:bob@192.0.2.99", uac.RemoteTarget().String())
	require.Len(t, uac.RouteSet(), 1)
	assert.Equal(t, "only.example.com", uac.RouteSet()[0].Host)

	uas, err := NewUAS(inv, answer(inv, 183, "e2", ""))
	require.NoError(t, err)
	assert.Equal(t, Early, uas.State)
	require.NoError(t, uas.Confirm(answer(inv, 200, "e2", "")))
	assert.Equal(t, Confirmed, uas.State)

	uas.Terminate()
	assert.ErrorIs(t, uas.Confirm(ok), ErrTerminated)
	_, err = uas.NewRequest("BYE")
	assert.ErrorIs(t, err, ErrTerminated)
	assert.ErrorIs(t, uas.ReceiveRequest(inv), ErrTerminated)
}

func TestCannotCreate(t *testing.T) {
	inv := parseReq(t, inviteRaw)
	_, err := NewUAC(inv, message.NewResponse(inv, 100, "", ""))
	assert.ErrorIs(t, err, ErrCannotCreate)
	_, err = NewUAC(inv, answer(inv, 486, "t", ""))
	assert.ErrorIs(t, err, ErrCannotCreate)
	noTag := answer(inv, 180, "t", "")
	noTag.Header.Set("To", "<sip:bob@biloxi.example.com>")
	_, err = NewUAC(inv, noTag)
	assert.ErrorIs(t, err, ErrCannotCreate)
	_, err = NewUAS(inv, noTag)
	assert.ErrorIs(t, err, ErrCannotCreate)
	_, err = NewUAC(inv, answer(inv, 200, "t", ""))
	assert.ErrorIs(t, err, ErrCannotCreate, "a 2xx needs a Contact")
	noContact := parseReq(t, strings.Replace(inviteRaw, "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n", "", 1))
	_, err = NewUAS(noContact, answer(noContact, 200, "t", ""))
	assert.ErrorIs(t, err, ErrCannotCreate)
	_, err = NewUAS(inv, answer(inv, 300, "t", ""))
	assert.ErrorIs(t, err, ErrCannotCreate)
}

func TestTargetRefresh(t *testing.T) {
	inv := parseReq(t, inviteRaw)
	uas, err := NewUAS(inv, answer(inv, 200, "t", "<sip:bob@b>"))
	require.NoError(t, err)
	reinv := parseReq(t, strings.Replace(strings.Replace(inviteRaw, "CSeq: 1 INVITE", "CSeq: 2 INVITE", 1),
		"<sip:alice@client.atlanta.example.com;transport=tcp>", "<sip:alice@new.example.com>", 1))
	require.NoError(t, uas.ReceiveRequest(reinv))
	assert.Equal(t, "sip:alice@new.example.com", uas.RemoteTarget().String())
	// A non-refresh request does not move the target.
	info := parseReq(t, strings.Replace(strings.Replace(strings.Replace(reinv.String(), "INVITE", "INFO", -1), "<sip:alice@new.example.com>", "<sip:other@x>", 1), "CSeq: 2", "CSeq: 3", 1))
	require.NoError(t, uas.ReceiveRequest(info))
	assert.Equal(t, "sip:alice@new.example.com", uas.RemoteTarget().String())
	// ACK and CANCEL are not sequenced.
	ack := parseReq(t, strings.Replace(inviteRaw, "INVITE", "ACK", -1))
	require.NoError(t, uas.ReceiveRequest(ack))

	uac, err := NewUAC(inv, answer(inv, 200, "t", "<sip:bob@b>"))
	require.NoError(t, err)
	uac.RefreshTarget(answer(inv, 200, "t", "<sip:bob@moved>"))
	assert.Equal(t, "sip:bob@moved", uac.RemoteTarget().String())
}

func TestSetMatching(t *testing.T) {
	inv := parseReq(t, inviteRaw)
	set := NewSet()
	d1, _ := NewUAC(inv, answer(inv, 200, "fork1", "<sip:b1@h>"))
	d2, _ := NewUAC(inv, answer(inv, 200, "fork2", "<sip:b2@h>"))
	set.Add(d1)
	set.Add(d2)
	assert.Equal(t, 2, set.Len(), "forked 2xx: one dialog each")
	assert.Same(t, d2, set.MatchResponse(answer(inv, 200, "fork2", "")))
	assert.Nil(t, set.MatchResponse(answer(inv, 200, "fork3", "")))
	assert.Same(t, d1, set.Get(d1.ID))

	// Out of dialog.
	d, err := set.MatchRequest(inv)
	assert.Nil(t, d)
	assert.NoError(t, err)
	// To tag for an unknown dialog: 481.
	bye := parseReq(t, strings.Replace(strings.Replace(inviteRaw, "INVITE", "BYE", -1), "To: Bob <sip:bob@biloxi.example.com>", "To: <sip:bob@b>;tag=zzz", 1))
	_, err = set.MatchRequest(bye)
	assert.ErrorIs(t, err, ErrNoDialog)
	set.Remove(d1.ID)
	assert.Nil(t, set.Get(d1.ID))
	assert.Equal(t, "Early", Early.String())
	assert.Equal(t, "Unknown", State(0).String())
	assert.Contains(t, d1.ID.String(), "fork1")
}

func TestAckWait(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inv := parseReq(t, inviteRaw)
	ok := answer(inv, 200, "t", "<sip:b@h>")
	a := NewAckWait(ok, Timers{}, t0)
	assert.Same(t, ok, a.Response())
	var sends []time.Duration
	for !a.Done() {
		now := a.Deadline()
		resend, timedOut := a.Tick(now)
		if timedOut {
			sends = append(sends, -now.Sub(t0))
			break
		}
		require.NotNil(t, resend)
		sends = append(sends, now.Sub(t0))
	}
	// T1, 2T1, 4T1, T2, T2 … then BYE at 64*T1.
	want := []time.Duration{500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500}
	for i := range want {
		want[i] *= time.Millisecond
	}
	want = append(want, -32*time.Second)
	assert.Equal(t, want, sends)
	assert.True(t, a.Deadline().IsZero())
	r, to := a.Tick(t0.Add(time.Hour))
	assert.Nil(t, r)
	assert.False(t, to)

	a = NewAckWait(ok, Timers{}, t0)
	r, _ = a.Tick(t0.Add(100 * time.Millisecond))
	assert.Nil(t, r, "not due yet")
	wrong := parseReq(t, strings.Replace(strings.Replace(inviteRaw, "INVITE", "ACK", -1), "CSeq: 1", "CSeq: 9", 1))
	assert.False(t, a.Ack(wrong))
	ack := parseReq(t, strings.Replace(inviteRaw, "INVITE", "ACK", -1))
	assert.True(t, a.Ack(ack))
	assert.False(t, a.Ack(ack), "already done")
	assert.True(t, a.Done())
}

// TestDialogMemory checks that an idle dialog costs under 1 KiB and does
// not keep the message it came from alive.
func TestDialogMemory(t *testing.T) {
	const n = 2000
	ds := make([]*Dialog, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range ds {
		inv := parseReq(t, strings.Replace(inviteRaw, "Content-Length: 0\r\n\r\n", "Content-Length: 600\r\n\r\n"+strings.Repeat("v", 600), 1))
		d, err := NewUAS(inv, answer(inv, 200, "t", "<sip:b@h>"))
		require.NoError(t, err)
		ds[i] = d
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (after.HeapAlloc - before.HeapAlloc) / n
	t.Logf("heap per idle dialog: %d bytes", per)
	assert.Less(t, per, uint64(1024))
	runtime.KeepAlive(ds)
}

func TestAck2xx(t *testing.T) {
	inv := parseReq(t, inviteRaw)
	set := NewSet()
	via := func(b string) message.Via {
		return message.Via{Transport: "UDP", Host: "pc33.atlanta.example.com", Params: message.Params("branch=" + b)}
	}
	// An early dialog from a 180, then the 2xx confirms it.
	early, err := NewUAC(inv, answer(inv, 180, "b1", ""))
	require.NoError(t, err)
	set.Add(early)
	ok1 := answer(inv, 200, "b1", "<sip:bob@192.0.2.4>")
	d, ack, created, err := set.Ack2xx(inv, ok1, via("z9hG4bKack1"))
	require.NoError(t, err)
	assert.False(t, created)
	assert.Same(t, early, d)
	assert.Equal(t, Confirmed, d.State)
	v, _ := ack.Header.TopVia()
	assert.Equal(t, "z9hG4bKack1", v.Branch())
	cs, _ := ack.Header.CSeq()
	assert.Equal(t, message.CSeq{Seq: 1, Method: "ACK"}, cs)
	assert.Equal(t, "sip:bob@192.0.2.4", ack.URI.String())

	// The retransmitted 2xx: the same ACK, same branch.
	_, again, _, err := set.Ack2xx(inv, ok1, via("z9hG4bKother"))
	require.NoError(t, err)
	assert.Equal(t, ack.String(), again.String())

	// A forked 2xx: a new dialog, its own ACK.
	d2, ack2, created, err := set.Ack2xx(inv, answer(inv, 200, "b2", "<sip:bob@192.0.2.5>"), via("z9hG4bKack2"))
	require.NoError(t, err)
	assert.True(t, created)
	assert.NotSame(t, d, d2)
	assert.Equal(t, "sip:bob@192.0.2.5", ack2.URI.String())
	assert.Equal(t, 2, set.Len())

	// A re-INVITE in the first dialog: a new ACK, and the new target.
	reinv, err := d.NewRequest("INVITE")
	require.NoError(t, err)
	reinv.Header.PrependVia(via("z9hG4bKre"))
	reok := answer(reinv, 200, "b1", "<sip:bob@moved.example.com>")
	reok.Header.Set("From", reinv.Header.Get("From"))
	_, ack3, created, err := set.Ack2xx(reinv, reok, via("z9hG4bKack3"))
	require.NoError(t, err)
	assert.False(t, created)
	cs, _ = ack3.Header.CSeq()
	assert.Equal(t, uint32(2), cs.Seq)
	v, _ = ack3.Header.TopVia()
	assert.Equal(t, "z9hG4bKack3", v.Branch())
	assert.Equal(t, "sip:bob@moved.example.com", ack3.URI.String())

	_, _, _, err = set.Ack2xx(inv, answer(inv, 486, "b1", ""), via("x"))
	assert.Error(t, err)
	_, _, _, err = set.Ack2xx(inv, answer(inv, 200, "b9", ""), via("x"))
	assert.ErrorIs(t, err, ErrCannotCreate, "a 2xx without Contact")
}

func BenchmarkNewUASDialog(b *testing.B) {
	inv := parseReq(b, inviteRaw)
	ok := answer(inv, 200, "t", "<sip:bob@192.0.2.4>")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewUAS(inv, ok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInDialogRequest(b *testing.B) {
	inv := parseReq(b, inviteRaw)
	d, _ := NewUAC(inv, answer(inv, 200, "t", "<sip:bob@192.0.2.4>"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.NewRequest("INFO"); err != nil {
			b.Fatal(err)
		}
	}
}
