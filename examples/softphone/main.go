// Command softphone is a terminal SIP phone. It registers with a server
// and reads commands, one a line, from its standard input: register,
// unregister, call URI, answer, reject, hangup, hold, unhold, dtmf
// DIGITS, transfer URI (blind), atransfer (attended, between two calls),
// message URI TEXT, status, help and quit. It prints what happens as it
// happens — call states, DTMF and messages received, transfer progress —
// and a status line with each call's duration every -status-every while
// calls are up. No sound card is needed: -play sends a WAV file's audio
// and -record writes the audio received to a WAV file. Media are plain
// RTP (-media rtp) or WebRTC (-media webrtc).
//
//	go run ./examples/softphone -server 127.0.0.1 -domain sipua.test -user alice -password secret -record call.wav
//
// Flags may also come from environment variables (SIPUA_SERVER,
// SIPUA_USER, SIPUA_PASSWORD, SIPUA_DOMAIN, SIPUA_TRANSPORT, SIPUA_MEDIA,
// SIPUA_MEDIA_IP, SIPUA_CA). Exit codes: 0 after quit, the end of the
// input or a signal; 1 other failures; 2 wrong flags; 3 server
// unreachable; 4 authentication failed.
package main

import (
	"bufio"
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

	"github.com/sipua/sip/examples/internal/cli"
	"github.com/sipua/sip/media/wav"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// options are the softphone's settings, from its flags.
type options struct {
	acct        *cli.Account
	register    bool
	play        []int16 // the -play file's samples, nil for silence
	loop        bool
	record      string
	dtmf        string // "rtp" or "info"
	statusEvery time.Duration
	logger      *slog.Logger
}

// run is the program: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return cli.ExitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "softphone:", err)
		return cli.ExitCode(err)
	}
	p, err := newPhone(opts, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "softphone:", err)
		return cli.ExitCode(err)
	}
	if err := p.start(ctx); err != nil {
		p.stop()
		if ctx.Err() != nil { // a signal, not the server
			fmt.Fprintln(stderr, "softphone: interrupted while starting")
			return cli.ExitOK
		}
		fmt.Fprintln(stderr, "softphone:", cli.Explain(err, opts.acct))
		return cli.ExitCode(err)
	}
	defer p.stop()
	p.out.printf("ready: %s; type help for the commands", p.ua.URI())

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 4096), 64*1024)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	var tick <-chan time.Time
	if opts.statusEvery > 0 {
		t := time.NewTicker(opts.statusEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return cli.ExitOK
		case <-tick:
			p.periodicStatus()
		case line, ok := <-lines:
			if !ok {
				return cli.ExitOK
			}
			if p.exec(ctx, line) {
				return cli.ExitOK
			}
		}
	}
}

// parseFlags reads the flags and the files they name.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("softphone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	o.acct = cli.AddFlags(fs, getenv)
	noReg := fs.Bool("no-register", false, "do not register at start (the register command still does)")
	play := fs.String("play", "", "WAV file whose audio each call sends (default: silence)")
	fs.BoolVar(&o.loop, "loop", false, "play the -play file in a loop")
	fs.StringVar(&o.record, "record", "", "WAV file the audio received is written to (call 2 goes to NAME-2.wav, …)")
	fs.StringVar(&o.dtmf, "dtmf", "rtp", "how dtmf sends tones: rtp (RFC 4733, falling back to INFO when the call has no telephone-event) or info")
	fs.DurationVar(&o.statusEvery, "status-every", 15*time.Second, "print the calls' status this often while calls are up (0: never)")
	verbose := fs.Bool("v", false, "log the SIP stack's debug records to stderr")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: softphone -server HOST[:PORT] -user NAME [-password PW] [flags]\n\n"+
			"A terminal SIP phone; commands are read one a line from standard input (type help).\n"+
			"Exit codes: 0 quit or end of input, 1 failure, 2 wrong flags, 3 server unreachable, 4 authentication failed.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected arguments %q (commands go to standard input)", cli.ErrUsage, fs.Args())
	}
	if err := o.acct.Check(); err != nil {
		return o, err
	}
	if o.dtmf != "rtp" && o.dtmf != "info" {
		return o, fmt.Errorf("%w: -dtmf %q: want rtp or info", cli.ErrUsage, o.dtmf)
	}
	if o.statusEvery < 0 {
		return o, fmt.Errorf("%w: negative -status-every", cli.ErrUsage)
	}
	o.register = !*noReg
	if *play != "" {
		s, err := wav.ReadFile(*play)
		if err != nil {
			return o, fmt.Errorf("%w: -play: %w", cli.ErrUsage, err)
		}
		o.play = s
	}
	if o.record != "" {
		// Fail now, not at the first call, when the file cannot be written.
		w, err := wav.Create(o.record)
		if err != nil {
			return o, fmt.Errorf("%w: -record: %w", cli.ErrUsage, err)
		}
		_ = w.Close()
	}
	if *verbose {
		o.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return o, nil
}
