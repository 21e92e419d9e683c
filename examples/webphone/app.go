package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	pion "github.com/pion/webrtc/v4"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/examples/bot/botcore"
	"github.com/sipua/sip/media/webrtc"
	"github.com/sipua/sip/siptest/sipserver"
	"github.com/sipua/sip/trace"
)

// The page and its script are ours and go into the binary. SIP.js is not:
// see findSIPJS.
//
//go:embed web
var webFiles embed.FS

// config is what the flags set; the zero value of each field means its
// default (see defaults).
type config struct {
	// HTTP is the address the page is served on.
	HTTP string
	// Server is the SIP-over-WebSocket server the page and the bot use,
	// e.g. Kamailio's ws://127.0.0.1:8080/. Empty: an embedded
	// registrar and proxy (siptest/sipserver) on a loopback WebSocket.
	Server string
	// Domain is the SIP domain of both users.
	Domain string
	// BotUser and BotPassword are the bot's credentials; WebUser and
	// WebPassword the page's (filled into its form).
	BotUser, BotPassword string
	WebUser, WebPassword string
	// SIPJS is the directory holding SIP.js 0.21.2's lib/ (index.js).
	// Empty: found by findSIPJS.
	SIPJS string
	// Logger gets the program's logs; nil discards them.
	Logger *slog.Logger
	// OnSIP, when set, sees every SIP message the embedded server
	// handles.
	OnSIP func(sipserver.Event)
	// Tracer, when set, sees every SIP message the bot's UserAgent sends
	// and receives (e.g. a trace.PcapWriter).
	Tracer trace.Tracer
}

func (c *config) defaults() {
	if c.HTTP == "" {
		c.HTTP = "127.0.0.1:8080"
	}
	if c.Domain == "" {
		c.Domain = sipserver.DefaultDomain
	}
	if c.BotUser == "" {
		c.BotUser, c.BotPassword = "bot", "bot-secret"
	}
	if c.WebUser == "" {
		c.WebUser, c.WebPassword = "alice", "alice-secret"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// app is the running webphone: registrar (unless external), bot UA and
// page server.
type app struct {
	cfg    config
	srv    *sipserver.Server // nil with an external server
	ua     *sip.UserAgent
	bot    answerer
	closer func()
	http   *http.Server
	// URL is where the page is served, e.g. http://127.0.0.1:8080/.
	URL string
	// WSURL is the SIP server the page connects to.
	WSURL string
}

// pageConfig is /config.json: what the page needs to register and call.
type pageConfig struct {
	Server   string `json:"server"`
	Domain   string `json:"domain"`
	User     string `json:"user"`
	Password string `json:"password"`
	Target   string `json:"target"`
}

// start runs everything; Close stops it.
func start(ctx context.Context, cfg config) (a *app, err error) {
	cfg.defaults()
	sipjs, err := findSIPJS(cfg.SIPJS)
	if err != nil {
		return nil, err
	}
	a = &app{cfg: cfg, WSURL: cfg.Server}
	defer func() {
		if err != nil {
			a.Close()
			a = nil
		}
	}()

	if a.WSURL == "" {
		a.srv, err = sipserver.New(sipserver.Options{
			Domain:    cfg.Domain,
			Users:     map[string]string{cfg.BotUser: cfg.BotPassword, cfg.WebUser: cfg.WebPassword},
			ProxyAuth: true,
			Listen:    []string{"ws://127.0.0.1:0"},
			Logger:    cfg.Logger.With("part", "registrar"),
			OnEvent:   cfg.OnSIP,
		})
		if err != nil {
			return a, err
		}
		if err = a.srv.Start(ctx); err != nil {
			return a, err
		}
		a.WSURL = a.srv.WSURL()
	}

	mediaLevel := slog.LevelWarn
	if cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		mediaLevel = slog.LevelDebug
	}
	uri := "sip:" + cfg.BotUser + "@" + cfg.Domain
	b, err := newBot(botcore.Config{
		URI:    uri,
		Media:  botcore.WebRTC,
		Logger: cfg.Logger.With("part", "bot"),
		// Host candidates on every interface, loopback included (pion
		// skips it by default), over UDP/IPv4: a browser on this machine
		// reaches the bot over 127.0.0.1 (the page keeps only those
		// candidates when it has any), one elsewhere over the LAN.
		WebRTC: webrtc.Config{
			IncludeLoopback: true,
			NetworkTypes:    []pion.NetworkType{pion.NetworkTypeUDP4},
			Logger:          slog.New(atLeast{cfg.Logger.Handler(), mediaLevel}).With("part", "media"),
		},
	})
	if err != nil {
		return a, err
	}
	a.bot, a.closer = b, b.Close
	a.ua, err = sip.NewUserAgent(sip.UserAgentOptions{
		URI:                   uri,
		AuthorizationPassword: cfg.BotPassword,
		UserAgentString:       "sipua webphone bot",
		Transport:             sip.TransportOptions{Server: a.WSURL},
		MediaFactory:          b.core.MediaFactory(),
		Delegate:              sip.UserAgentDelegate{OnInvite: a.bot.Invite},
		Logger:                cfg.Logger.With("part", "ua"),
		Tracer:                cfg.Tracer,
	})
	if err != nil {
		return a, err
	}
	if err = a.ua.Start(ctx); err != nil {
		return a, fmt.Errorf("bot: connect to %s: %w", a.WSURL, err)
	}
	reg, err := sip.NewRegisterer(a.ua, sip.RegistererOptions{})
	if err != nil {
		return a, err
	}
	if err = reg.Register(ctx, sip.RegisterOptions{}); err != nil {
		return a, fmt.Errorf("bot: register at %s: %w", a.WSURL, err)
	}

	l, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return a, fmt.Errorf("page: %w", err)
	}
	a.URL = "http://" + l.Addr().String() + "/"
	a.http = &http.Server{Handler: a.handler(sipjs), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.http.Serve(l) }()
	return a, nil
}

