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

// testManyAccounts registers manyAccounts accounts (users many<first> on)
// on one stack with digest, checks that the stack's goroutines do not
// grow with them, places calls through Kamailio to a sample of them from
// a separate UserAgent and checks that the account called is the one
// that answers, waits for every account's refresh and checks (in
// Kamailio's log) that each account was challenged once in the whole
// test, so that every refresh and the final un-REGISTER took ONE
// REGISTER; then unregisters all and checks that Kamailio's location
// table is empty.
func testManyAccounts(t *testing.T, proto transport.Proto, first int) {
	k := StartKamailioWith(t, "kamailio/many.cfg", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The caller: a UserAgent of its own (its own stack), over UDP.
	caller, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   "sip:caller0@" + Domain,
		AuthorizationPassword: "caller0-secret",
		MediaFactory:          sip.NoMedia,
		Transport:             sip.TransportOptions{Server: server(k, transport.UDP), KeepaliveInterval: -1},
	})
	require.NoError(t, err)
	require.NoError(t, caller.Start(ctx))
	defer func() { assert.NoError(t, caller.Stop(context.Background())) }()

	baseG := runtime.NumGoroutine()
	baseHeap, _ := heapInUse()

	newAccount := startManyStack(t, ctx, k, proto)
	accounts := make([]*manyAccount, manyAccounts)
	var invitesTotal atomic.Int32
	for i := range accounts {
		a := &manyAccount{user: manyUser(first + i), invites: make(chan *sip.Invitation, 4)}
		ua, err := newAccount(sip.UserAgentOptions{
			URI:                   "sip:" + a.user + "@" + Domain,
			AuthorizationPassword: a.user + "-secret",
			MediaFactory:          sip.NoMedia,
			Delegate: sip.UserAgentDelegate{OnInvite: func(inv *sip.Invitation) {
				invitesTotal.Add(1)
				a.invites <- inv
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

	// Register all, 200 at a time.
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
	setup := time.Since(start)
	require.Zero(t, regErrs.Load(), "registrations failed")

	// Goroutines: the stack and its accounts, all registered, once the
	// callback queues have drained.
	extraG := runtime.NumGoroutine() - baseG
	for deadline := time.Now().Add(3 * time.Second); extraG > manyGoroutines && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		extraG = runtime.NumGoroutine() - baseG
	}
	assert.LessOrEqual(t, extraG, manyGoroutines, "goroutines the stack with %d accounts added", manyAccounts)
	heap, inuse := heapInUse()
	t.Logf("%d accounts over %s registered in %v; goroutines +%d; heap %0.1f MiB (+%0.1f MiB, %d B per account), in use %0.1f MiB",
		manyAccounts, proto, setup.Round(time.Millisecond), extraG, float64(heap)/(1<<20),
		(float64(heap)-float64(baseHeap))/(1<<20), (int64(heap)-int64(baseHeap))/manyAccounts, float64(inuse)/(1<<20))

	aors, err := locationAoRs(ctx, k)
	require.NoError(t, err)
	for _, a := range accounts {
		if !assert.Equal(t, 1, aors[a.user], "%s: contacts in Kamailio's location table", a.user) {
			break
		}
	}

	// A call through Kamailio to every account, manyCallers at a time:
	// the account called, and no other, answers.
	callStart := time.Now()
	var callErrs atomic.Int32
	sem = make(chan struct{}, manyCallers)
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
	t.Logf("every account refreshed (%v after the calls)", time.Since(refreshStart).Round(time.Millisecond))
	for _, a := range accounts {
		assert.Zero(t, a.lapsed.Load(), "%s: the registration lapsed", a.user)
		assert.Equal(t, sip.Registered, a.reg.State(), a.user)
	}

	// Unregister all.
	sumRegs := func() int {
		regs = countPerUser(k, manyRegisterLine)
		n := 0
		for _, a := range accounts {
			n += regs[a.user]
		}
		return n
	}
	before := sumRegs()
	for _, a := range accounts {
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

// startManyStack starts what the accounts share and returns how to make
// an account on it.
//
// TODO(stack): until sip.Stack is merged, each account is a UserAgent of
// its own.
func startManyStack(t *testing.T, ctx context.Context, k *Kamailio, proto transport.Proto) func(sip.UserAgentOptions) (*sip.UserAgent, error) {
	var mu sync.Mutex
	var uas []*sip.UserAgent
	t.Cleanup(func() {
		for _, ua := range uas {
			_ = ua.Stop(context.Background())
		}
	})
	return func(o sip.UserAgentOptions) (*sip.UserAgent, error) {
		o.Transport = sip.TransportOptions{Server: server(k, proto), KeepaliveInterval: -1}
		ua, err := sip.NewUserAgent(o)
		if err == nil {
			mu.Lock()
			uas = append(uas, ua)
			mu.Unlock()
		}
		return ua, err
	}
}
