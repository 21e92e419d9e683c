package sip_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/siptest"
	"github.com/sipua/sip/siptest/sipserver"
)

// These tests run 100 calls and 100 registrations over bad links of the
// in-memory network (20% loss each way, reordering by jitter,
// duplication), with whole UserAgents on virtual time: every one must
// complete, thanks to RFC 3261's retransmissions alone.

const lossRuns = 100

// lossLinks are the link conditions each test runs under.
var lossLinks = []struct {
	name string
	link siptest.Link
}{
	{"loss20", siptest.Link{Loss: 0.2, Delay: 20 * time.Millisecond}},
	{"jitter", siptest.Link{Delay: 20 * time.Millisecond, Jitter: 80 * time.Millisecond}},
	{"duplicate", siptest.Link{Duplicate: 0.2, Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond}},
	{"loss20+jitter+duplicate", siptest.Link{Loss: 0.2, Duplicate: 0.1, Delay: 20 * time.Millisecond, Jitter: 80 * time.Millisecond}},
}

// stateLog records the states a session went through.
type stateLog struct {
	mu     sync.Mutex
	states []sip.SessionState
}

func (l *stateLog) add(s sip.SessionState) {
	l.mu.Lock()
	l.states = append(l.states, s)
	l.mu.Unlock()
}

// establishedThenTerminated reports whether the log has Established and,
// after it, Terminated as the last state.
func (l *stateLog) establishedThenTerminated() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	est := -1
	for i, s := range l.states {
		if s == sip.SessionEstablished && est < 0 {
			est = i
		}
	}
	n := len(l.states)
	return est >= 0 && n > est+1 && l.states[n-1] == sip.SessionTerminated
}

// waitTerminated waits until the listener has seen Terminated (state
// listeners run on the callback goroutine, after Done is closed), for
// at most a minute.
func (l *stateLog) waitTerminated() {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		l.mu.Lock()
		n := len(l.states)
		done := n > 0 && l.states[n-1] == sip.SessionTerminated
		l.mu.Unlock()
		if done {
			return
		}
	}
}

func (l *stateLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.states)
}

// lossEnv says where a loss run's UserAgents live: on the in-memory
// network (listen gives each its PacketListener) or on the OS's sockets
// (listen returns nil).
type lossEnv struct {
	listen     func(name string) func(ctx context.Context, network, address string) (net.PacketConn, error)
	alice, bob string // UDP addresses of the callers
	registrar  string // UDP address of the registrar
	ua         func(k int) string
	stats      func() string // what the network did, for the log
	timers     sip.Timers    // the UserAgents' RFC 3261 timers (zero: defaults)
	hold       time.Duration // how long each call stays up (zero: 3 s)
}

// TestLossCalls: 100 calls from alice to bob at once, each INVITE, 200,
// ACK, three seconds up (from when both sides are established), BYE, 200;
// all are established and then ended by a BYE on both sides.
func TestLossCalls(t *testing.T) {
	for i, tc := range lossLinks {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := siptest.NewNetwork(uint64(100 + i))
				defer n.Close()
				require.NoError(t, n.SetLinks(aliceAddr, bobAddr, tc.link))
				runLossCalls(t, tc.name, simEnv(n))
			})
		})
	}
}

// simEnv runs a loss test on n.
func simEnv(n *siptest.Network) lossEnv {
	return lossEnv{
		listen: func(name string) func(context.Context, string, string) (net.PacketConn, error) {
			return n.PacketListener(name)
		},
		alice: aliceAddr.String(), bob: bobAddr.String(), registrar: "192.0.2.10:5060",
		ua: func(k int) string { return siptest.TestNetAddr(byte(20+k%100), 5060).String() },
		stats: func() string {
			s := n.Stats()
			return fmt.Sprintf("datagrams sent %d, lost %d, duplicated %d", s.Sent, s.Lost, s.Duplicated)
		},
	}
}

