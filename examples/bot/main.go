// Command bot answers SIP calls, many at once: it plays a prompt (a WAV
// file, or two beeps), prints the DTMF digits each caller sends (e.g.
// "call 3: digits 1234#") and then echoes the caller's audio back. Media
// are plain RTP (-media rtp) or WebRTC (-media webrtc). Its core is the
// importable package botcore.
//
//	go run ./examples/bot -server sip.example.com -user bot -password secret -prompt hello.wav
//
// Flags may also come from environment variables (SIPUA_SERVER,
// SIPUA_USER, SIPUA_PASSWORD, SIPUA_DOMAIN, SIPUA_TRANSPORT, SIPUA_MEDIA,
// SIPUA_MEDIA_IP, SIPUA_CA). With -listen it also takes calls sent
// straight to a local address (e.g. from a load balancer such as
// Kamailio's dispatcher: see examples/cluster); with -metrics ADDR it
// serves Prometheus metrics on http://ADDR/metrics (metrics/prom). With
// -account user:password (repeatable) or -accounts FILE (one user:password
// a line) it answers on several accounts from one process, sharing one
// socket or connection (a sip.Stack). Exit codes: 0 after SIGINT/SIGTERM,
// 1 other failures, 2 wrong flags, 3 server unreachable, 4 authentication
// failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sipua/sip/examples/bot/botcore"
	"github.com/sipua/sip/examples/internal/cli"
	"github.com/sipua/sip/media/wav"
	"github.com/sipua/sip/metrics/prom"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the program: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, acct, metricsAddr, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return cli.ExitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "bot:", err)
		return cli.ExitCode(err)
	}
	cfg.OnEvent = func(e botcore.Event) { fmt.Fprintln(stdout, e) }
	if metricsAddr != "" {
		stopMetrics, addr, err := serveMetrics(metricsAddr, &cfg)
		if err != nil {
			fmt.Fprintln(stderr, "bot:", err)
			return cli.ExitUsage
		}
		defer stopMetrics()
		fmt.Fprintf(stdout, "bot: metrics on http://%s/metrics\n", addr)
	}
	tr, err := cli.OpenTrace(acct.TracePath, acct.TraceSecrets, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bot:", err)
		return cli.ExitUsage
	}
	defer func() {
		if err := tr.Close(); err != nil {
			fmt.Fprintln(stderr, "bot:", err)
		}
	}()
	if tr != nil {
		cfg.Tracer = tr.Tracer
	}
	b, err := botcore.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "bot:", err)
		return cli.ExitUsage
	}
	fmt.Fprintf(stdout, "bot: %s via %s, %s media\n", cfg.URI, cfg.Server, cfg.Media)
	if len(cfg.Accounts) > 0 {
		fmt.Fprintf(stdout, "bot: %d more accounts on the same stack\n", len(cfg.Accounts))
	}
	// Connecting and registering must succeed within -timeout.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- b.Run(runCtx) }()
	select {
	case <-b.Ready():
	case err := <-errc:
		return fail(ctx, stderr, err, acct)
	case <-time.After(acct.Timeout):
		cancel()
		err := <-errc
		if err == nil {
			err = context.DeadlineExceeded
		}
		return fail(ctx, stderr, err, acct)
	}
	if err := <-errc; err != nil {
		return fail(ctx, stderr, err, acct)
	}
	return cli.ExitOK
}

func fail(ctx context.Context, stderr io.Writer, err error, acct *cli.Account) int {
	if ctx.Err() != nil { // a signal, not the server
		fmt.Fprintln(stderr, "bot: interrupted while starting")
		return cli.ExitOK
	}
	fmt.Fprintln(stderr, "bot:", cli.Explain(err, acct))
	return cli.ExitCode(err)
}

