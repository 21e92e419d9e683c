package trace

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"sync"
)

// PcapWriter is a Tracer that writes the messages it sees as a classic
// libpcap capture file (microsecond timestamps, Ethernet link type, as a
// capture on Linux's loopback interface looks), readable by tshark,
// Wireshark and sngrep.
//
// Each message becomes a synthesized packet between its Local and Remote
// addresses: a UDP datagram for UDP, and TCP segments for the stream
// transports, with sequence and acknowledgement numbers that are
// consistent per connection and a three-way handshake made up when a
// connection is first seen (the side that sent its first message taken as
// the one that opened it). TLS and WebSocket messages are written as their
// plaintext SIP over TCP on the connection's ports, without TLS records or
// WebSocket frames. tshark and Wireshark (4.0) dissect that as SIP on any
// port, 5061 and 443 included, except on ports their HTTP dissector claims
// (80, 8080, 8088 …), where "Decode As" is needed, e.g. tshark
// -d tcp.port==8088,sip; sngrep reads them on every port. Messages that
// failed to send (SendFailed) are left out; malformed messages received are
// written as they came.
//
// The file header is written by NewPcapWriter, then one Write per message.
// Write errors are kept: the first one is returned by Err, and nothing
// more is written after it. A PcapWriter is safe for concurrent use.
type PcapWriter struct {
	mu      sync.Mutex
	w       io.Writer
	err     error
	buf     []byte
	ipID    uint16
	streams map[streamKey]*stream
}

// Pcap constants: the file format (https://www.tcpdump.org/linktypes.html
// and pcap-savefile(5)).
const (
	pcapMagic       = 0xa1b2c3d4 // microsecond timestamps
	pcapSnapLen     = 262144
	linkTypeEther   = 1
	maxUDPPayload   = 65535 - 8 - 20
	maxTCPSegment   = 32768 // payload per synthesized TCP segment
	maxStreams      = 4096  // connections tracked for sequence numbers
	tcpFlagSYN      = 0x02
	tcpFlagPSH      = 0x08
	tcpFlagACK      = 0x10
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86dd
	ipProtoTCP      = 6
	ipProtoUDP      = 17
	etherHeaderSize = 14
)

type streamKey struct {
	a, b netip.AddrPort // a < b
}

// stream holds the next sequence number of each side of a connection.
type stream struct {
	seqA, seqB uint32
}

// NewPcapWriter writes the pcap file header to w and returns a writer of
// packets to it. w receives one Write per record; wrap a file in a
// bufio.Writer only if it is flushed after the last message.
func NewPcapWriter(w io.Writer) (*PcapWriter, error) {
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], pcapMagic)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], pcapSnapLen)
	binary.LittleEndian.PutUint32(h[20:], linkTypeEther)
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("trace: writing the pcap header: %w", err)
	}
	return &PcapWriter{w: w, streams: map[streamKey]*stream{}}, nil
}

// Err returns the first error writing to the underlying writer, or nil.
func (p *PcapWriter) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Trace writes the packet(s) of one message.
func (p *PcapWriter) Trace(ev Event) {
	if ev.Dir != Sent && ev.Dir != Received {
		return
	}
	src, dst := ev.Source(), ev.Destination()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	p.buf = p.buf[:0]
	if ev.Transport == "UDP" || ev.Transport == "" {
		payload := ev.Raw
		if len(payload) > maxUDPPayload {
			payload = payload[:maxUDPPayload] // cannot be a datagram: truncated
		}
		p.packet(ev, src, dst, ipProtoUDP, 0, 0, 0, payload)
	} else {
		p.tcp(ev, src, dst)
	}
	if _, err := p.w.Write(p.buf); err != nil {
		p.err = fmt.Errorf("trace: writing a pcap record: %w", err)
	}
}

// tcp appends the segments of one stream message, after a made-up
// handshake when the connection is new.
func (p *PcapWriter) tcp(ev Event, src, dst netip.AddrPort) {
	k := streamKey{src, dst}
	fromA := src.Compare(dst) < 0
	if !fromA {
		k = streamKey{dst, src}
	}
	s := p.streams[k]
	if s == nil {
		if len(p.streams) >= maxStreams {
			clear(p.streams)
		}
		// Initial sequence numbers: arbitrary, fixed so that files are
		// reproducible.
		s = &stream{seqA: 1000, seqB: 5000}
		p.streams[k] = s
		mine, theirs := &s.seqA, &s.seqB
		if !fromA {
			mine, theirs = theirs, mine
		}
		p.packet(ev, src, dst, ipProtoTCP, *mine, 0, tcpFlagSYN, nil)
		p.packet(ev, dst, src, ipProtoTCP, *theirs, *mine+1, tcpFlagSYN|tcpFlagACK, nil)
		*mine++
		*theirs++
		p.packet(ev, src, dst, ipProtoTCP, *mine, *theirs, tcpFlagACK, nil)
	}
	mine, theirs := &s.seqA, &s.seqB
	if !fromA {
		mine, theirs = theirs, mine
	}
	data := ev.Raw
	for len(data) > 0 {
		n := min(len(data), maxTCPSegment)
		p.packet(ev, src, dst, ipProtoTCP, *mine, *theirs, tcpFlagPSH|tcpFlagACK, data[:n])
		*mine += uint32(n)
		data = data[n:]
	}
}

