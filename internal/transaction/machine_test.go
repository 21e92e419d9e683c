package transaction

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/message"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newReq(t testing.TB, method, branch string) *message.Request {
	t.Helper()
	raw := method + " sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=" + branch + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"Route: <sip:proxy.example.com;lr>\r\n" +
		"From: <sip:alice@example.com>;tag=ft\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"Call-ID: call-1\r\n" +
		"CSeq: 7 " + method + "\r\n" +
		"Content-Length: 0\r\n\r\n"
	r, err := message.ParseRequest([]byte(raw))
	require.NoError(t, err)
	return r
}

func respTo(req *message.Request, code int) *message.Response {
	return message.NewResponse(req, code, "", "tt")
}

// describe renders actions compactly: "Send INVITE", "PassUp 180",
// "Fail timeout", "Terminate".
func describe(acts []Action) string {
	var parts []string
	for _, a := range acts {
		switch a.Kind {
		case Send, PassUp:
			switch m := a.Msg.(type) {
			case *message.Request:
				parts = append(parts, a.Kind.String()+" "+m.Method)
			case *message.Response:
				parts = append(parts, fmt.Sprintf("%s %d", a.Kind, m.StatusCode))
			}
		case Fail:
			switch {
			case errors.Is(a.Err, ErrTimeout):
				parts = append(parts, "Fail timeout")
			case errors.Is(a.Err, ErrTransport):
				parts = append(parts, "Fail transport")
			default:
				parts = append(parts, "Fail ?")
			}
		default:
			parts = append(parts, a.Kind.String())
		}
	}
	return strings.Join(parts, ", ")
}

// tickUntil runs the machine's timers until it terminates or until limit,
// recording each firing as "+offset: actions".
func tickUntil(m interface {
	Deadline() time.Time
	tick(time.Time, []Action) []Action
}, limit time.Duration) []string {
	var log []string
	for {
		d := m.Deadline()
		if d.IsZero() || d.Sub(t0) > limit {
			return log
		}
		acts := m.tick(d, nil)
		log = append(log, fmt.Sprintf("+%v: %s", d.Sub(t0), describe(acts)))
	}
}

func TestInviteClientTimeoutUnreliable(t *testing.T) {
	req := newReq(t, "INVITE", "z9hG4bKa")
	c, acts := NewClient(req, false, Config{}, t0, nil)
	assert.Equal(t, "Send INVITE", describe(acts))
	assert.Equal(t, Calling, c.State())
	// Timer A doubles without a cap: 0.5, 1, 2, 4, 8, 16 s; Timer B at 32 s.
	assert.Equal(t, []string{
		"+500ms: Send INVITE",
		"+1.5s: Send INVITE",
		"+3.5s: Send INVITE",
		"+7.5s: Send INVITE",
		"+15.5s: Send INVITE",
		"+31.5s: Send INVITE",
		"+32s: Fail timeout, Terminate",
	}, tickUntil(c, time.Hour))
	assert.Equal(t, Terminated, c.State())
	assert.Empty(t, c.Tick(t0.Add(time.Hour), nil))
}

func TestInviteClientTimeoutReliable(t *testing.T) {
	c, _ := NewClient(newReq(t, "INVITE", "z9hG4bKa"), true, Config{}, t0, nil)
	assert.Equal(t, []string{"+32s: Fail timeout, Terminate"}, tickUntil(c, time.Hour))
}

func TestInviteClientFailureResponse(t *testing.T) {
	for _, reliable := range []bool{false, true} {
		req := newReq(t, "INVITE", "z9hG4bKa")
		c, _ := NewClient(req, reliable, Config{}, t0, nil)
		acts := c.Receive(respTo(req, 100), t0.Add(100*time.Millisecond), nil)
		assert.Equal(t, "PassUp 100", describe(acts))
		assert.Equal(t, Proceeding, c.State())
		acts = c.Receive(respTo(req, 180), t0.Add(200*time.Millisecond), nil)
		assert.Equal(t, "PassUp 180", describe(acts))
		// No retransmission and no Timer B in Proceeding.
		fail := respTo(req, 486)
		acts = c.Receive(fail, t0.Add(time.Second), nil)
		if reliable {
			assert.Equal(t, "Send ACK, PassUp 486, Terminate", describe(acts))
			continue
		}
		assert.Equal(t, "Send ACK, PassUp 486", describe(acts))
		assert.Equal(t, Completed, c.State())
		ack := acts[0].Msg.(*message.Request)
		assert.Equal(t, "ACK sip:bob@example.com SIP/2.0", strings.SplitN(ack.String(), "\r\n", 2)[0])
		assert.Equal(t, "tt", ack.Header.ToTag())
		assert.Equal(t, "ft", ack.Header.FromTag())
		cs, _ := ack.Header.CSeq()
		assert.Equal(t, message.CSeq{Seq: 7, Method: "ACK"}, cs)
		v, _ := ack.Header.TopVia()
		assert.Equal(t, "z9hG4bKa", v.Branch())
		assert.Equal(t, "<sip:proxy.example.com;lr>", ack.Header.Get("Route"))
		// A retransmitted failure is answered with the same ACK, not passed up.
		acts = c.Receive(fail, t0.Add(2*time.Second), nil)
		assert.Equal(t, "Send ACK", describe(acts))
		assert.Same(t, ack, acts[0].Msg)
		assert.Empty(t, c.Receive(respTo(req, 200), t0.Add(2*time.Second), nil))
		// Timer D: 32 s.
		assert.Equal(t, []string{"+33s: Terminate"}, tickUntil(c, time.Hour))
	}
}

