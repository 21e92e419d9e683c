package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/transport"
)

// Many accounts (issue 19): kamailio/many.cfg knows the users many0000 …
// many1999 and caller0 … caller9, each with the password name + "-secret".
const (
	manyAccounts = 1000 // per test: UDP uses many0000-0999, WS many1000-1999
	// manyExpires is the lifetime the accounts ask for: the Registerers
	// refresh 5 s after each registration (RegistererOptions'
	// RefreshFraction, with its 5 s minimum margin).
	manyExpires = 10
	// manyCallers is how many calls to the accounts are under way at
	// once.
	manyCallers = 20
	// manyGoroutines is how many goroutines the stack with its 1000
	// registered accounts may add.
	manyGoroutines = 64
)

func manyUser(i int) string { return fmt.Sprintf("many%04d", i) }

// manyRegisterLine matches the line many.cfg logs for each REGISTER
// (retransmissions left out), and manyChallengeLine the one for each 401.
var (
	manyRegisterLine  = regexp.MustCompile(`MANY-REGISTER user=(many\d{4}) `)
	manyChallengeLine = regexp.MustCompile(`MANY-CHALLENGE user=(many\d{4}) `)
)

// countPerUser counts re's matches in Kamailio's log per user.
func countPerUser(k *Kamailio, re *regexp.Regexp) map[string]int {
	out := map[string]int{}
	for _, m := range re.FindAllStringSubmatch(k.Log(), -1) {
		out[m[1]]++
	}
	return out
}