// packet appends one pcap record: Ethernet, IPv4 or IPv6, then a UDP
// header or a TCP header with seq, ack and flags, then payload.
func (p *PcapWriter) packet(ev Event, src, dst netip.AddrPort, proto byte, seq, ack uint32, flags byte, payload []byte) {
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	if !sa.IsValid() {
		sa = netip.IPv4Unspecified()
	}
	if !da.IsValid() {
		da = netip.IPv4Unspecified()
	}
	v6 := sa.Is6() || da.Is6()
	if v6 {
		sa, da = netip.AddrFrom16(sa.As16()), netip.AddrFrom16(da.As16())
	}
	l4 := 8
	if proto == ipProtoTCP {
		l4 = 20
	}
	ipLen := 20
	if v6 {
		ipLen = 40
	}
	total := etherHeaderSize + ipLen + l4 + len(payload)

	usec := ev.Time.UnixMicro()
	b := p.buf
	b = binary.LittleEndian.AppendUint32(b, uint32(usec/1e6))
	b = binary.LittleEndian.AppendUint32(b, uint32(usec%1e6))
	b = binary.LittleEndian.AppendUint32(b, uint32(total))
	b = binary.LittleEndian.AppendUint32(b, uint32(total))

	// Ethernet: zero MAC addresses, as on Linux's loopback.
	b = append(b, make([]byte, 12)...)
	if v6 {
		b = binary.BigEndian.AppendUint16(b, etherTypeIPv6)
	} else {
		b = binary.BigEndian.AppendUint16(b, etherTypeIPv4)
	}

	ipStart := len(b)
	if v6 {
		b = binary.BigEndian.AppendUint32(b, 6<<28)
		b = binary.BigEndian.AppendUint16(b, uint16(l4+len(payload)))
		b = append(b, proto, 64)
		s16, d16 := sa.As16(), da.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	} else {
		p.ipID++
		b = append(b, 0x45, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(min(20+l4+len(payload), 65535)))
		b = binary.BigEndian.AppendUint16(b, p.ipID)
		b = binary.BigEndian.AppendUint16(b, 0x4000) // don't fragment
		b = append(b, 64, proto, 0, 0)
		s4, d4 := sa.As4(), da.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
		binary.BigEndian.PutUint16(b[ipStart+10:], checksum(0, b[ipStart:ipStart+20]))
	}

	l4Start := len(b)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	if proto == ipProtoUDP {
		b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
		b = append(b, 0, 0)
	} else {
		b = binary.BigEndian.AppendUint32(b, seq)
		b = binary.BigEndian.AppendUint32(b, ack)
		b = append(b, 5<<4, flags)
		b = binary.BigEndian.AppendUint16(b, 65535) // window
		b = append(b, 0, 0, 0, 0)                   // checksum, urgent pointer
	}
	b = append(b, payload...)

	// The transport checksum over the pseudo-header and segment.
	seg := b[l4Start:]
	var sum uint32
	if v6 {
		s16, d16 := sa.As16(), da.As16()
		sum = sumBytes(sum, s16[:])
		sum = sumBytes(sum, d16[:])
		sum += uint32(len(seg)>>16) + uint32(len(seg)&0xffff)
	} else {
		s4, d4 := sa.As4(), da.As4()
		sum = sumBytes(sum, s4[:])
		sum = sumBytes(sum, d4[:])
		sum += uint32(len(seg) & 0xffff)
	}
	sum += uint32(proto)
	c := checksum(sum, seg)
	off := 16 // TCP checksum
	if proto == ipProtoUDP {
		off = 6
		if c == 0 {
			c = 0xffff
		}
	}
	binary.BigEndian.PutUint16(seg[off:], c)
	p.buf = b
}

// sumBytes adds b to a one's-complement sum as 16-bit big-endian words.
func sumBytes(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// checksum finishes the Internet checksum (RFC 1071) of b on top of sum.
func checksum(sum uint32, b []byte) uint16 {
	sum = sumBytes(sum, b)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