// Close stops the page server, the bot (hanging up its calls) and the
// registrar.
func (a *app) Close() {
	if a.http != nil {
		_ = a.http.Close()
	}
	if a.closer != nil {
		a.closer()
	}
	if a.ua != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = a.ua.Stop(ctx)
		cancel()
	}
	if a.srv != nil {
		_ = a.srv.Close()
	}
}

// handler serves the page (/), its script, SIP.js (/sipjs/), the page's
// settings (/config.json) and the bot's calls (/bot.json).
func (a *app) handler(sipjs string) http.Handler {
	page, _ := fs.Sub(webFiles, "web")
	mux := http.NewServeMux()
	mux.Handle("/sipjs/", http.StripPrefix("/sipjs/", http.FileServer(http.Dir(sipjs))))
	mux.Handle("/", http.FileServer(http.FS(page)))
	mux.HandleFunc("/config.json", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, pageConfig{
			Server: a.WSURL, Domain: a.cfg.Domain, User: a.cfg.WebUser, Password: a.cfg.WebPassword,
			Target: "sip:" + a.cfg.BotUser + "@" + a.cfg.Domain,
		})
	})
	mux.HandleFunc("/bot.json", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"user": a.cfg.BotUser, "calls": a.bot.Calls()})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Module scripts need a JavaScript MIME type, whatever the
		// system's MIME tables say.
		switch filepath.Ext(r.URL.Path) {
		case ".js", ".mjs":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		}
		w.Header().Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// sipjsPath is where interop/install.sh (which ./scripts/test.sh runs)
// installs SIP.js, relative to the repository's root.
var sipjsPath = filepath.Join("interop", "node", "node_modules", "sip.js", "lib")

// errNoSIPJS is returned when SIP.js cannot be found.
var errNoSIPJS = errors.New("SIP.js 0.21.2 not found: run ./interop/install.sh (./scripts/test.sh does), " +
	"or `npm install sip.js@0.21.2` and pass -sipjs node_modules/sip.js/lib")

// findSIPJS returns dir when it holds SIP.js's index.js, or, when dir is
// empty, interop/node/node_modules/sip.js/lib in the working directory or
// the nearest of its parents that has it (so that the program works from
// anywhere inside a clone).
//
// SIP.js is served from disk rather than embedded: it is a third-party
// library of some 2.5 MB that this repository does not copy into its
// tree, and the test command installs it anyway (npm ci, pinned by
// interop/node/package-lock.json).
func findSIPJS(dir string) (string, error) {
	ok := func(d string) bool {
		_, err := os.Stat(filepath.Join(d, "index.js"))
		return err == nil
	}
	if dir != "" {
		if !ok(dir) {
			return "", fmt.Errorf("%w (no index.js in %s)", errNoSIPJS, dir)
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: %w", errNoSIPJS, err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if c := filepath.Join(d, sipjsPath); ok(c) {
			return c, nil
		}
		if filepath.Dir(d) == d {
			return "", errNoSIPJS
		}
	}
}

// atLeast passes on the records of at least level min (pion's Info
// records are a running commentary of ICE and DTLS; -v shows them).
type atLeast struct {
	slog.Handler
	min slog.Level
}

// Enabled reports whether l is at least min and the handler takes it.
func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

// WithAttrs keeps the minimum on the new handler.
func (h atLeast) WithAttrs(as []slog.Attr) slog.Handler {
	return atLeast{h.Handler.WithAttrs(as), h.min}
}

// WithGroup keeps the minimum on the new handler.
func (h atLeast) WithGroup(g string) slog.Handler { return atLeast{h.Handler.WithGroup(g), h.min} }