// parse reads the flags into a botcore.Config.
func parse(args []string, getenv func(string) string, stderr io.Writer) (cfg botcore.Config, acct *cli.Account, metricsAddr string, err error) {
	fs := flag.NewFlagSet("bot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	acct = cli.AddFlags(fs, getenv)
	listen := fs.String("listen", "", "comma-separated local addresses to take calls on directly, e.g. udp://127.0.0.1:5070 (a load balancer's destination); a UDP one is also used to reach -server")
	metrics := fs.String("metrics", "", "serve Prometheus metrics on http://ADDR/metrics, e.g. 127.0.0.1:9100")
	prompt := fs.String("prompt", "", "WAV file played to each caller (default: two beeps)")
	maxCalls := fs.Int("max-calls", botcore.DefaultMaxCalls, "calls at once; more are answered 486")
	maxDur := fs.Duration("max-duration", botcore.DefaultMaxCallDuration, "longest call; the bot hangs up then")
	noReg := fs.Bool("no-register", false, "do not register")
	verbose := fs.Bool("v", false, "log the SIP stack's debug records to stderr")
	var more accountFlags
	fs.Var(&more, "account", "one more account, user:password (user or user@domain); repeatable: all share one socket/connection")
	accountsFile := fs.String("accounts", "", "file of more accounts, one user:password a line (# comments)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bot -server HOST[:PORT] -user NAME [-password PW] [flags]\n\n"+
			"Answers calls, plays a prompt, prints DTMF digits, echoes the caller's audio.\n"+
			"Exit codes: 0 stopped by a signal, 1 failure, 2 wrong flags, 3 server unreachable, 4 authentication failed.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return botcore.Config{}, acct, "", err
		}
		return botcore.Config{}, acct, "", fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return botcore.Config{}, acct, "", fmt.Errorf("%w: unexpected arguments %q", cli.ErrUsage, fs.Args())
	}
	if *accountsFile != "" {
		if err := more.readFile(*accountsFile); err != nil {
			return botcore.Config{}, acct, "", err
		}
	}
	if len(more) > 0 && acct.User == "" {
		// The first account stands for -user and -password.
		acct.User, acct.Password = more[0].user, more[0].password
		more = more[1:]
	}
	if err := acct.Check(); err != nil {
		return botcore.Config{}, acct, "", err
	}
	server, _ := acct.ServerAddress()
	tlsConf, err := acct.TLSConfig()
	if err != nil {
		return botcore.Config{}, acct, "", err
	}
	cfg = botcore.Config{
		URI: acct.AOR(), Password: acct.Password, Server: server, TLSConfig: tlsConf,
		NoRegister: *noReg, Media: botcore.MediaKind(acct.Media),
		RTP: acct.RTPConfig(), WebRTC: acct.WebRTCConfig(),
		MaxCalls: *maxCalls, MaxCallDuration: *maxDur,
	}
	for _, m := range more {
		cfg.Accounts = append(cfg.Accounts, botcore.Account{URI: m.aor(acct), Password: m.password})
	}
	if *listen != "" {
		cfg.Listen = strings.Split(*listen, ",")
	}
	if *maxCalls < 1 || *maxDur <= 0 {
		return cfg, acct, "", fmt.Errorf("%w: -max-calls and -max-duration must be positive", cli.ErrUsage)
	}
	if *prompt != "" {
		s, err := wav.ReadFile(*prompt)
		if err != nil {
			return cfg, acct, "", fmt.Errorf("%w: -prompt: %w", cli.ErrUsage, err)
		}
		cfg.Prompt = s
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg, acct, *metrics, nil
}

// serveMetrics serves cfg's UserAgent's metrics on http://addr/metrics
// until stop is called; it returns the address listened on.
func serveMetrics(addr string, cfg *botcore.Config) (stop func(), bound string, err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("-metrics: %w", err)
	}
	m := prom.New(prom.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Observer = m.Observer()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l) // ErrServerClosed after Close
	}()
	return func() {
		srv.Close()
		<-done
	}, l.Addr().String(), nil
}

// accountFlag is one account of -account or -accounts.
type accountFlag struct{ user, password string }

// aor returns the account's address of record: user@domain as given, or
// the user in acct's domain.
func (a accountFlag) aor(acct *cli.Account) string {
	if strings.Contains(a.user, "@") {
		return "sip:" + a.user
	}
	c := *acct
	c.User = a.user
	return c.AOR()
}

// accountFlags is the repeatable -account flag.
type accountFlags []accountFlag

func (f *accountFlags) String() string { return fmt.Sprint(len(*f), " accounts") }

// Set takes "user:password" (the password may contain colons).
func (f *accountFlags) Set(v string) error {
	user, pw, _ := strings.Cut(v, ":")
	user = strings.TrimPrefix(strings.TrimSpace(user), "sip:")
	if user == "" || strings.ContainsAny(user, " \t;<>") {
		return fmt.Errorf("account %q: want user:password", v)
	}
	*f = append(*f, accountFlag{user: user, password: pw})
	return nil
}

// readFile adds the accounts of a file: one user:password a line; blank
// lines and lines starting with # are skipped.
func (f *accountFlags) readFile(name string) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("%w: -accounts: %w", cli.ErrUsage, err)
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := f.Set(line); err != nil {
			return fmt.Errorf("%w: -accounts %s line %d: %w", cli.ErrUsage, name, i+1, err)
		}
	}
	return nil
}
