package transport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"

	"github.com/sipua/sip/message"
)

// DNS is the part of *net.Resolver that Resolve uses; *net.Resolver
// implements it, and tests pass a fake.
type DNS interface {
	// LookupSRV looks up the SRV records of _service._proto.name.
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
	// LookupNetIP looks up host's addresses; network is "ip".
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// newResolver returns the resolver a Transport uses by default: the
// system's, as net.DefaultResolver, except that a query's connection to
// the name server closes as soon as the look-up's context ends. Go's own
// resolver otherwise reads the answer until its per-query timeout
// (resolv.conf's, 5 s by default) whatever the context says, so that
// stopping a UserAgent while a name server does not answer waited that
// long, and an abandoned address look-up went on in the background.
// server, when not empty, replaces the name server's address (tests).
func newResolver(server string) *net.Resolver {
	var d net.Dialer
	return &net.Resolver{
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			if server != "" {
				address = server
			}
			c, err := d.DialContext(ctx, network, address)
			if err != nil {
				return nil, err
			}
			stop := context.AfterFunc(ctx, func() { c.Close() })
			// The resolver tells UDP from TCP by the PacketConn methods.
			if uc, ok := c.(*net.UDPConn); ok {
				return &dnsPacketConn{UDPConn: uc, stop: stop}, nil
			}
			return &dnsConn{Conn: c, stop: stop}, nil
		},
	}
}

// dnsConn is a TCP connection to a name server that the end of its
// query's context closes; Close drops that hook.
type dnsConn struct {
	net.Conn
	stop func() bool
}

