package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sipua/sip/message"
)

// Server is one server an Upstream may connect to.
type Server struct {
	// Addr is a ws:// or wss:// URL ("wss://sip.example.com/ws"), or a
	// SIP or SIPS URI resolved with Resolve ("sip:proxy.example.com;
	// transport=tcp", "sips:example.com", "sip:192.0.2.1:5060").
	Addr string
	// Priority orders servers as in SRV: lower values are tried first.
	Priority int
	// Weight spreads the choice among servers of equal priority, as SRV
	// weights do; 0 weighs least.
	Weight int
}

// Backoff configures the delays between reconnection attempts: the n-th
// consecutive failed round of attempts waits Min·2^(n-1), at most Max,
// minus a random jitter. After a connection drops, the first new attempt
// waits Min.
type Backoff struct {
	// Min is the first delay. Default 1s.
	Min time.Duration
	// Max caps the delay. Default 60s.
	Max time.Duration
	// MaxAttempts is the number of consecutive failed rounds (each trying
	// every server once) after which the Upstream gives up with
	// ErrGaveUp. 0: never give up.
	MaxAttempts int
	// Jitter is the largest fraction of a delay that is taken off at
	// random, so that many clients do not reconnect in step. Default 0.5
	// (a delay d becomes a value in (d/2, d]); negative: no jitter.
	Jitter float64
	// Rand returns a random number in [0, 1) for the jitter. Nil:
	// math/rand/v2. Set it for reproducible tests and simulations.
	Rand func() float64
}

func (b Backoff) norm() Backoff {
	b.Min = durDefault(b.Min, time.Second)
	b.Max = durDefault(b.Max, time.Minute)
	if b.Max < b.Min {
		b.Max = b.Min
	}
	if b.Jitter == 0 {
		b.Jitter = 0.5
	} else if b.Jitter < 0 {
		b.Jitter = 0
	}
	b.Jitter = min(b.Jitter, 1)
	if b.Rand == nil {
		b.Rand = rand.Float64
	}
	return b
}

// Delay returns the delay before the next round after failures
// consecutive failed rounds (0 after a connection dropped), with jitter.
func (b Backoff) Delay(failures int) time.Duration {
	b = b.norm()
	d := b.Min
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d - time.Duration(float64(d)*b.Jitter*b.Rand())
}

// State is the state of an Upstream.
type State int

// Upstream states.
const (
	// Connecting: an attempt to connect to a server is under way.
	Connecting State = iota + 1
	// Connected: a connection to a server is up.
	Connected
	// Disconnected: no connection; StateEvent.RetryIn says whether and
	// when the next attempt comes.
	Disconnected
)

// String returns "connecting", "connected" or "disconnected".
func (s State) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// StateEvent reports a change of an Upstream's state.
type StateEvent struct {
	// State is the new state.
	State State
	// Server is the Addr of the server concerned.
	Server string
	// Flow is the connection when Connected, and the one lost when
	// Disconnected after a drop.
	Flow Flow
	// Err says why the Upstream is Disconnected: the dropped
	// connection's error (io.EOF, ErrDeadPeer …), the last failed
	// attempt's error, ErrGaveUp (wrapping that error) or ErrClosed.
	Err error
	// Attempt numbers the rounds of attempts since the last connection,
	// from 1; set when Connecting and Connected.
	Attempt int
	// RetryIn is the delay before the next attempt when Disconnected;
	// 0 when no attempt follows (closed, or gave up).
	RetryIn time.Duration
}

// UpstreamConfig configures an Upstream.
type UpstreamConfig struct {
	// Servers are the servers to connect to, tried by Priority and
	// Weight. At least one is required.
	Servers []Server
	// Backoff sets the delays between attempts.
	Backoff Backoff
	// OnState is called on every state change, in order, from the
	// Upstream's goroutine with no lock held. Nil: not reported.
	OnState func(StateEvent)
}

// Upstream keeps one connection to a configured server up (for a UA, its
// outbound proxy or WebSocket server): it connects, watches the
// connection (keepalives, see Config.Keepalive), and when it drops or
// cannot be made, fails over to the next server and retries with
// exponential back-off. Requests sent with SendRequest use the current
// connection.
type Upstream struct {
	t       *Transport
	cfg     UpstreamConfig
	backoff Backoff

	ctx       context.Context
	cancel    context.CancelFunc
	reconnect chan struct{}
	stopped   chan struct{}

	mu      sync.Mutex
	state   State
	flow    Flow
	lastErr error         // why the last connection or attempt failed
	gaveUp  error         // the final error once the Upstream gave up
	conns   int           // connections made so far
	changed chan struct{} // closed and replaced on every state change
}

// errReconnect is the reason given when Reconnect drops a connection.
var errReconnect = errors.New("transport: reconnect requested")