func TestInviteClientAccepted(t *testing.T) {
	req := newReq(t, "INVITE", "z9hG4bKa")
	c, _ := NewClient(req, false, Config{}, t0, nil)
	c.Tick(t0.Add(500*time.Millisecond), nil)
	acts := c.Receive(respTo(req, 200), t0.Add(600*time.Millisecond), nil)
	assert.Equal(t, "PassUp 200", describe(acts))
	assert.Equal(t, Accepted, c.State())
	// RFC 6026: further 2xx (retransmitted or forked) go up; others not.
	assert.Equal(t, "PassUp 200", describe(c.Receive(message.NewResponse(req, 200, "", "fork2"), t0.Add(time.Second), nil)))
	assert.Empty(t, c.Receive(respTo(req, 180), t0.Add(time.Second), nil))
	assert.Empty(t, c.Receive(respTo(req, 500), t0.Add(time.Second), nil))
	// Timer M: 64*T1 after the first 2xx.
	assert.Equal(t, []string{"+32.6s: Terminate"}, tickUntil(c, time.Hour))
}

func TestNonInviteClientTimers(t *testing.T) {
	req := newReq(t, "OPTIONS", "z9hG4bKb")
	c, acts := NewClient(req, false, Config{}, t0, nil)
	assert.Equal(t, "Send OPTIONS", describe(acts))
	assert.Equal(t, Trying, c.State())
	// Timer E: 0.5, 1, 2, 4, 4, 4 … s; Timer F at 32 s.
	assert.Equal(t, []string{
		"+500ms: Send OPTIONS",
		"+1.5s: Send OPTIONS",
		"+3.5s: Send OPTIONS",
		"+7.5s: Send OPTIONS",
		"+11.5s: Send OPTIONS",
		"+15.5s: Send OPTIONS",
		"+19.5s: Send OPTIONS",
		"+23.5s: Send OPTIONS",
		"+27.5s: Send OPTIONS",
		"+31.5s: Send OPTIONS",
		"+32s: Fail timeout, Terminate",
	}, tickUntil(c, time.Hour))
}

func TestNonInviteClientProceedingUsesT2(t *testing.T) {
	req := newReq(t, "REGISTER", "z9hG4bKb")
	c, _ := NewClient(req, false, Config{}, t0, nil)
	assert.Equal(t, "PassUp 100", describe(c.Receive(respTo(req, 100), t0.Add(100*time.Millisecond), nil)))
	assert.Equal(t, Proceeding, c.State())
	// The first E still fires at 0.5 s, then every T2.
	log := tickUntil(c, 13*time.Second)
	assert.Equal(t, []string{"+500ms: Send REGISTER", "+4.5s: Send REGISTER", "+8.5s: Send REGISTER", "+12.5s: Send REGISTER"}, log)
	assert.Equal(t, "PassUp 200", describe(c.Receive(respTo(req, 200), t0.Add(13*time.Second), nil)))
	assert.Equal(t, Completed, c.State())
	assert.Empty(t, c.Receive(respTo(req, 200), t0.Add(14*time.Second), nil), "retransmitted final absorbed")
	// Timer K = T4 after the final response.
	assert.Equal(t, []string{"+18s: Terminate"}, tickUntil(c, time.Hour))
}

func TestNonInviteClientReliable(t *testing.T) {
	req := newReq(t, "MESSAGE", "z9hG4bKb")
	c, _ := NewClient(req, true, Config{T1: 100 * time.Millisecond}, t0, nil)
	assert.Equal(t, t0.Add(6400*time.Millisecond), c.Deadline(), "only Timer F, from a custom T1")
	assert.Equal(t, "PassUp 404, Terminate", describe(c.Receive(respTo(req, 404), t0.Add(time.Second), nil)))
}