// Close closes the connection and forgets the context's hook.
func (c *dnsConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// dnsPacketConn is dnsConn for UDP.
type dnsPacketConn struct {
	*net.UDPConn
	stop func() bool
}

// Close closes the connection and forgets the context's hook.
func (c *dnsPacketConn) Close() error {
	c.stop()
	return c.UDPConn.Close()
}

// Resolve returns the targets for sending a request to the SIP or SIPS
// URI u, in the order to try them, following RFC 3263 as far as a UA
// needs it (NAPTR is not used):
//
//   - The transport is the URI's transport parameter (udp, tcp, tls, ws,
//     wss); a sips URI means TLS (WSS for transport=ws). Without the
//     parameter it is UDP for sip and TLS for sips when the host is an IP
//     address or a port is given; otherwise the first of UDP, TCP and TLS
//     (TLS only for sips) for which SRV records exist.
//   - A numeric host is used as it is, with the URI's port or the
//     transport's default port.
//   - A host name with a port is looked up with A/AAAA.
//   - A host name without a port is looked up with SRV (_sip._udp,
//     _sip._tcp, _sips._tcp; WebSocket has no SRV) ordered by priority and
//     weight (RFC 2782), each record's target with A/AAAA; without SRV
//     records, the name itself with A/AAAA and the default port.
//
// A maddr parameter replaces the host. Target.Host keeps the URI's host
// name for TLS certificate checks (RFC 5922). The error wraps ErrResolve
// or ErrUnsupported.
func (t *Transport) Resolve(ctx context.Context, u message.URI) ([]Target, error) {
	return resolve(ctx, t.cfg.DNS, u)
}

func resolve(ctx context.Context, dns DNS, u message.URI) ([]Target, error) {
	if !u.IsSIP() {
		return nil, fmt.Errorf("transport: resolve %q: scheme %q: %w", u.String(), u.Scheme, ErrUnsupported)
	}
	host := u.Host
	if m, ok := u.Params.Get("maddr"); ok && m != "" {
		host = m
	}
	var proto Proto
	explicit := false
	if tp, ok := u.Params.Get("transport"); ok {
		p, ok := ParseProto(tp)
		if !ok {
			return nil, fmt.Errorf("transport: resolve %s: transport %q: %w", u.String(), tp, ErrUnsupported)
		}
		proto, explicit = p, true
	}
	if u.Scheme == "sips" {
		switch proto {
		case "", TCP, TLS:
			proto = TLS
		case WS, WSS:
			proto = WSS
		default:
			return nil, fmt.Errorf("transport: resolve %s: sips over %s: %w", u.String(), proto, ErrUnsupported)
		}
	}
	defaultProto := proto
	if defaultProto == "" {
		defaultProto = UDP
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		port := uint16(u.Port)
		if port == 0 {
			port = defaultProto.DefaultPort()
		}
		return []Target{{Proto: defaultProto, Addr: netip.AddrPortFrom(ip.Unmap(), port)}}, nil
	}
	if u.Port != 0 {
		return lookupTargets(ctx, dns, defaultProto, host, host, uint16(u.Port))
	}
	// SRV (RFC 3263 §4.1-4.2) for the transports in question.
	var candidates []Proto
	switch {
	case explicit || u.Scheme == "sips":
		candidates = []Proto{proto}
	default:
		candidates = []Proto{UDP, TCP, TLS}
	}
	for _, p := range candidates {
		service, sproto := "sip", "tcp"
		switch p {
		case UDP:
			sproto = "udp"
		case TLS:
			service = "sips"
		case WS, WSS:
			continue
		}
		_, srvs, err := dns.LookupSRV(ctx, service, sproto, host)
		if err != nil || len(srvs) == 0 {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		var out []Target
		var errs []error
		for _, s := range orderSRV(srvs) {
			if s.Target == "." || s.Target == "" {
				continue // "service not available here"
			}
			ts, err := lookupTargets(ctx, dns, p, trimDot(s.Target), host, s.Port)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, ts...)
		}
		if len(out) > 0 {
			return out, nil
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
	}
	return lookupTargets(ctx, dns, defaultProto, host, host, defaultProto.DefaultPort())
}

func trimDot(s string) string {
	if len(s) > 1 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}

func lookupTargets(ctx context.Context, dns DNS, p Proto, name, host string, port uint16) ([]Target, error) {
	ips, err := dns.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return nil, fmt.Errorf("transport: resolve %s: %w: %w", name, ErrResolve, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("transport: resolve %s: no address: %w", name, ErrResolve)
	}
	out := make([]Target, 0, len(ips))
	for _, ip := range ips {
		tg := Target{Proto: p, Addr: netip.AddrPortFrom(ip.Unmap(), port), Host: host}
		if !slices.Contains(out, tg) {
			out = append(out, tg)
		}
	}
	return out, nil
}

// orderSRV sorts SRV records by priority and, within one priority, by
// RFC 2782's weighted random selection.
func orderSRV(in []*net.SRV) []*net.SRV {
	srvs := slices.Clone(in)
	slices.SortStableFunc(srvs, func(a, b *net.SRV) int { return int(a.Priority) - int(b.Priority) })
	out := make([]*net.SRV, 0, len(srvs))
	for i := 0; i < len(srvs); {
		j := i
		for j < len(srvs) && srvs[j].Priority == srvs[i].Priority {
			j++
		}
		group := srvs[i:j]
		out = append(out, weightedOrder(group, func(s *net.SRV) int { return int(s.Weight) })...)
		i = j
	}
	return out
}

// weightedOrder orders items by repeated weighted random choice (RFC
// 2782): zero-weight items come last unless all weigh zero.
func weightedOrder[T any](items []T, weight func(T) int) []T {
	rest := slices.Clone(items)
	out := make([]T, 0, len(items))
	for len(rest) > 0 {
		total := 0
		for _, it := range rest {
			total += weight(it)
		}
		k := 0
		if total > 0 {
			r := rand.IntN(total) + 1
			for k = range rest {
				r -= weight(rest[k])
				if r <= 0 {
					break
				}
			}
		}
		out = append(out, rest[k])
		rest = slices.Delete(rest, k, k+1)
	}
	return out
}

// lookupIP returns the addresses of host (an IP address or a name).
func (t *Transport) lookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	ips, err := t.cfg.DNS.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("transport: resolve %s: %w: %w", host, ErrResolve, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("transport: resolve %s: no address: %w", host, ErrResolve)
	}
	return ips, nil
}

// resolveServer resolves a server address of an Upstream: a ws:// or
// wss:// URL, or a SIP or SIPS URI (see Resolve).
func (t *Transport) resolveServer(ctx context.Context, addr string) ([]Target, error) {
	if len(addr) > 5 && (addr[:5] == "ws://" || (len(addr) > 6 && addr[:6] == "wss://")) {
		pu, err := url.Parse(addr)
		if err != nil {
			return nil, fmt.Errorf("transport: server %q: %w", addr, err)
		}
		proto := WS
		if pu.Scheme == "wss" {
			proto = WSS
		}
		port := proto.DefaultPort()
		if ps := pu.Port(); ps != "" {
			p, err := strconv.ParseUint(ps, 10, 16)
			if err != nil || p == 0 {
				return nil, fmt.Errorf("transport: server %q: bad port: %w", addr, ErrUnsupported)
			}
			port = uint16(p)
		}
		host := pu.Hostname()
		ips, err := t.lookupIP(ctx, host)
		if err != nil {
			return nil, err
		}
		path := pu.EscapedPath()
		if pu.RawQuery != "" {
			path += "?" + pu.RawQuery
		}
		out := make([]Target, len(ips))
		for i, ip := range ips {
			out[i] = Target{Proto: proto, Addr: netip.AddrPortFrom(ip, port), Host: host, Path: path}
		}
		return out, nil
	}
	u, err := message.ParseURI(addr)
	if err != nil {
		return nil, fmt.Errorf("transport: server %q: %w", addr, err)
	}
	return t.Resolve(ctx, u)
}
