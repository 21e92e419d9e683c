// Command webphone is a browser-to-Go call on this machine, with nothing to
// configure: it serves a web page with SIP.js on http://127.0.0.1:8080/,
// runs an embedded registrar and proxy (siptest/sipserver) on a loopback
// WebSocket, and the bot of examples/bot (package botcore) on a sipua
// UserAgent that registers there as sip:bot@sipua.test. Open the page,
// press Register, then Call: the bot answers with WebRTC audio (pion),
// plays its prompt (two beeps), echoes what your microphone sends, and
// collects the DTMF digits you press on the page's keypad (RFC 4733, or
// SIP INFO when ticked), which the page shows; Hang up ends the call. The page shows the call's state,
// its duration, the media counters of both ends and the bot's view.
//
//	go run ./examples/webphone                 # then open http://127.0.0.1:8080/
//	go run ./examples/webphone -http 127.0.0.1:0 -v -pcap bot.pcap
//	go run ./examples/webphone -server ws://127.0.0.1:8080/ -domain sipua.test \
//	    -bot-user carol -bot-password carol-secret -web-user eve -web-password eve-secret
//
// The last form uses an existing SIP-over-WebSocket server such as Kamailio
// (see interop/kamailio) instead of the embedded one; both users must exist
// there.
//
// Exit status: 0 after SIGINT or SIGTERM, 2 for a wrong command line, 1
// when it cannot start (no SIP.js, a port in use, the server unreachable
// or the credentials refused).
//
// SIP.js 0.21.2 is served from interop/node/node_modules/sip.js/lib, which
// ./interop/install.sh (run by ./scripts/test.sh) installs: the program
// looks for it in the working directory and its parents, and -sipjs names
// another copy. It is not embedded because this repository does not carry
// third-party code in its tree.
//
// A browser gives a page the microphone only in a secure context: open the
// page as http://127.0.0.1 or http://localhost (or put it behind HTTPS).
// Loopback candidates are used when the browser offers them (Chromium with
// --allow-loopback-in-peer-connection, as the test runs it); otherwise the
// bot's host candidates on the machine's other interfaces serve.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sipua/sip/siptest/sipserver"
	"github.com/sipua/sip/trace"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var usage usageError
		switch {
		case errors.Is(err, flag.ErrHelp):
			os.Exit(2)
		case errors.As(err, &usage):
			fmt.Fprintln(os.Stderr, "webphone:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "webphone:", err)
		os.Exit(1)
	}
}

// usageError is a wrong command line (exit status 2; other failures 1).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// run parses the flags, starts the webphone and serves until SIGINT or
// SIGTERM.
func run(args []string, stdout, stderr io.Writer) error {
	cfg, verbose, traceSIP, pcap, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if pcap != "" {
		f, err := os.Create(pcap)
		if err != nil {
			return fmt.Errorf("pcap: %w", err)
		}
		defer f.Close()
		w, err := trace.NewPcapWriter(f)
		if err != nil {
			return fmt.Errorf("pcap: %w", err)
		}
		cfg.Tracer = w
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if traceSIP {
		start := time.Now()
		cfg.OnSIP = func(e sipserver.Event) { fmt.Fprintf(stdout, "%8.3fs  %s\n", time.Since(start).Seconds(), e) }
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	a, err := start(startCtx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Fprintf(stdout, "webphone: open %s (SIP over %s; the bot is %s; Ctrl-C stops)\n",
		a.URL, a.WSURL, "sip:"+a.cfg.BotUser+"@"+a.cfg.Domain)
	<-ctx.Done()
	fmt.Fprintln(stdout, "webphone: stopping")
	return nil
}

// parseFlags reads the command line into a config.
func parseFlags(args []string, stderr io.Writer) (cfg config, verbose, traceSIP bool, pcap string, err error) {
	fs := flag.NewFlagSet("webphone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.HTTP, "http", "127.0.0.1:8080", "address to serve the page on (port 0: any free port)")
	fs.StringVar(&cfg.Server, "server", "", "SIP-over-WebSocket server to use instead of the embedded registrar, e.g. ws://127.0.0.1:8080/ (Kamailio)")
	fs.StringVar(&cfg.Domain, "domain", sipserver.DefaultDomain, "SIP domain of the bot and the page's user")
	fs.StringVar(&cfg.BotUser, "bot-user", "bot", "the bot's user name")
	fs.StringVar(&cfg.BotPassword, "bot-password", "bot-secret", "the bot's password")
	fs.StringVar(&cfg.WebUser, "web-user", "alice", "the page's user name (filled into its form)")
	fs.StringVar(&cfg.WebPassword, "web-password", "alice-secret", "the page's password")
	fs.StringVar(&cfg.SIPJS, "sipjs", "", "directory of SIP.js 0.21.2's lib/ (default: interop/node/node_modules/sip.js/lib, looked up from the working directory)")
	fs.BoolVar(&verbose, "v", false, "log debug details (SIP, media) to stderr")
	fs.BoolVar(&traceSIP, "trace", false, "print every SIP message the embedded registrar handles")
	fs.StringVar(&pcap, "pcap", "", "write the bot's SIP messages to this pcap file (tshark -r FILE -Y sip, sngrep -I FILE, Wireshark)")
	if err = fs.Parse(args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			err = usageError{err}
		}
		return
	}
	if fs.NArg() > 0 {
		err = usageError{fmt.Errorf("unexpected arguments %q (flags only; -h lists them)", fs.Args())}
	}
	return
}