func TestClientTransportError(t *testing.T) {
	req := newReq(t, "INVITE", "z9hG4bKa")
	c, _ := NewClient(req, false, Config{}, t0, nil)
	acts := c.TransportError(errors.New("connection refused"), nil)
	assert.Equal(t, "Fail transport, Terminate", describe(acts))
	assert.ErrorContains(t, acts[0].Err, "connection refused")
	assert.Empty(t, c.TransportError(errors.New("again"), nil))

	c, _ = NewClient(req, false, Config{}, t0, nil)
	c.Receive(respTo(req, 200), t0, nil)
	assert.Equal(t, "Terminate", describe(c.TransportError(errors.New("late"), nil)))
}

func TestInviteServerFailureUnreliable(t *testing.T) {
	req := newReq(t, "INVITE", "z9hG4bKs")
	s, acts := NewServer(req, false, Config{}, t0, nil)
	assert.Equal(t, "PassUp INVITE", describe(acts))
	assert.Equal(t, Proceeding, s.State())
	// The TU stays silent: 100 Trying after 200 ms.
	acts = s.Tick(t0.Add(200*time.Millisecond), nil)
	assert.Equal(t, "Send 100", describe(acts))
	trying := acts[0].Msg.(*message.Response)
	assert.Equal(t, "", trying.Header.ToTag(), "100 Trying carries no To tag")
	// A retransmitted INVITE gets the last provisional response again.
	assert.Equal(t, "Send 100", describe(s.Receive(req, t0.Add(300*time.Millisecond), nil)))
	acts, err := s.Respond(respTo(req, 180), t0.Add(400*time.Millisecond), nil)
	require.NoError(t, err)
	assert.Equal(t, "Send 180", describe(acts))
	assert.Equal(t, "Send 180", describe(s.Receive(req, t0.Add(450*time.Millisecond), nil)))

	acts, err = s.Respond(respTo(req, 486), t0.Add(time.Second), nil)
	require.NoError(t, err)
	assert.Equal(t, "Send 486", describe(acts))
	assert.Equal(t, Completed, s.State())
	_, err = s.Respond(respTo(req, 500), t0.Add(time.Second), nil)
	assert.ErrorIs(t, err, ErrTerminated)
	assert.Equal(t, "Send 486", describe(s.Receive(req, t0.Add(1100*time.Millisecond), nil)))
	// Timer G: 0.5, 1, 2, 4, 4 … s; Timer H at 32 s.
	assert.Equal(t, []string{
		"+1.5s: Send 486",
		"+2.5s: Send 486",
		"+4.5s: Send 486",
		"+8.5s: Send 486",
		"+12.5s: Send 486",
		"+16.5s: Send 486",
		"+20.5s: Send 486",
		"+24.5s: Send 486",
		"+28.5s: Send 486",
		"+32.5s: Send 486",
		"+33s: Fail timeout, Terminate",
	}, tickUntil(s, time.Hour))
}

func TestInviteServerAckConfirms(t *testing.T) {
	req := newReq(t, "INVITE", "z9hG4bKs")
	for _, reliable := range []bool{false, true} {
		s, _ := NewServer(req, reliable, Config{}, t0, nil)
		_, err := s.Respond(respTo(req, 603), t0, nil)
		require.NoError(t, err)
		ack := newReq(t, "ACK", "z9hG4bKs")
		acts := s.Receive(ack, t0.Add(time.Second), nil)
		if reliable {
			assert.Equal(t, "Terminate", describe(acts))
			continue
		}
		assert.Empty(t, acts)
		assert.Equal(t, Confirmed, s.State())
		assert.Empty(t, s.Receive(ack, t0.Add(2*time.Second), nil), "ACKs absorbed")
		assert.Empty(t, s.Receive(req, t0.Add(2*time.Second), nil), "INVITE absorbed")
		// Timer I = T4.
		assert.Equal(t, []string{"+6s: Terminate"}, tickUntil(s, time.Hour))
	}
}

func TestInviteServerAccepted(t *testing.T) {
	req := newReq(t, "INVITE", "z9hG4bKs")
	s, _ := NewServer(req, false, Config{}, t0, nil)
	acts, err := s.Respond(respTo(req, 180), t0.Add(50*time.Millisecond), nil)
	require.NoError(t, err)
	assert.Equal(t, "Send 180", describe(acts))
	ok := respTo(req, 200)
	acts, err = s.Respond(ok, t0.Add(time.Second), nil)
	require.NoError(t, err)
	assert.Equal(t, "Send 200", describe(acts))
	assert.Equal(t, Accepted, s.State())
	assert.Nil(t, s.LastResponse(), "Accepted keeps no 2xx: the TU retransmits its own")
	// The TU's 2xx retransmissions pass through; others are refused.
	acts, err = s.Respond(ok, t0.Add(1500*time.Millisecond), nil)
	require.NoError(t, err)
	assert.Equal(t, "Send 200", describe(acts))
	_, err = s.Respond(respTo(req, 500), t0.Add(1500*time.Millisecond), nil)
	assert.ErrorIs(t, err, ErrTerminated)
	assert.Empty(t, s.Receive(req, t0.Add(2*time.Second), nil), "retransmitted INVITE absorbed")
	assert.Equal(t, "PassUp ACK", describe(s.Receive(newReq(t, "ACK", "z9hG4bKs"), t0.Add(2*time.Second), nil)))
	// Timer L = 64*T1 after the 2xx.
	assert.Equal(t, []string{"+33s: Terminate"}, tickUntil(s, time.Hour))
}