// runLossCalls makes lossRuns calls at once from alice to bob and checks
// that every one completes.
func runLossCalls(t *testing.T, name string, env lossEnv) {
	var mu sync.Mutex
	bobLogs := map[*sip.Invitation]*stateLog{}
	upAtBob := map[string]chan struct{}{} // by Call-ID: closed when bob's side is Established
	upCh := func(callID string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		ch := upAtBob[callID]
		if ch == nil {
			ch = make(chan struct{})
			upAtBob[callID] = ch
		}
		return ch
	}
	invs := make(chan *sip.Invitation, lossRuns)
	start := func(name, addr string, d sip.UserAgentDelegate) *sip.UserAgent {
		ua, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI:          "sip:" + name + "@" + addr,
			Transport:    sip.TransportOptions{Listen: []string{"udp://" + addr}, ListenPacket: env.listen(name)},
			Delegate:     d,
			MediaFactory: sip.NoMedia,
			Timers:       env.timers,
			// All the calls arrive at once: more than the default cap on
			// unanswered INVITEs (a flood guard, tested elsewhere).
			Limits: sip.Limits{MaxPendingInvites: 2 * lossRuns},
		})
		require.NoError(t, err)
		require.NoError(t, ua.Start(context.Background()))
		t.Cleanup(func() { assert.NoError(t, ua.Stop(context.Background())) })
		return ua
	}
	alice := start("alice", env.alice, sip.UserAgentDelegate{})
	start("bob", env.bob, sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
		l := &stateLog{}
		inv.OnStateChange(func(st sip.SessionState) {
			l.add(st)
			if st == sip.SessionEstablished {
				callID, _, _ := inv.DialogID()
				close(upCh(callID))
			}
		})
		mu.Lock()
		bobLogs[inv] = l
		mu.Unlock()
		invs <- inv
		go func() { assert.NoError(t, inv.Accept(context.Background(), sip.AcceptOptions{})) }()
	}})

	began := time.Now()
	var wg sync.WaitGroup
	aliceLogs := make([]*stateLog, lossRuns)
	calls := make([]*sip.Inviter, lossRuns)
	for k := range lossRuns {
		call, err := sip.NewInviter(alice, "sip:bob@"+env.bob, sip.InviterOptions{})
		require.NoError(t, err)
		aliceLogs[k] = &stateLog{}
		call.OnStateChange(aliceLogs[k].add)
		calls[k] = call
		wg.Go(func() {
			if err := call.Invite(context.Background(), sip.InviteOptions{}); err != nil {
				t.Errorf("call %d: INVITE: %v", k, err)
				return
			}
			// The call is up once bob has the ACK too: under loss that
			// may take some of his 2xx retransmissions (RFC 3261
			// §13.3.1.4).
			callID, _, _ := call.DialogID()
			select {
			case <-upCh(callID):
			case <-time.After(time.Minute):
				t.Errorf("call %d: bob's side never established", k)
			}
			hold := env.hold
			if hold == 0 {
				hold = 3 * time.Second
			}
			time.Sleep(hold)
			if err := call.Bye(context.Background()); err != nil {
				t.Errorf("call %d: BYE: %v", k, err)
			}
		})
	}
	wg.Wait()
	for k := range lossRuns {
		select {
		case <-calls[k].Done():
		case <-time.After(time.Minute):
			t.Fatalf("call %d not over", k)
		}
	}
	got := 0
	for range lossRuns {
		select {
		case inv := <-invs:
			select {
			case <-inv.Done():
			case <-time.After(time.Minute):
				t.Fatalf("bob's side of a call not over")
			}
			got++
			if c := inv.EndReason().Cause; c != sip.EndRemoteBye {
				t.Errorf("bob's side of a call ended with %v", inv.EndReason())
			}
		case <-time.After(time.Minute):
		}
	}
	assert.Equal(t, lossRuns, got, "calls bob's application saw")
	assert.Empty(t, invs, "a call reached bob's application twice")
	completed := 0
	for k, call := range calls {
		aliceLogs[k].waitTerminated()
		ok := call.EndReason().Cause == sip.EndLocalBye && aliceLogs[k].establishedThenTerminated()
		if !ok {
			t.Errorf("alice's call %d: ended with %v, states %v", k, call.EndReason(), aliceLogs[k])
		}
		if ok {
			completed++
		}
	}
	mu.Lock()
	for _, l := range bobLogs {
		l.waitTerminated()
		if !l.establishedThenTerminated() {
			t.Errorf("bob's call: states %v", l)
		}
	}
	mu.Unlock()
	t.Logf("%s: %d/%d calls completed in %v; %s", name, completed, lossRuns, time.Since(began), env.stats())
}

// TestLossRegistrations: 100 UserAgents register at once with a
// registrar that asks for digest credentials (REGISTER, 401, REGISTER,
// 200); all end Registered and the registrar holds each one's binding.
func TestLossRegistrations(t *testing.T) {
	for i, tc := range lossLinks {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := siptest.NewNetwork(uint64(200 + i))
				defer n.Close()
				require.NoError(t, n.SetDefaultLink(tc.link))
				runLossRegistrations(t, tc.name, simEnv(n))
			})
		})
	}
}

// runLossRegistrations registers lossRuns UserAgents at once and checks
// that every one is registered.
func runLossRegistrations(t *testing.T, name string, env lossEnv) {
	users := map[string]string{}
	for k := range lossRuns {
		users[fmt.Sprintf("user%d", k)] = fmt.Sprintf("pw%d", k)
	}
	srv, err := sipserver.New(sipserver.Options{Domain: "sipua.test", Users: users,
		ListenPacket: env.listen("registrar")})
	require.NoError(t, err)
	defer srv.Close()
	_, err = srv.Listen(t.Context(), "udp", env.registrar)
	require.NoError(t, err)

	// Stop unregisters: all at once, while the registrar is still there.
	var uas []*sip.UserAgent
	defer func() {
		var wg sync.WaitGroup
		for _, ua := range uas {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				assert.NoError(t, ua.Stop(ctx))
			})
		}
		wg.Wait()
	}()

	began := time.Now()
	regs := make([]*sip.Registerer, lossRuns)
	var wg sync.WaitGroup
	for k := range lossRuns {
		user := fmt.Sprintf("user%d", k)
		ua, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI:                   "sip:" + user + "@sipua.test",
			AuthorizationPassword: users[user],
			Transport: sip.TransportOptions{Server: "sip:" + env.registrar,
				Listen: []string{"udp://" + env.ua(k)}, ListenPacket: env.listen(user)},
			MediaFactory: sip.NoMedia,
			Timers:       env.timers,
		})
		require.NoError(t, err)
		require.NoError(t, ua.Start(context.Background()))
		uas = append(uas, ua)
		reg, err := sip.NewRegisterer(ua, sip.RegistererOptions{Expires: 300})
		require.NoError(t, err)
		regs[k] = reg
		wg.Go(func() {
			if err := reg.Register(context.Background(), sip.RegisterOptions{}); err != nil {
				t.Errorf("%s: Register: %v", user, err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	registered := 0
	for k, reg := range regs {
		user := fmt.Sprintf("user%d", k)
		bs := srv.Bindings(user)
		if reg.State() == sip.Registered && len(bs) == 1 {
			registered++
		} else {
			t.Errorf("%s: state %v, %d bindings at the registrar", user, reg.State(), len(bs))
		}
	}
	t.Logf("%s: %d/%d registrations in %v; %s", name, registered, lossRuns, elapsed, env.stats())
	assert.Equal(t, lossRuns, registered)
}