// Connect starts an Upstream that connects to one of cfg.Servers and keeps
// a connection up until Close (of the Upstream or of the Transport). It
// returns at once; watch OnState or call WaitConnected.
func (t *Transport) Connect(cfg UpstreamConfig) (*Upstream, error) {
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("transport: Connect: no servers: %w", ErrResolve)
	}
	u := &Upstream{
		t:         t,
		cfg:       cfg,
		backoff:   cfg.Backoff,
		reconnect: make(chan struct{}, 1),
		stopped:   make(chan struct{}),
		state:     Disconnected,
		changed:   make(chan struct{}),
	}
	u.cfg.Servers = append([]Server(nil), cfg.Servers...)
	u.ctx, u.cancel = context.WithCancel(t.ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	t.wg.Go(u.run)
	return u, nil
}

// State returns the current state.
func (u *Upstream) State() State {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.state
}

// Flow returns the current connection and whether there is one.
func (u *Upstream) Flow() (Flow, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.flow, u.state == Connected
}

// WaitConnected waits until the Upstream is connected and returns the
// flow, or fails when ctx ends or the Upstream stops. When ctx ends, the
// error wraps both ctx.Err() and the error of the last failed attempt, if
// any (a *net.OpError for a refused port, a
// *tls.CertificateVerificationError …); when the Upstream gave up, it is
// ErrClosed wrapping the ErrGaveUp error; after Close, ErrClosed.
func (u *Upstream) WaitConnected(ctx context.Context) (Flow, error) {
	return u.waitConnected(ctx, -1)
}

// WaitReconnected waits for a connection made after the n-th one (see
// Connections), as WaitConnected does.
func (u *Upstream) WaitReconnected(ctx context.Context, n int) (Flow, error) {
	return u.waitConnected(ctx, n)
}

// Connections returns how many connections the Upstream has made so far.
func (u *Upstream) Connections() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

func (u *Upstream) waitConnected(ctx context.Context, after int) (Flow, error) {
	for {
		u.mu.Lock()
		st, f, ch, n, last, gaveUp := u.state, u.flow, u.changed, u.conns, u.lastErr, u.gaveUp
		u.mu.Unlock()
		if st == Connected && n > after {
			return f, nil
		}
		select {
		case <-ch:
		case <-u.stopped:
			if gaveUp != nil {
				return Flow{}, fmt.Errorf("%w: %w", ErrClosed, gaveUp)
			}
			return Flow{}, ErrClosed
		case <-ctx.Done():
			if last != nil {
				return Flow{}, fmt.Errorf("%w; last attempt: %w", ctx.Err(), last)
			}
			return Flow{}, ctx.Err()
		}
	}
}

// SendRequest sends req on the current connection (see
// Transport.SendRequest for the Via handling). It fails with
// ErrNoConnection when the Upstream is not connected.
func (u *Upstream) SendRequest(ctx context.Context, req *message.Request) (Flow, error) {
	f, ok := u.Flow()
	if !ok {
		return Flow{}, fmt.Errorf("transport: upstream not connected: %w", ErrNoConnection)
	}
	return u.t.SendRequest(ctx, req, f.Target())
}

// Reconnect drops the current connection, if any, and connects again at
// once, starting over with the first server and the shortest delay (as
// SIP.js's reconnect()). It returns at once with the number of
// connections made so far: WaitReconnected with it waits for the new one.
func (u *Upstream) Reconnect() int {
	n := u.Connections()
	select {
	case u.reconnect <- struct{}{}:
	default:
	}
	return n
}

// Close stops the Upstream and closes its connection; the last event is
// Disconnected with ErrClosed unless it had already given up. It waits for
// the Upstream's goroutine to end. Later calls return ErrClosed.
func (u *Upstream) Close() error {
	select {
	case <-u.stopped:
		return ErrClosed
	default:
	}
	u.cancel()
	<-u.stopped
	return nil
}

func (u *Upstream) setState(e StateEvent) {
	u.mu.Lock()
	u.state = e.State
	if e.State == Connected {
		u.flow = e.Flow
		u.conns++
		u.lastErr = nil
	} else {
		u.flow = Flow{}
	}
	if e.State == Disconnected && e.Err != nil && !errors.Is(e.Err, ErrClosed) {
		u.lastErr = e.Err
		if errors.Is(e.Err, ErrGaveUp) {
			u.gaveUp = e.Err
		}
	}
	close(u.changed)
	u.changed = make(chan struct{})
	u.mu.Unlock()
	u.t.log.Debug("sip transport: upstream "+e.State.String(), "server", e.Server, "flow", e.Flow, "err", e.Err, "retry_in", e.RetryIn)
	if u.cfg.OnState != nil {
		u.cfg.OnState(e)
	}
}

func (u *Upstream) orderServers() []Server {
	s := append([]Server(nil), u.cfg.Servers...)
	slices.SortStableFunc(s, func(a, b Server) int { return a.Priority - b.Priority })
	out := make([]Server, 0, len(s))
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j].Priority == s[i].Priority {
			j++
		}
		out = append(out, weightedOrder(s[i:j], func(x Server) int { return max(x.Weight, 0) })...)
		i = j
	}
	return out
}

