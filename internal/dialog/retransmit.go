package dialog

import (
	"time"

	"github.com/sipua/sip/message"
)

// Timers holds the timer values the dialog machines use; zero fields take
// the RFC 3261 defaults (T1 500 ms, T2 4 s).
type Timers struct {
	T1, T2 time.Duration
}

func (t Timers) norm() Timers {
	if t.T1 <= 0 {
		t.T1 = 500 * time.Millisecond
	}
	if t.T2 <= 0 {
		t.T2 = 4 * time.Second
	}
	return t
}

// AckWait is the UAS core's 2xx retransmission for one INVITE (RFC 3261
// §13.3.1.4): the 2xx is sent again at T1, 2*T1 … up to T2 apart until the
// ACK arrives; after 64*T1 without an ACK the dialog must be ended with a
// BYE. It is a pure machine: call Tick at Deadline.
type AckWait struct {
	resp     *message.Response
	cseq     uint32
	t        Timers
	next     time.Time
	interval time.Duration
	giveUp   time.Time
	done     bool
}

// NewAckWait starts waiting for the ACK of 2xx resp, which was just sent
// at now.
func NewAckWait(resp *message.Response, t Timers, now time.Time) *AckWait {
	t = t.norm()
	c, _ := resp.Header.CSeq()
	return &AckWait{resp: resp, cseq: c.Seq, t: t, next: now.Add(t.T1), interval: t.T1, giveUp: now.Add(64 * t.T1)}
}

// Response returns the 2xx being retransmitted.
func (a *AckWait) Response() *message.Response { return a.resp }

// Done reports whether the machine has stopped (ACK received or given
// up).
func (a *AckWait) Done() bool { return a.done }

// Deadline returns when Tick must next be called; zero when done.
func (a *AckWait) Deadline() time.Time {
	if a.done {
		return time.Time{}
	}
	if a.giveUp.Before(a.next) {
		return a.giveUp
	}
	return a.next
}

// Ack feeds an ACK; it stops the machine and returns true when the ACK's
// CSeq number is the INVITE's.
func (a *AckWait) Ack(ack *message.Request) bool {
	c, err := ack.Header.CSeq()
	if err != nil || c.Seq != a.cseq || a.done {
		return false
	}
	a.done = true
	return true
}

// Tick returns the response to send again (nil for none), and timedOut
// when 64*T1 passed without an ACK: the caller then sends BYE.
func (a *AckWait) Tick(now time.Time) (resend *message.Response, timedOut bool) {
	if a.done {
		return nil, false
	}
	if !now.Before(a.giveUp) {
		a.done = true
		return nil, true
	}
	if !now.Before(a.next) {
		a.interval = min(2*a.interval, a.t.T2)
		a.next = now.Add(a.interval)
		return a.resp, false
	}
	return nil, false
}
