package interop

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media/rtp"
)

// clusterDomain is the domain of examples/cluster's Kamailio in the tests.
const clusterDomain = "cluster.test"

// startClusterKamailio starts examples/cluster's Kamailio with the bots at
// ports in its dispatcher set.
func startClusterKamailio(t *testing.T, ports []uint16) *Kamailio {
	t.Helper()
	var list strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&list, "1 sip:127.0.0.1:%d\n", p)
	}
	return StartKamailioWith(t, "../examples/cluster/kamailio.cfg",
		map[string]string{"dispatcher.list": list.String()}, "@DOMAIN@", clusterDomain)
}

// startClusterBot starts the bot example as botN taking calls on port and
// registered at k.
func startClusterBot(t *testing.T, bin string, k *Kamailio, n int, port uint16, extra ...string) *App {
	t.Helper()
	args := append([]string{"-server", "127.0.0.1:" + strconv.Itoa(int(k.SIPPort)), "-domain", clusterDomain,
		"-user", fmt.Sprintf("bot%d", n), "-listen", fmt.Sprintf("udp://127.0.0.1:%d", port),
		"-media", "rtp", "-media-ip", "127.0.0.1", "-max-duration", "30s"}, extra...)
	a := StartApp(t, fmt.Sprintf("bot%d", n), bin, args...)
	a.Expect(t, `^bot: ready for calls$`)
	return a
}

var incomingLine = regexp.MustCompile(`(?m)^call \d+: incoming from`)

// callsTaken counts the calls a bot process took.
func callsTaken(a *App) int { return len(incomingLine.FindAllString(a.Output(), -1)) }