func (u *Upstream) run() {
	defer close(u.stopped)
	failures := 0
	for {
		var lastErr error
		permanent := true // every attempt of the round failed for good
		connected := false
		var delay time.Duration
	servers:
		for _, s := range u.orderServers() {
			if u.ctx.Err() != nil {
				break
			}
			u.setState(StateEvent{State: Connecting, Server: s.Addr, Attempt: failures + 1})
			f, c, err := u.connect(s)
			if err != nil {
				lastErr = err
				permanent = permanent && Permanent(err)
				u.t.log.Debug("sip transport: upstream attempt failed", "server", s.Addr, "err", err)
				continue
			}
			connected = true
			attempt := failures + 1
			failures = 0
			// A Reconnect asked for while connecting is answered by this
			// new connection; one asked for after the Connected event
			// below is not lost.
			select {
			case <-u.reconnect:
			default:
			}
			u.setState(StateEvent{State: Connected, Server: s.Addr, Flow: f, Attempt: attempt})
			reason := u.watch(f, c)
			switch {
			case u.ctx.Err() != nil:
				if c != nil {
					c.close(ErrClosed)
				}
				u.setState(StateEvent{State: Disconnected, Server: s.Addr, Flow: f, Err: ErrClosed})
				return
			case errors.Is(reason, errReconnect):
				if c != nil {
					c.close(errReconnect)
				}
				u.setState(StateEvent{State: Disconnected, Server: s.Addr, Flow: f, Err: errReconnect})
				delay = 0
			default:
				delay = u.backoff.Delay(0)
				u.setState(StateEvent{State: Disconnected, Server: s.Addr, Flow: f, Err: reason, RetryIn: delay})
			}
			break servers
		}
		if u.ctx.Err() != nil {
			u.setState(StateEvent{State: Disconnected, Err: ErrClosed})
			return
		}
		if !connected {
			failures++
			if permanent && lastErr != nil {
				// A certificate that does not verify will not verify on
				// the next attempt either: no outage, a configuration
				// error to report at once.
				u.setState(StateEvent{State: Disconnected, Err: fmt.Errorf("%w: %w", ErrGaveUp, lastErr)})
				return
			}
			if u.backoff.MaxAttempts > 0 && failures >= u.backoff.MaxAttempts {
				u.setState(StateEvent{State: Disconnected, Err: fmt.Errorf("%w after %d attempts: %w", ErrGaveUp, failures, lastErr)})
				return
			}
			delay = u.backoff.Delay(failures)
			u.setState(StateEvent{State: Disconnected, Err: lastErr, RetryIn: delay})
		}
		if delay > 0 {
			timer := time.NewTimer(delay)
			select {
			case <-timer.C:
			case <-u.reconnect:
				timer.Stop()
				failures = 0
			case <-u.ctx.Done():
				timer.Stop()
				u.setState(StateEvent{State: Disconnected, Err: ErrClosed})
				return
			}
		}
	}
}

// connect tries each target of s once; it returns the flow and, for a
// stream, the connection.
func (u *Upstream) connect(s Server) (Flow, *conn, error) {
	targets, err := u.t.resolveServer(u.ctx, s.Addr)
	if err != nil {
		return Flow{}, nil, err
	}
	var errs []error
	for _, tg := range targets {
		l, err := u.t.link(u.ctx, tg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c, _ := l.(*conn)
		return l.flow(), c, nil
	}
	return Flow{}, nil, errors.Join(errs...)
}

// watch waits until the connection ends, Reconnect is called or the
// Upstream stops, and returns why. A UDP flow ends only when
// Keepalive.Ping fails.
func (u *Upstream) watch(f Flow, c *conn) error {
	var done <-chan struct{}
	if c != nil {
		done = c.done
	}
	ka := u.t.cfg.Keepalive
	var tick <-chan time.Time
	var timer *time.Timer
	if c == nil && ka.Ping != nil && ka.Interval > 0 {
		timer = time.NewTimer(ka.Interval)
		defer timer.Stop()
		tick = timer.C
	}
	for {
		select {
		case <-done:
			return c.err
		case <-u.reconnect:
			return errReconnect
		case <-u.ctx.Done():
			return ErrClosed
		case <-tick:
			ctx, cancel := context.WithTimeout(u.ctx, ka.Timeout)
			err := ka.Ping(ctx, f)
			cancel()
			if err != nil {
				if u.ctx.Err() != nil {
					return ErrClosed
				}
				return fmt.Errorf("%w: ping: %w", ErrDeadPeer, err)
			}
			timer.Reset(ka.Interval)
		}
	}
}

// Permanent reports whether a connection error will not pass by trying
// again: the server's certificate did not verify (untrusted, expired, for
// another name). An Upstream whose every server fails so gives up at once
// with ErrGaveUp instead of retrying as in an outage.
func Permanent(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}