func TestInviteServerNoTryingWhenTUAnswers(t *testing.T) {
	req := newReq(t, "INVITE", "z9hG4bKs")
	s, _ := NewServer(req, true, Config{}, t0, nil)
	_, err := s.Respond(respTo(req, 180), t0.Add(100*time.Millisecond), nil)
	require.NoError(t, err)
	assert.True(t, s.Deadline().IsZero(), "no 100 Trying timer, no timers at all while proceeding")
	assert.Empty(t, s.Receive(newReq(t, "ACK", "z9hG4bKs"), t0, nil), "ACK in Proceeding ignored")
}

func TestNonInviteServer(t *testing.T) {
	req := newReq(t, "BYE", "z9hG4bKn")
	s, acts := NewServer(req, false, Config{}, t0, nil)
	assert.Equal(t, "PassUp BYE", describe(acts))
	assert.Equal(t, Trying, s.State())
	assert.True(t, s.Deadline().IsZero())
	assert.Empty(t, s.Receive(req, t0, nil), "retransmission absorbed in Trying")
	acts, err := s.Respond(respTo(req, 100), t0, nil)
	require.NoError(t, err)
	assert.Equal(t, "Send 100", describe(acts))
	assert.Equal(t, Proceeding, s.State())
	assert.Equal(t, "Send 100", describe(s.Receive(req, t0, nil)))
	acts, err = s.Respond(respTo(req, 200), t0.Add(time.Second), nil)
	require.NoError(t, err)
	assert.Equal(t, "Send 200", describe(acts))
	assert.Equal(t, Completed, s.State())
	assert.Equal(t, "Send 200", describe(s.Receive(req, t0.Add(2*time.Second), nil)))
	assert.Empty(t, s.Receive(newReq(t, "ACK", "z9hG4bKn"), t0, nil))
	_, err = s.Respond(respTo(req, 500), t0.Add(time.Second), nil)
	assert.ErrorIs(t, err, ErrTerminated)
	// Timer J = 64*T1.
	assert.Equal(t, []string{"+33s: Terminate"}, tickUntil(s, time.Hour))

	s, _ = NewServer(req, true, Config{}, t0, nil)
	acts, err = s.Respond(respTo(req, 200), t0, nil)
	require.NoError(t, err)
	assert.Equal(t, "Send 200, Terminate", describe(acts), "reliable: J = 0")
}

func TestServerTransportError(t *testing.T) {
	req := newReq(t, "INVITE", "z9hG4bKs")
	s, _ := NewServer(req, false, Config{}, t0, nil)
	assert.Equal(t, "Fail transport, Terminate", describe(s.TransportError(errors.New("x"), nil)))
	assert.Empty(t, s.TransportError(errors.New("x"), nil))
	assert.Empty(t, s.Tick(t0.Add(time.Hour), nil))
}

func TestCancel(t *testing.T) {
	req := newReq(t, "INVITE", "z9hG4bKa")
	c := NewCancel(req)
	assert.Equal(t, "CANCEL", c.Method)
	assert.Equal(t, req.URI, c.URI)
	cs, _ := c.Header.CSeq()
	assert.Equal(t, message.CSeq{Seq: 7, Method: "CANCEL"}, cs)
	v, _ := c.Header.TopVia()
	assert.Equal(t, "z9hG4bKa", v.Branch())
	assert.Equal(t, req.Header.Get("To"), c.Header.Get("To"))
	assert.Equal(t, "<sip:proxy.example.com;lr>", c.Header.Get("Route"))
	require.NoError(t, c.Validate())
}

func TestStrings(t *testing.T) {
	for s := Calling; s <= Terminated; s++ {
		assert.NotEqual(t, "Unknown", s.String())
	}
	assert.Equal(t, "Unknown", State(0).String())
	for k := Send; k <= Terminate; k++ {
		assert.NotEqual(t, "Unknown", k.String())
	}
	assert.Equal(t, "Unknown", ActionKind(0).String())
}
