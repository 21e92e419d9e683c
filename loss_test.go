package sip_test

import (
	"context"
	"fmt"
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

func (l *stateLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.states)
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
						Transport:    sip.TransportOptions{Listen: []string{"udp://" + addr}, ListenPacket: n.PacketListener(name)},
						Delegate:     d,
						MediaFactory: sip.NoMedia,
					})
					require.NoError(t, err)
					require.NoError(t, ua.Start(context.Background()))
					t.Cleanup(func() { assert.NoError(t, ua.Stop(context.Background())) })
					return ua
				}
				alice := start("alice", aliceAddr.String(), sip.UserAgentDelegate{})
				start("bob", bobAddr.String(), sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
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
					call, err := sip.NewInviter(alice, "sip:bob@"+bobAddr.String(), sip.InviterOptions{})
					require.NoError(t, err)
					aliceLogs[k] = &stateLog{}
					call.OnStateChange(aliceLogs[k].add)
					calls[k] = call
					wg.Go(func() {
						if err := call.Invite(context.Background(), sip.InviteOptions{}); err != nil {
							t.Errorf("call %d: INVITE: %v", k, err)
							return
						}
						// The call is up once bob has the ACK too: under
						// loss that may take some of his 2xx
						// retransmissions (RFC 3261 §13.3.1.4).
						callID, _, _ := call.DialogID()
						select {
						case <-upCh(callID):
						case <-time.After(time.Minute):
							t.Errorf("call %d: bob's side never established", k)
						}
						time.Sleep(3 * time.Second)
						if err := call.Bye(context.Background()); err != nil {
							t.Errorf("call %d: BYE: %v", k, err)
						}
					})
				}
				wg.Wait()
				for k := range lossRuns {
					<-calls[k].Done()
				}
				got := 0
				for range lossRuns {
					select {
					case inv := <-invs:
						<-inv.Done()
						got++
						if c := inv.EndReason().Cause; c != sip.EndRemoteBye {
							t.Errorf("bob's side of a call ended with %v", inv.EndReason())
						}
					case <-time.After(5 * time.Minute):
					}
				}
				synctest.Wait()
				assert.Equal(t, lossRuns, got, "calls bob's application saw")
				assert.Empty(t, invs, "a call reached bob's application twice")
				completed := 0
				for k, call := range calls {
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
					if !l.establishedThenTerminated() {
						t.Errorf("bob's call: states %v", l)
					}
				}
				mu.Unlock()
				s := n.Stats()
				t.Logf("%s: %d/%d calls completed in %v (virtual); datagrams sent %d, lost %d, duplicated %d",
					tc.name, completed, lossRuns, time.Since(began), s.Sent, s.Lost, s.Duplicated)
			})
		})
	}
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
				users := map[string]string{}
				for k := range lossRuns {
					users[fmt.Sprintf("user%d", k)] = fmt.Sprintf("pw%d", k)
				}
				srv, err := sipserver.New(sipserver.Options{Domain: "sipua.test", Users: users,
					ListenPacket: n.PacketListener("registrar")})
				require.NoError(t, err)
				defer srv.Close()
				_, err = srv.Listen(t.Context(), "udp", "192.0.2.10:5060")
				require.NoError(t, err)

				began := time.Now()
				regs := make([]*sip.Registerer, lossRuns)
				var wg sync.WaitGroup
				for k := range lossRuns {
					user := fmt.Sprintf("user%d", k)
					addr := siptest.TestNetAddr(byte(20+k%100), 5060)
					ua, err := sip.NewUserAgent(sip.UserAgentOptions{
						URI:                   "sip:" + user + "@sipua.test",
						AuthorizationPassword: users[user],
						Transport: sip.TransportOptions{Server: "sip:192.0.2.10:5060",
							Listen: []string{"udp://" + addr.String()}, ListenPacket: n.PacketListener(user)},
						MediaFactory: sip.NoMedia,
					})
					require.NoError(t, err)
					require.NoError(t, ua.Start(context.Background()))
					t.Cleanup(func() { assert.NoError(t, ua.Stop(context.Background())) })
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
				s := n.Stats()
				t.Logf("%s: %d/%d registrations in %v (virtual); datagrams sent %d, lost %d, duplicated %d",
					tc.name, registered, lossRuns, elapsed, s.Sent, s.Lost, s.Duplicated)
				assert.Equal(t, lossRuns, registered)
			})
		})
	}
}