// kamailioRPC calls a JSON-RPC method of a Kamailio started with
// many.cfg (module jsonrpcs over HTTP on its SIP port) and decodes the
// result into out.
func kamailioRPC(ctx context.Context, k *Kamailio, method string, params []string, out any) error {
	call := map[string]any{"jsonrpc": "2.0", "method": method, "id": 1}
	if params != nil {
		call["params"] = params
	}
	body, err := json.Marshal(call)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/RPC", k.SIPPort), bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Result json.RawMessage
		Error  *struct {
			Code    int
			Message string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if r.Error != nil {
		return fmt.Errorf("%s: error %d %s", method, r.Error.Code, r.Error.Message)
	}
	return json.Unmarshal(r.Result, out)
}

// locationAoRs returns the users that have a binding in Kamailio's
// location table, with their number of contacts (RPC ul.dump).
func locationAoRs(ctx context.Context, k *Kamailio) (map[string]int, error) {
	var dump struct {
		Domains []struct {
			Domain struct {
				AoRs []struct {
					Info struct {
						AoR      string
						Contacts []json.RawMessage
					}
				}
			}
		}
	}
	if err := kamailioRPC(ctx, k, "ul.dump", nil, &dump); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, d := range dump.Domains {
		for _, a := range d.Domain.AoRs {
			out[a.Info.AoR] += len(a.Info.Contacts)
		}
	}
	return out, nil
}

// manyAccount is one account of the test and what happened to it.
type manyAccount struct {
	user    string
	ua      *sip.UserAgent
	reg     *sip.Registerer
	lapsed  atomic.Int32 // Registerer state changes away from Registered after the first registration
	invites chan *sip.Invitation
}

func heapInUse() (alloc, inuse uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.HeapInuse
}

// TestManyAccountsUDP: 1000 accounts on one stack, over one UDP socket,
// against Kamailio (kamailio/many.cfg). See testManyAccounts.
func TestManyAccountsUDP(t *testing.T) { testManyAccounts(t, transport.UDP, 0) }

// TestManyAccountsWS: 1000 accounts on one stack, over one WebSocket
// connection to Kamailio. See testManyAccounts.
func TestManyAccountsWS(t *testing.T) { testManyAccounts(t, transport.WS, manyAccounts) }

// testManyAccounts puts manyAccounts accounts (users many<first> on) on
// one sip.Stack, whose one UDP socket or WebSocket connection to Kamailio
// they share, and checks, against Kamailio (kamailio/many.cfg):
//   - all register with digest, and Kamailio's location table has a
//     binding for each; the stack, with its accounts registered, adds at
//     most manyGoroutines goroutines (the heap is logged);
//   - a call through Kamailio from a separate UserAgent to every account
//     reaches that account's OnInvite and no other's, and ends by BYE;
//   - every account refreshes, and Kamailio challenged each account once
//     in the whole test, so every refresh and un-REGISTER took ONE
//     REGISTER (the nonce is reused with the next nonce count);
//   - stopping one account removes its binding (a call to it gets 404)
//     and another account still takes calls;
//   - the others unregister, and Kamailio's location table is empty;
//   - Stack.Stop stops every account and closes Done.
func testManyAccounts(t *testing.T, proto transport.Proto, first int) {
	k := StartKamailioWith(t, "kamailio/many.cfg", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	caller := startManyCaller(t, ctx, k)

	baseG := runtime.NumGoroutine()
	baseHeap, _ := heapInUse()

	// The stack all accounts share: one UDP socket, or one WebSocket
	// connection, to Kamailio.
	st, err := sip.NewStack(sip.StackOptions{Transport: sip.TransportOptions{Server: server(k, proto)}})
	require.NoError(t, err)
	require.NoError(t, st.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = st.Stop(ctx) // idempotent: the test stops it at its end
	})
	var invitesTotal atomic.Int32
	accounts := newManyAccounts(t, ctx, st, first, manyAccounts, &invitesTotal)
	setup := registerAll(t, ctx, accounts)

	// Goroutines: the stack and its accounts, all registered, once the
	// callback queues have drained.
	extraGoroutines := func(when string) int {
		extra := runtime.NumGoroutine() - baseG
		for deadline := time.Now().Add(3 * time.Second); extra > manyGoroutines && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			extra = runtime.NumGoroutine() - baseG
		}
		assert.LessOrEqual(t, extra, manyGoroutines, "goroutines the stack with %d accounts added, %s", manyAccounts, when)
		return extra
	}
	extraG := extraGoroutines("all registered")
	heap, inuse := heapInUse()
	t.Logf("%d accounts over %s registered in %v; goroutines +%d; heap %0.1f MiB (+%0.1f MiB, %d B per account), in use %0.1f MiB",
		manyAccounts, proto, setup.Round(time.Millisecond), extraG, float64(heap)/(1<<20),
		(float64(heap)-float64(baseHeap))/(1<<20), (int64(heap)-int64(baseHeap))/manyAccounts, float64(inuse)/(1<<20))

	aors, err := locationAoRs(ctx, k)
	require.NoError(t, err)
	if proto == transport.WS {
		conns, err := kamailioTCPConns(ctx, k)
		require.NoError(t, err)
		assert.LessOrEqual(t, conns, 2, "TCP connections at Kamailio: the Stack's WebSocket and this RPC's HTTP one")
	}
	var shm struct {
		Total    int64
		RealUsed int64 `json:"real_used"`
	}
	if err := kamailioRPC(ctx, k, "core.shmmem", nil, &shm); err == nil {
		t.Logf("Kamailio's shared memory with the %d bindings: %0.1f of %0.1f MiB used", len(aors), float64(shm.RealUsed)/(1<<20), float64(shm.Total)/(1<<20))
	}
	for _, a := range accounts {
		if !assert.Equal(t, 1, aors[a.user], "%s: contacts in Kamailio's location table", a.user) {
			break
		}
	}

	// A call through Kamailio to every account, manyCallers at a time:
	// the account called, and no other, answers.
	callStart := time.Now()
	callAll(t, ctx, caller, accounts)
	assert.Equal(t, int32(manyAccounts), invitesTotal.Load(), "OnInvite fired once per call, on the account called")
	t.Logf("%d calls through Kamailio, each answered by the account called, in %v", manyAccounts, time.Since(callStart).Round(time.Millisecond))

	// The refresh: wait until Kamailio has seen a third REGISTER from
	// every account (challenge, credentials, refresh).
	refreshStart := time.Now()
	var regs map[string]int
	waitAll := func(want int) bool {
		regs = countPerUser(k, manyRegisterLine)
		for _, a := range accounts {
			if regs[a.user] < want {
				return false
			}
		}
		return true
	}
	require.Eventually(t, func() bool { return waitAll(3) }, (manyExpires+15)*time.Second, 100*time.Millisecond,
		"not every account refreshed: %d of %d did", countAtLeast(regs, accounts, 3), manyAccounts)
	t.Logf("every account refreshed (%v after the calls); goroutines +%d", time.Since(refreshStart).Round(time.Millisecond),
		extraGoroutines("after the calls and the refresh"))
	for _, a := range accounts {
		assert.Zero(t, a.lapsed.Load(), "%s: the registration lapsed", a.user)
		assert.Equal(t, sip.Registered, a.reg.State(), a.user)
	}

	sumRegs := func() int {
		regs = countPerUser(k, manyRegisterLine)
		n := 0
		for _, a := range accounts {
			n += regs[a.user]
		}
		return n
	}
	before := sumRegs()

	// Stop one account: its registration goes (one un-REGISTER), the
	// others stay undisturbed.
	require.NoError(t, accounts[0].ua.Stop(ctx))
	assert.Equal(t, sip.Stopped, accounts[0].ua.State())
	assert.NotEqual(t, sip.Registered, accounts[0].reg.State())
	call, err := sip.NewInviter(caller, "sip:"+accounts[0].user+"@"+Domain, sip.InviterOptions{})
	require.NoError(t, err)
	var re *sip.ResponseError
	if assert.ErrorAs(t, call.Invite(ctx, sip.InviteOptions{}), &re, "a call to the stopped account") {
		assert.Equal(t, 404, re.StatusCode, "Kamailio has no binding for the stopped account")
	}
	require.NoError(t, callAccount(ctx, caller, accounts[1]), "a call to another account after one stopped")

	// Unregister the others.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	for _, a := range accounts[1:] {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			assert.NoError(t, a.reg.Unregister(ctx, sip.UnregisterOptions{}), a.user)
		}()
	}
	wg.Wait()
	aors, err = locationAoRs(ctx, k)
	require.NoError(t, err)
	var left []string
	for _, a := range accounts {
		if aors[a.user] > 0 {
			left = append(left, a.user)
		}
	}
	assert.Empty(t, left, "bindings left in Kamailio's location table after the un-REGISTERs")

	// Kamailio's count: ONE challenge per account in the whole test (the
	// first REGISTER), so that each refresh and the un-REGISTER took one
	// REGISTER, reusing the nonce.
	require.Eventually(t, func() bool { return sumRegs() >= before+manyAccounts }, 5*time.Second, 50*time.Millisecond)
	regs = countPerUser(k, manyRegisterLine)
	challenges := countPerUser(k, manyChallengeLine)
	n, err := kamailioStat(ctx, k, "usrloc:location_contacts")
	require.NoError(t, err)
	assert.Zero(t, n, "contacts in Kamailio's location table")
	var counts []int
	total := 0
	for _, a := range accounts {
		if !assert.Equal(t, 1, challenges[a.user], "%s: challenged once, at the first REGISTER", a.user) {
			break
		}
		counts = append(counts, regs[a.user])
		total += regs[a.user]
	}
	t.Logf("REGISTERs Kamailio received per account: %d to %d (%d in all: 2 to register, one per refresh, one to unregister); 401s: %d",
		slices.Min(counts), slices.Max(counts), total, len(manyChallengeLine.FindAllString(k.Log(), -1)))
	noRouteSetViolations(t, k)

	// Stopping the stack stops every account on it.
	require.NoError(t, st.Stop(ctx))
	select {
	case <-st.Done():
	case <-ctx.Done():
		t.Fatal("the stack's Done was not closed by Stop")
	}
	for _, a := range accounts {
		if !assert.Equal(t, sip.Stopped, a.ua.State(), "%s after Stack.Stop", a.user) {
			break
		}
	}
}

