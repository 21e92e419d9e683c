package webrtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	pion "github.com/pion/webrtc/v4"

	"github.com/sipua/sip/media"
)

// DefaultGatheringTimeout is the ICE-gathering bound used when neither
// Config.GatheringTimeout nor media.Options.GatheringTimeout sets one.
const DefaultGatheringTimeout = 5 * time.Second

// Config configures the handlers made by New and NewFactory. Its zero
// value works: no STUN or TURN server (host candidates only), pion's
// default interfaces and network types, a 5 s gathering bound, silence
// as the audio source and no logging.
type Config struct {
	// ICEServers are the STUN and TURN servers ICE may use. None by
	// default: the library never contacts a public server on its own.
	ICEServers []pion.ICEServer

	// ICETransportPolicy selects the candidates ICE may use:
	// pion.ICETransportPolicyAll (the zero value) or
	// pion.ICETransportPolicyRelay, which gathers and uses only TURN relay
	// candidates (a relay in ICEServers is then required), e.g. to hide
	// the host's addresses or to enforce a media relay.
	ICETransportPolicy pion.ICETransportPolicy

	// Codecs orders and narrows the codecs offered and accepted, by
	// encoding name as SDP writes them ("PCMU", "PCMA", "opus", "VP8",
	// "H264"), compared without regard to case; a call's
	// media.Options.Codecs (at its first offer or answer) reorders and
	// narrows them again. A kind none of whose codecs is listed keeps
	// its default: PCMU, PCMA, opus for audio, VP8, H264 for video. Only
	// PCMU and PCMA are sent (encoded here); opus is received only.
	// telephone-event is always offered with audio.
	Codecs []string

	// DisconnectedTimeout is how long ICE may stay disconnected (no
	// answer to its checks, e.g. the network is down) before the media
	// are reported failed to Handler.OnFailure, which ends the call.
	// Zero means DefaultDisconnectedTimeout; negative, never (only ICE's
	// own failure, some 30 s after the path broke, counts).
	DisconnectedTimeout time.Duration

	// GatheringTimeout bounds ICE candidate gathering in GetDescription
	// when media.Options.GatheringTimeout is zero; the description is
	// then returned with the candidates found so far. Zero means
	// DefaultGatheringTimeout.
	GatheringTimeout time.Duration

	// IncludeLoopback gathers candidates on loopback interfaces too, which
	// pion skips by default. A machine (or network namespace) that has
	// only a loopback interface needs it, or ICE never connects.
	IncludeLoopback bool

	// LoopbackOnly restricts ICE to 127.0.0.1 over UDP: loopback
	// candidates are gathered, every other local and remote address is
	// filtered out and mDNS is off. For tests and for two endpoints on
	// one machine; it implies IncludeLoopback and overrides IPFilter and
	// NetworkTypes.
	LoopbackOnly bool

	// IPFilter, when set, keeps only the local addresses for which it
	// returns true as host candidates.
	IPFilter func(net.IP) bool

	// NetworkTypes limits the candidate network types (e.g.
	// pion.NetworkTypeUDP4). Nil means pion's default.
	NetworkTypes []pion.NetworkType

	// Logger receives the handler's logs and pion's. Nil: nothing is
	// logged.
	Logger *slog.Logger

	// Setup, when set, is called by the Factory made by NewFactory with
	// each new handler before the factory returns it: the place to set
	// the audio source and the callbacks of a session's media.
	Setup func(h *Handler, info media.SessionInfo)

	// Configure, when set, is called with the pion SettingEngine after the
	// handler has applied the settings above, for the rare knobs this
	// Config does not cover (port ranges, NAT 1:1 addresses, timeouts…).
	Configure func(s *pion.SettingEngine)
}

// gatheringTimeout returns the bound for one GetDescription call.
func (c *Config) gatheringTimeout(opts media.Options) time.Duration {
	switch {
	case opts.GatheringTimeout > 0:
		return opts.GatheringTimeout
	case c.GatheringTimeout > 0:
		return c.GatheringTimeout
	default:
		return DefaultGatheringTimeout
	}
}

