// Package cli holds what the softphone and bot examples share: the
// account flags (each with an environment variable as its default), the
// server address built from them, and the programs' exit codes.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media/rtp"
	"github.com/sipua/sip/media/webrtc"
	"github.com/sipua/sip/message"
)

// Exit codes of the example programs.
const (
	// ExitOK: a clean end (quit, end of input, a signal).
	ExitOK = 0
	// ExitError: any other failure.
	ExitError = 1
	// ExitUsage: wrong flags or environment variables.
	ExitUsage = 2
	// ExitUnreachable: the server could not be reached (no connection,
	// no answer to REGISTER) within -timeout.
	ExitUnreachable = 3
	// ExitAuth: the server refused the credentials.
	ExitAuth = 4
)

// ErrUsage reports wrong flags.
var ErrUsage = errors.New("usage")

// Account is what the flags say about the SIP account and media.
type Account struct {
	Server    string
	User      string
	Password  string
	Domain    string
	Transport string
	Media     string
	MediaIP   string
	// SRTP is -srtp: media/rtp's SDES-SRTP policy (off, offer, required).
	SRTP string
	// Codecs is -codecs: media/rtp's codecs in order, comma-separated.
	Codecs  string
	CAFile  string
	Timeout time.Duration
	// TracePath is -trace: where the SIP messages are logged (OpenTrace).
	TracePath string
	// TraceSecrets is -trace-secrets: keep the credentials in the trace
	// (by default trace.Redact blots them out).
	TraceSecrets bool
}

// Environment variables read by AddFlags, one per flag.
const (
	EnvServer    = "SIPUA_SERVER"
	EnvUser      = "SIPUA_USER"
	EnvPassword  = "SIPUA_PASSWORD"
	EnvDomain    = "SIPUA_DOMAIN"
	EnvTransport = "SIPUA_TRANSPORT"
	EnvMedia     = "SIPUA_MEDIA"
	EnvMediaIP   = "SIPUA_MEDIA_IP"
	EnvCAFile    = "SIPUA_CA"
	EnvSRTP      = "SIPUA_SRTP"
	EnvCodecs    = "SIPUA_CODECS"
)

// AddFlags defines the account flags on fs, their defaults taken from
// the environment through getenv, and returns the Account they fill.
func AddFlags(fs *flag.FlagSet, getenv func(string) string) *Account {
	a := &Account{}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&a.Server, "server", env(EnvServer, ""),
		"registrar/proxy: host[:port], or a full address (sip:host:port;transport=tcp, sips:host, ws://host:port/path, wss://…) [$"+EnvServer+"]")
	fs.StringVar(&a.User, "user", env(EnvUser, ""), "SIP user name [$"+EnvUser+"]")
	fs.StringVar(&a.Password, "password", env(EnvPassword, ""), "digest password [$"+EnvPassword+"]")
	fs.StringVar(&a.Domain, "domain", env(EnvDomain, ""), "SIP domain of the address of record (default: the server's host) [$"+EnvDomain+"]")
	fs.StringVar(&a.Transport, "transport", env(EnvTransport, ""), "udp, tcp, tls, ws or wss, when -server is host[:port] (default udp) [$"+EnvTransport+"]")
	fs.StringVar(&a.Media, "media", env(EnvMedia, "rtp"), "media handler: rtp (plain RTP/AVP: G.711, G.722, SDES-SRTP) or webrtc (ICE, DTLS-SRTP) [$"+EnvMedia+"]")
	fs.StringVar(&a.MediaIP, "media-ip", env(EnvMediaIP, ""), "local IP address for media (default: the first non-loopback IPv4 address; with 127.0.0.1, webrtc keeps to loopback) [$"+EnvMediaIP+"]")
	fs.StringVar(&a.SRTP, "srtp", env(EnvSRTP, "off"), "with -media rtp, SDES-SRTP: off, offer (RTP/AVP with a=crypto: SRTP when the peer takes it) or required (RTP/SAVP) [$"+EnvSRTP+"]")
	fs.StringVar(&a.Codecs, "codecs", env(EnvCodecs, "PCMU,PCMA"), "with -media rtp, the codecs in order of preference, from G722, PCMU, PCMA [$"+EnvCodecs+"]")
	fs.StringVar(&a.CAFile, "ca", env(EnvCAFile, ""), "PEM file of the CA certificates that sign the TLS/WSS server's certificate (default: the system's) [$"+EnvCAFile+"]")
	fs.DurationVar(&a.Timeout, "timeout", 10*time.Second, "how long connecting and registering may take")
	fs.StringVar(&a.TracePath, "trace", "", "log every SIP message sent and received: to FILE.pcap as a pcap capture (tshark, Wireshark, sngrep), to another FILE as text, or to stderr with -; credentials are replaced by REDACTED")
	fs.BoolVar(&a.TraceSecrets, "trace-secrets", false, "keep the credentials (the digest response of Authorization and Proxy-Authorization) in the -trace log")
	return a
}