// kamailioStat returns one of the statistics of a Kamailio started with
// many.cfg (RPC stats.get_statistics), e.g. "usrloc:location_contacts".
func kamailioStat(ctx context.Context, k *Kamailio, name string) (int, error) {
	group, _, _ := strings.Cut(name, ":")
	var out []string
	if err := kamailioRPC(ctx, k, "stats.get_statistics", []string{group + ":"}, &out); err != nil {
		return 0, err
	}
	for _, line := range out {
		if v, ok := strings.CutPrefix(line, name+" = "); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("statistic %s: not in %q", name, out)
}

// newManyAccounts makes and starts n accounts on st (users many<first>
// on), each with a Registerer (Expires manyExpires) and an OnInvite that
// counts the call in invites, hands it to the account's invites channel
// and accepts it.
func newManyAccounts(t *testing.T, ctx context.Context, st *sip.Stack, first, n int, invites *atomic.Int32) []*manyAccount {
	t.Helper()
	accounts := make([]*manyAccount, n)
	for i := range accounts {
		a := &manyAccount{user: manyUser(first + i), invites: make(chan *sip.Invitation, 4)}
		ua, err := st.NewUserAgent(sip.UserAgentOptions{
			URI:                   "sip:" + a.user + "@" + Domain,
			AuthorizationPassword: a.user + "-secret",
			MediaFactory:          sip.NoMedia,
			Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
				invites.Add(1)
				select {
				case a.invites <- inv:
				default:
					t.Errorf("%s: more calls than the test placed to it", a.user)
				}
				// Answer at once; the test checks who answered.
				if err := inv.Accept(ctx, sip.AcceptOptions{}); err != nil {
					t.Errorf("%s: accept: %v", a.user, err)
				}
			}},
		})
		require.NoError(t, err)
		require.NoError(t, ua.Start(ctx))
		a.ua = ua
		a.reg, err = sip.NewRegisterer(ua, sip.RegistererOptions{Expires: manyExpires})
		require.NoError(t, err)
		accounts[i] = a
	}
	return accounts
}