func (c *Config) validate() error {
	if c.GatheringTimeout < 0 {
		return fmt.Errorf("webrtc: negative GatheringTimeout %v", c.GatheringTimeout)
	}
	switch c.ICETransportPolicy {
	case pion.ICETransportPolicyAll, pion.ICETransportPolicyRelay:
	default:
		return fmt.Errorf("webrtc: unsupported ICETransportPolicy %v", c.ICETransportPolicy)
	}
	if c.ICETransportPolicy == pion.ICETransportPolicyRelay && !hasTURN(c.ICEServers) {
		return errors.New("webrtc: ICETransportPolicy relay needs a TURN server in ICEServers")
	}
	return nil
}

// hasTURN reports a turn: or turns: URL among the servers.
func hasTURN(servers []pion.ICEServer) bool {
	for _, s := range servers {
		for _, u := range s.URLs {
			if l := strings.ToLower(u); strings.HasPrefix(l, "turn:") || strings.HasPrefix(l, "turns:") {
				return true
			}
		}
	}
	return false
}

// onlyLoopback reports a host whose interfaces that are up have no
// address but loopback ones (a container or network namespace with
// only lo). Pion skips loopback by default, so there ICE gathers no host
// candidate at all.
func onlyLoopback() bool {
	ifs, err := net.Interfaces()
	if err != nil {
		return false
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return false
			}
		}
	}
	return true
}

// warnLoopback logs, once per handler, that the configuration cannot
// connect on a loopback-only host.
func (c *Config) warnLoopback(log *slog.Logger, onlyLoopback func() bool) {
	if c.IncludeLoopback || c.LoopbackOnly || len(c.ICEServers) > 0 || c.Configure != nil {
		return
	}
	if onlyLoopback() {
		log.Warn("webrtc: this host has only loopback addresses, which ICE skips unless Config.IncludeLoopback " +
			"or LoopbackOnly is set: no candidate will be gathered and media cannot flow")
	}
}

// settingEngine builds the pion SettingEngine of one handler.
func (c *Config) settingEngine(log *slog.Logger) pion.SettingEngine {
	var s pion.SettingEngine
	s.LoggerFactory = logFactory{log}
	if c.IncludeLoopback || c.LoopbackOnly {
		s.SetIncludeLoopbackCandidate(true)
	}
	if c.IPFilter != nil {
		s.SetIPFilter(c.IPFilter)
	}
	if len(c.NetworkTypes) > 0 {
		s.SetNetworkTypes(c.NetworkTypes)
	}
	if c.LoopbackOnly {
		loopback := func(ip net.IP) bool { return ip.IsLoopback() }
		s.SetIPFilter(loopback)
		s.SetRemoteIPFilter(loopback)
		s.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4})
		s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	if c.Configure != nil {
		c.Configure(&s)
	}
	return s
}

// logFactory hands pion loggers that write to an slog.Logger.
type logFactory struct{ l *slog.Logger }

func (f logFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{l: f.l, scope: scope}
}

// pionLogger is a logging.LeveledLogger on top of slog. Trace maps to a
// level below Debug. Messages are formatted only when the level is on.
type pionLogger struct {
	l     *slog.Logger
	scope string
}

const levelTrace = slog.LevelDebug - 4

func (p pionLogger) log(level slog.Level, msg string) {
	if p.l.Enabled(context.Background(), level) {
		p.l.Log(context.Background(), level, msg, "pion", p.scope)
	}
}

func (p pionLogger) logf(level slog.Level, format string, args ...any) {
	if p.l.Enabled(context.Background(), level) {
		p.l.Log(context.Background(), level, fmt.Sprintf(format, args...), "pion", p.scope)
	}
}

func (p pionLogger) Trace(msg string)                  { p.log(levelTrace, msg) }
func (p pionLogger) Tracef(format string, args ...any) { p.logf(levelTrace, format, args...) }
func (p pionLogger) Debug(msg string)                  { p.log(slog.LevelDebug, msg) }
func (p pionLogger) Debugf(format string, args ...any) { p.logf(slog.LevelDebug, format, args...) }
func (p pionLogger) Info(msg string)                   { p.log(slog.LevelInfo, msg) }
func (p pionLogger) Infof(format string, args ...any)  { p.logf(slog.LevelInfo, format, args...) }
func (p pionLogger) Warn(msg string)                   { p.log(slog.LevelWarn, msg) }
func (p pionLogger) Warnf(format string, args ...any)  { p.logf(slog.LevelWarn, format, args...) }
func (p pionLogger) Error(msg string)                  { p.log(slog.LevelError, msg) }
func (p pionLogger) Errorf(format string, args ...any) { p.logf(slog.LevelError, format, args...) }