// Check validates the account; its errors wrap ErrUsage.
func (a *Account) Check() error {
	if a.Server == "" {
		return fmt.Errorf("%w: -server (or $%s) is required", ErrUsage, EnvServer)
	}
	if a.User == "" {
		return fmt.Errorf("%w: -user (or $%s) is required", ErrUsage, EnvUser)
	}
	if _, err := a.ServerAddress(); err != nil {
		return err
	}
	if _, err := message.ParseURI(a.AOR()); err != nil {
		return fmt.Errorf("%w: address of record %q: %w", ErrUsage, a.AOR(), err)
	}
	switch a.Media {
	case "rtp", "webrtc":
	default:
		return fmt.Errorf("%w: -media %q: want rtp or webrtc", ErrUsage, a.Media)
	}
	if _, err := a.srtpPolicy(); err != nil {
		return err
	}
	if _, err := a.codecs(); err != nil {
		return err
	}
	if a.MediaIP != "" && net.ParseIP(a.MediaIP) == nil {
		return fmt.Errorf("%w: -media-ip %q is not an IP address", ErrUsage, a.MediaIP)
	}
	if a.Timeout <= 0 {
		return fmt.Errorf("%w: -timeout must be positive", ErrUsage)
	}
	return nil
}

// full reports a server given as a complete address.
func full(s string) bool {
	return strings.Contains(s, "://") || strings.HasPrefix(s, "sip:") || strings.HasPrefix(s, "sips:")
}

// ServerAddress returns the server as sip.TransportOptions.Server wants
// it: -server as given when it is a full address (then -transport must be
// empty or agree), else built from host[:port] and -transport.
func (a *Account) ServerAddress() (string, error) {
	t := strings.ToLower(a.Transport)
	if full(a.Server) {
		if t != "" {
			var want bool
			switch t {
			case "ws", "wss":
				want = strings.HasPrefix(a.Server, t+"://")
			case "tls":
				want = strings.HasPrefix(a.Server, "sips:") || strings.Contains(a.Server, "transport=tls")
			default:
				want = strings.Contains(strings.ToLower(a.Server), "transport="+t) ||
					(t == "udp" && strings.HasPrefix(a.Server, "sip:") && !strings.Contains(a.Server, "transport="))
			}
			if !want {
				return "", fmt.Errorf("%w: -transport %s does not match -server %s: give the transport in one of them", ErrUsage, t, a.Server)
			}
		}
		return a.Server, nil
	}
	host := a.Server
	if strings.ContainsAny(host, "/;@ ") {
		return "", fmt.Errorf("%w: -server %q: want host[:port] or a sip:, sips:, ws:// or wss:// address", ErrUsage, a.Server)
	}
	switch t {
	case "", "udp":
		return "sip:" + host, nil
	case "tcp":
		return "sip:" + host + ";transport=tcp", nil
	case "tls":
		return "sips:" + host, nil
	case "ws":
		return "ws://" + host + "/", nil
	case "wss":
		return "wss://" + host + "/", nil
	}
	return "", fmt.Errorf("%w: -transport %q: want udp, tcp, tls, ws or wss", ErrUsage, a.Transport)
}

