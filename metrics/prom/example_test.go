package prom_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/metrics/prom"
)

// A UserAgent whose metrics are served on /metrics; here it sends an
// OPTIONS to itself and the scrape shows the transaction.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	m := prom.New(prom.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:       "sip:bot@127.0.0.1",
		Transport: sip.TransportOptions{Listen: []string{"tcp://127.0.0.1:0"}},
		Observer:  m.Observer(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := ua.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer ua.Stop(ctx)
	if _, err := ua.Options(ctx, ua.ContactURI().String(), sip.RequestOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	// Over TCP the transactions end at once (no Timer K wait).
	time.Sleep(100 * time.Millisecond)
	resp, err := http.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "sipua_transactions_total") {
			fmt.Println(line)
		}
	}
	// Output:
	// sipua_transactions_total{kind="client",method="OPTIONS"} 1
	// sipua_transactions_total{kind="server",method="OPTIONS"} 1
}