// TestClusterDispatcher: three bot processes (examples/bot) behind
// examples/cluster's Kamailio, whose dispatcher module probes them with
// OPTIONS every second. 300 calls to the pool (sip:bots@cluster.test),
// placed by our UserAgent at about 30 per second with plain RTP, spread
// over all three. One bot is killed (SIGKILL) mid-run: every call started
// after that still succeeds (Kamailio fails over and marks the bot down),
// and once detected it gets no more calls. It comes back on the same port
// and takes calls again. Each bot also registered its own account
// (botN@cluster.test) at Kamailio's registrar: a call to an account
// reaches the process serving it.
func TestClusterDispatcher(t *testing.T) {
	const total, killAt, restartAt = 300, 90, 160
	bin := BuildExamples(t, "bot")[0]
	ports, err := freePorts(3)
	require.NoError(t, err)
	k := startClusterKamailio(t, ports)
	bots := make([]*App, 3)
	for i := range bots {
		bots[i] = startClusterBot(t, bin, k, i+1, ports[i])
	}
	// The bots do not read their standard input: stop them by SIGTERM at
	// the end rather than after StartApp's grace period.
	var stopMu sync.Mutex
	all := append([]*App(nil), bots...)
	t.Cleanup(func() {
		stopMu.Lock()
		defer stopMu.Unlock()
		for _, a := range all {
			_ = a.Signal(syscall.SIGTERM)
		}
	})

	caller, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:          "sip:caller@" + clusterDomain,
		Transport:    sip.TransportOptions{Server: "sip:127.0.0.1:" + strconv.Itoa(int(k.SIPPort))},
		MediaFactory: rtp.NewFactory(rtp.Config{IP: net.IPv4(127, 0, 0, 1)}),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	require.NoError(t, caller.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = caller.Stop(ctx) // calls on the killed bot cannot be hung up cleanly
	})

	type result struct {
		start time.Time
		err   error
	}
	results := make([]result, total)
	var started atomic.Int32
	var (
		killed, restarted         time.Time
		logAtDetect, logAtRestart int
		restartedBot              *App
		coord                     = make(chan struct{})
	)
	// The coordinator kills bot 2 after killAt calls have started and
	// restarts it after restartAt.
	go func() {
		defer close(coord)
		for started.Load() < killAt {
			time.Sleep(5 * time.Millisecond)
		}
		assert.NoError(t, syscall.Kill(bots[1].cmd.Process.Pid, syscall.SIGKILL))
		killed = time.Now()
		// Detection takes at most one probe interval (1 s) plus tm's
		// fr_timer (1.5 s) for the unanswered OPTIONS.
		time.Sleep(2600 * time.Millisecond)
		logAtDetect = len(k.Log())
		for started.Load() < restartAt {
			time.Sleep(5 * time.Millisecond)
		}
		logAtRestart = len(k.Log())
		a := startClusterBot(t, bin, k, 2, ports[1])
		stopMu.Lock()
		all = append(all, a)
		stopMu.Unlock()
		restartedBot = a
		restarted = time.Now()
	}()

	tick := time.NewTicker(33 * time.Millisecond) // ~30 calls/s
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range total {
		<-tick.C
		if i == restartAt {
			<-coord // the restarted bot is up before the remaining calls
		}
		results[i].start = time.Now()
		started.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i].err = clusterCall(ctx, caller)
		}()
	}
	wg.Wait()
	<-coord
	require.False(t, killed.IsZero())
	require.NotNil(t, restartedBot)

	failedBefore, failedAfter := 0, 0
	for i, r := range results {
		if r.err == nil {
			continue
		}
		if r.start.After(killed) {
			failedAfter++
			t.Errorf("call %d started %v after the kill failed: %v", i, r.start.Sub(killed).Round(time.Millisecond), r.err)
		} else {
			failedBefore++
		}
	}
	taken := []int{callsTaken(bots[0]), callsTaken(bots[1]), callsTaken(bots[2]), callsTaken(restartedBot)}
	t.Logf("calls taken: bot1 %d, bot2 %d (killed after %d calls started), bot3 %d, bot2 again %d (restarted %v after the kill); failed: %d started before the kill, %d after",
		taken[0], taken[1], killAt, taken[2], taken[3], restarted.Sub(killed).Round(time.Millisecond), failedBefore, failedAfter)
	for i, n := range taken {
		assert.Positive(t, n, "bot process %d took no call", i)
	}
	assert.Equal(t, total, taken[0]+taken[1]+taken[2]+taken[3], "every call reached a bot once")
	assert.Zero(t, failedAfter)

	// The registrar: each account reaches the process it registered from
	// (bot 2's restarted process registered again).
	procs := []*App{bots[0], restartedBot, bots[2]}
	for i, a := range procs {
		before := callsTaken(a)
		inv, err := sip.NewInviter(caller, fmt.Sprintf("sip:bot%d@%s", i+1, clusterDomain), sip.InviterOptions{})
		require.NoError(t, err)
		require.NoError(t, inv.Invite(ctx, sip.InviteOptions{}), "call to bot%d's account", i+1)
		require.NoError(t, inv.Bye(ctx))
		assert.Eventually(t, func() bool { return callsTaken(a) == before+1 }, 2*time.Second, 10*time.Millisecond,
			"bot%d's account is served by its process", i+1)
	}

	// Once the probes had found it dead, Kamailio sent it nothing.
	dest := fmt.Sprintf("to sip:127.0.0.1:%d", ports[1])
	detectToRestart := k.Log()[logAtDetect:logAtRestart]
	assert.NotContains(t, detectToRestart, dest, "a call went to the dead bot after the dispatcher should have marked it down")
	assert.Contains(t, k.Log()[logAtRestart:], dest, "the restarted bot is back in the dispatcher's rotation")
}

// clusterCall calls the pool, holds the call 300 ms and hangs up. Only the
// INVITE's failure counts: a call in progress on a bot that is killed
// cannot be hung up.
func clusterCall(ctx context.Context, caller *sip.UserAgent) error {
	inv, err := sip.NewInviter(caller, "sip:bots@"+clusterDomain, sip.InviterOptions{})
	if err != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := inv.Invite(ictx, sip.InviteOptions{}); err != nil {
		return err
	}
	if s := inv.State(); s != sip.SessionEstablished {
		return fmt.Errorf("state %v after Invite", s)
	}
	time.Sleep(300 * time.Millisecond)
	bctx, bcancel := context.WithTimeout(ctx, 3*time.Second)
	defer bcancel()
	_ = inv.Bye(bctx)
	return nil
}
