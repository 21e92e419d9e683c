package interop

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media/rtp"
)

// scrape fetches url and returns the value of the series that matches
// the regular expression series (a metric name with its labels).
func scrape(t *testing.T, url, series string) (float64, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^` + series + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return -1, string(body)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	return v, string(body)
}

// TestMetricsBotScrape: the bot example runs with -metrics behind
// Kamailio (examples/cluster's configuration, registered as bot1). Our
// UserAgent calls it through Kamailio with plain RTP; /metrics scraped
// during the call shows it active with its setup time, and after the
// hang-up shows it ended (answered, 200) with its duration, the
// registration and the connection.
func TestMetricsBotScrape(t *testing.T) {
	bin := BuildExamples(t, "bot")[0]
	ports, err := freePorts(2)
	require.NoError(t, err)
	k := startClusterKamailio(t, ports[:1])
	bot := startClusterBot(t, bin, k, 1, ports[0], "-metrics", fmt.Sprintf("127.0.0.1:%d", ports[1]))
	t.Cleanup(func() { _ = bot.Signal(syscall.SIGTERM) })
	bot.Expect(t, `^bot: metrics on http://127\.0\.0\.1:\d+/metrics$`)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[1])

	v, body := scrape(t, url, `sipua_registered\{aor="sip:bot1@cluster.test"\}`)
	assert.Equal(t, 1.0, v, body)
	v, body = scrape(t, url, `sipua_transport_connected`)
	assert.Equal(t, 1.0, v, body)

	caller, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:          "sip:caller@" + clusterDomain,
		Transport:    sip.TransportOptions{Server: "sip:127.0.0.1:" + strconv.Itoa(int(k.SIPPort))},
		MediaFactory: rtp.NewFactory(rtp.Config{IP: net.IPv4(127, 0, 0, 1)}),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, caller.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, caller.Stop(ctx))
	})
	inv, err := sip.NewInviter(caller, "sip:bot1@"+clusterDomain, sip.InviterOptions{})
	require.NoError(t, err)
	require.NoError(t, inv.Invite(ctx, sip.InviteOptions{}))
	bot.Expect(t, `^call 1: answered, playing the prompt$`)

	// During the call.
	v, body = scrape(t, url, `sipua_calls_active\{direction="incoming"\}`)
	assert.Equal(t, 1.0, v, body)
	v, body = scrape(t, url, `sipua_calls_started_total\{direction="incoming"\}`)
	assert.Equal(t, 1.0, v, body)
	require.Eventually(t, func() bool {
		v, _ := scrape(t, url, `sipua_call_setup_seconds_count\{direction="incoming"\}`)
		return v == 1
	}, 5*time.Second, 50*time.Millisecond, "the setup time is observed once the ACK arrives")
	setup, body := scrape(t, url, `sipua_call_setup_seconds_sum\{direction="incoming"\}`)
	assert.Greater(t, setup, 0.0, body)
	assert.Less(t, setup, 5.0, body)
	v, body = scrape(t, url, `sipua_calls_ended_total\{code="200",direction="incoming",outcome="answered"\}`)
	assert.Equal(t, -1.0, v, "not ended yet:\n%s", body)

	time.Sleep(time.Second)
	require.NoError(t, inv.Bye(ctx))
	bot.Expect(t, `^call 1: ended: remote BYE$`)

	// After it.
	require.Eventually(t, func() bool {
		v, _ := scrape(t, url, `sipua_calls_ended_total\{code="200",direction="incoming",outcome="answered"\}`)
		return v == 1
	}, 5*time.Second, 50*time.Millisecond)
	v, body = scrape(t, url, `sipua_calls_active\{direction="incoming"\}`)
	assert.Equal(t, 0.0, v, body)
	dur, body := scrape(t, url, `sipua_call_duration_seconds_sum\{direction="incoming"\}`)
	assert.GreaterOrEqual(t, dur, 1.0, body)
	v, body = scrape(t, url, `sipua_media_packets_received_total`)
	assert.Greater(t, v, 20.0, "the caller's RTP reached the bot:\n%s", body)
	t.Logf("setup %.3f s, duration %.3f s, RTP packets received %v", setup, dur, v)
}