// serverHost returns the host of the server address.
func (a *Account) serverHost() string {
	s := a.Server
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	} else if u, err := message.ParseURI(s); err == nil && full(s) {
		return u.Host
	}
	s, _, _ = strings.Cut(s, "/")
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// AOR returns the address of record, sip:user@domain.
func (a *Account) AOR() string {
	d := a.Domain
	if d == "" {
		d = a.serverHost()
	}
	if strings.Contains(d, ":") && !strings.HasPrefix(d, "[") {
		d = "[" + d + "]"
	}
	return "sip:" + a.User + "@" + d
}

// TLSConfig returns the TLS configuration for -ca, or nil.
func (a *Account) TLSConfig() (*tls.Config, error) {
	if a.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(a.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: -ca: %w", ErrUsage, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: -ca %s holds no PEM certificate", ErrUsage, a.CAFile)
	}
	return &tls.Config{RootCAs: pool}, nil
}

// RTPConfig returns the media/rtp configuration for -media-ip, -srtp
// and -codecs (Check has validated them).
func (a *Account) RTPConfig() rtp.Config {
	pol, _ := a.srtpPolicy()
	codecs, _ := a.codecs()
	return rtp.Config{IP: net.ParseIP(a.MediaIP), SRTP: pol, Codecs: codecs}
}

// srtpPolicy reads -srtp.
func (a *Account) srtpPolicy() (rtp.SRTPPolicy, error) {
	for _, p := range []rtp.SRTPPolicy{rtp.SRTPOff, rtp.SRTPOffer, rtp.SRTPRequired} {
		if strings.EqualFold(a.SRTP, p.String()) || (a.SRTP == "" && p == rtp.SRTPOff) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: -srtp %q: want off, offer or required", ErrUsage, a.SRTP)
}

// codecs reads -codecs.
func (a *Account) codecs() ([]rtp.Codec, error) {
	var out []rtp.Codec
	for _, name := range strings.Split(a.Codecs, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		found := false
		for _, c := range []rtp.Codec{rtp.G722, rtp.PCMU, rtp.PCMA} {
			if strings.EqualFold(name, c.String()) {
				out, found = append(out, c), true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: -codecs: %q is not one of G722, PCMU, PCMA", ErrUsage, name)
		}
	}
	return out, nil
}

// WebRTCConfig returns the media/webrtc configuration for -media-ip: a
// loopback address keeps ICE on loopback.
func (a *Account) WebRTCConfig() webrtc.Config {
	ip := net.ParseIP(a.MediaIP)
	if ip != nil && ip.IsLoopback() {
		return webrtc.Config{LoopbackOnly: true}
	}
	if ip != nil {
		return webrtc.Config{IPFilter: func(x net.IP) bool { return x.Equal(ip) }}
	}
	return webrtc.Config{}
}

// ExitCode maps an error to the exit code that reports it.
func ExitCode(err error) int {
	var re *sip.ResponseError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrUsage), errors.Is(err, sip.ErrBadOptions):
		return ExitUsage
	case errors.Is(err, sip.ErrAuthFailed):
		return ExitAuth
	case errors.As(err, &re) && (re.StatusCode == 401 || re.StatusCode == 403 || re.StatusCode == 407):
		return ExitAuth
	case errors.As(err, &re) && (re.StatusCode == 408 || re.StatusCode == 503):
		return ExitUnreachable
	case errors.Is(err, sip.ErrTransportClosed), errors.Is(err, sip.ErrTimeout),
		errors.Is(err, sip.ErrCanceled), errors.Is(err, context.DeadlineExceeded):
		return ExitUnreachable
	}
	return ExitError
}

// Explain returns a one-line message for an error that ends a program.
func Explain(err error, a *Account) string {
	switch ExitCode(err) {
	case ExitAuth:
		return fmt.Sprintf("authentication failed: the server refused the credentials of %s: %v", a.AOR(), err)
	case ExitUnreachable:
		srv, _ := a.ServerAddress()
		return fmt.Sprintf("server unreachable: no answer from %s within %v: %v", srv, a.Timeout, err)
	}
	return err.Error()
}