// startManyCaller starts the UserAgent that calls the accounts: one of its
// own (its own stack), user caller0, over UDP.
func startManyCaller(t *testing.T, ctx context.Context, k *Kamailio) *sip.UserAgent {
	t.Helper()
	caller, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:caller0@" + Domain,
		AuthorizationPassword: "caller0-secret",
		MediaFactory:          sip.NoMedia,
		Transport:             sip.TransportOptions{Server: server(k, transport.UDP), KeepaliveInterval: -1},
	})
	require.NoError(t, err)
	require.NoError(t, caller.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, caller.Stop(ctx))
	})
	return caller
}

// kamailioTCPConns returns the TCP connections Kamailio has open (RPC
// core.tcp_info), WebSocket ones and the HTTP connection of the RPC
// itself included.
func kamailioTCPConns(ctx context.Context, k *Kamailio) (int, error) {
	var info struct {
		Opened int `json:"opened_connections"`
	}
	err := kamailioRPC(ctx, k, "core.tcp_info", nil, &info)
	return info.Opened, err
}

// TestManyAccountsWSReconnect: 1000 accounts on one Stack share one
// WebSocket connection to Kamailio; Kamailio restarts (its registrations
// are lost, the connection drops); the Stack reconnects, and every
// account registers again by itself on the new connection (Kamailio's
// location table has all 1000 again) and takes a call routed to it.
func TestManyAccountsWSReconnect(t *testing.T) {
	k := StartKamailioWith(t, "kamailio/many.cfg", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	caller := startManyCaller(t, ctx, k)
	st, err := sip.NewStack(sip.StackOptions{Transport: sip.TransportOptions{
		Server:       server(k, transport.WS),
		ReconnectMin: 100 * time.Millisecond, ReconnectMax: 500 * time.Millisecond,
	}})
	require.NoError(t, err)
	require.NoError(t, st.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, st.Stop(ctx))
	})
	var invites atomic.Int32
	accounts := newManyAccounts(t, ctx, st, manyAccounts, manyAccounts, &invites)
	registerAll(t, ctx, accounts)
	n, err := kamailioStat(ctx, k, "usrloc:location_contacts")
	require.NoError(t, err)
	require.Equal(t, manyAccounts, n, "bindings in Kamailio's location table")

	k.Stop(t)
	k.Start(t)
	back := time.Now()
	require.Eventually(t, func() bool {
		n, err = kamailioStat(ctx, k, "usrloc:location_contacts")
		return err == nil && n == manyAccounts
	}, 20*time.Second, 100*time.Millisecond, "accounts registered again: %d of %d (%v)", n, manyAccounts, err)
	again := time.Since(back)
	conns, err := kamailioTCPConns(ctx, k)
	require.NoError(t, err)
	t.Logf("all %d accounts registered again %v after Kamailio was back; Kamailio's TCP connections: %d", manyAccounts, again.Round(time.Millisecond), conns)
	assert.LessOrEqual(t, conns, 2, "TCP connections at Kamailio: the Stack's WebSocket and this RPC's HTTP one")

	callStart := time.Now()
	callAll(t, ctx, caller, accounts)
	assert.Equal(t, int32(manyAccounts), invites.Load(), "OnInvite fired once per call, on the account called")
	t.Logf("%d calls through Kamailio after the restart, each answered by the account called, in %v", manyAccounts, time.Since(callStart).Round(time.Millisecond))
	noRouteSetViolations(t, k)
}

// callAll calls every account through Kamailio from caller, manyCallers
// at a time (see callAccount), and fails the test for each call that
// fails.
func callAll(t *testing.T, ctx context.Context, caller *sip.UserAgent, accounts []*manyAccount) {
	t.Helper()
	var wg sync.WaitGroup
	var callErrs atomic.Int32
	sem := make(chan struct{}, manyCallers)
	for _, a := range accounts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := callAccount(ctx, caller, a); err != nil && callErrs.Add(1) <= 5 {
				t.Errorf("call to %s: %v", a.user, err)
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, callErrs.Load(), "calls that failed")
}

// registerAll registers the accounts, 200 at a time, fails the test
// unless all succeed, and returns how long it took. From then on each
// account's lapsed counts its Registerer's changes away from Registered.
func registerAll(t *testing.T, ctx context.Context, accounts []*manyAccount) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	var regErrs atomic.Int32
	for _, a := range accounts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := a.reg.Register(ctx, sip.RegisterOptions{}); err != nil {
				if regErrs.Add(1) <= 5 {
					t.Errorf("%s: register: %v", a.user, err)
				}
				return
			}
			a.reg.OnStateChange(func(s sip.RegistererState) {
				if s != sip.Registered {
					a.lapsed.Add(1)
				}
			})
		}()
	}
	wg.Wait()
	require.Zero(t, regErrs.Load(), "registrations failed")
	return time.Since(start)
}

// callAccount calls a through Kamailio from caller and hangs up; the call
// must reach a's OnInvite, no other account's.
func callAccount(ctx context.Context, caller *sip.UserAgent, a *manyAccount) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	call, err := sip.NewInviter(caller, "sip:"+a.user+"@"+Domain, sip.InviterOptions{})
	if err != nil {
		return err
	}
	if err := call.Invite(ctx, sip.InviteOptions{}); err != nil {
		return err
	}
	callID, _, _ := call.DialogID()
	var inv *sip.Invitation
	select {
	case inv = <-a.invites:
	case <-ctx.Done():
		return fmt.Errorf("answered, but not by the account's OnInvite")
	}
	if got := inv.Request.Header.Get("Call-ID"); got != callID {
		return fmt.Errorf("the account got another call (Call-ID %s, not %s)", got, callID)
	}
	if err := call.Bye(ctx); err != nil {
		return err
	}
	select {
	case <-inv.Done():
	case <-ctx.Done():
		return fmt.Errorf("the BYE did not end the account's call")
	}
	if c := inv.EndReason().Cause; c != sip.EndRemoteBye {
		return fmt.Errorf("the account's call ended by %v, not the BYE", c)
	}
	return nil
}

func countAtLeast(regs map[string]int, accounts []*manyAccount, want int) int {
	n := 0
	for _, a := range accounts {
		if regs[a.user] >= want {
			n++
		}
	}
	return n
}
