package rtp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// RTCP packet types (RFC 3550 §12.1).
const (
	rtcpSR   = 200
	rtcpRR   = 201
	rtcpSDES = 202
	rtcpBYE  = 203

	sdesCNAME = 1
)

// senderInfo is the sender-information part of a sender report.
type senderInfo struct {
	ntp     uint64 // NTP timestamp of the report
	rtpTS   uint32 // the same instant on the RTP clock
	packets uint32 // RTP packets sent
	octets  uint32 // RTP payload octets sent
}

// reportBlock is one reception report (RFC 3550 §6.4.1).
type reportBlock struct {
	ssrc         uint32 // the source reported on
	fractionLost uint8  // since the last report, in 1/256
	totalLost    int32  // cumulative, 24-bit signed
	highestSeq   uint32 // extended highest sequence number received
	jitter       uint32 // interarrival jitter in RTP clock units
	lsr          uint32 // middle 32 bits of the last SR's NTP time, 0 if none
	dlsr         uint32 // delay since that SR, in 1/65536 s
}

// rtcpReport is what this package reads of one RTCP packet.
type rtcpReport struct {
	typ    uint8
	ssrc   uint32 // the sender's
	sr     senderInfo
	blocks []reportBlock
}

// ntpTime returns t as a 64-bit NTP timestamp (seconds since 1900 in the
// high 32 bits, the fraction in the low ones).
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // 1900 → 1970
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// ntpMiddle returns the middle 32 bits of an NTP timestamp, the unit of
// LSR and of round-trip computations (1/65536 s).
func ntpMiddle(ntp uint64) uint32 { return uint32(ntp >> 16) }

// appendHeader appends an RTCP common header for a packet of n bytes
// (header included, a multiple of 4).
func appendHeader(b []byte, count int, typ uint8, n int) []byte {
	b = append(b, 2<<6|byte(count&0x1f), typ)
	return binary.BigEndian.AppendUint16(b, uint16(n/4-1))
}

func appendBlocks(b []byte, blocks []reportBlock) []byte {
	for _, r := range blocks {
		b = binary.BigEndian.AppendUint32(b, r.ssrc)
		lost := uint32(max(min(r.totalLost, 0x7fffff), -0x800000)) & 0xffffff
		b = binary.BigEndian.AppendUint32(b, uint32(r.fractionLost)<<24|lost)
		b = binary.BigEndian.AppendUint32(b, r.highestSeq)
		b = binary.BigEndian.AppendUint32(b, r.jitter)
		b = binary.BigEndian.AppendUint32(b, r.lsr)
		b = binary.BigEndian.AppendUint32(b, r.dlsr)
	}
	return b
}

// appendSR appends a sender report (at most 31 blocks).
func appendSR(b []byte, ssrc uint32, si senderInfo, blocks []reportBlock) []byte {
	b = appendHeader(b, len(blocks), rtcpSR, 28+24*len(blocks))
	b = binary.BigEndian.AppendUint32(b, ssrc)
	b = binary.BigEndian.AppendUint64(b, si.ntp)
	b = binary.BigEndian.AppendUint32(b, si.rtpTS)
	b = binary.BigEndian.AppendUint32(b, si.packets)
	b = binary.BigEndian.AppendUint32(b, si.octets)
	return appendBlocks(b, blocks)
}

// appendRR appends a receiver report (at most 31 blocks).
func appendRR(b []byte, ssrc uint32, blocks []reportBlock) []byte {
	b = appendHeader(b, len(blocks), rtcpRR, 8+24*len(blocks))
	b = binary.BigEndian.AppendUint32(b, ssrc)
	return appendBlocks(b, blocks)
}

// appendSDES appends a source description with one chunk: the CNAME
// (at most 255 bytes), which every compound packet carries (RFC 3550
// §6.1).
func appendSDES(b []byte, ssrc uint32, cname string) []byte {
	if len(cname) > 255 {
		cname = cname[:255]
	}
	chunk := 4 + 2 + len(cname) + 1 // SSRC, item, the null item ending the list
	chunk = (chunk + 3) &^ 3
	b = appendHeader(b, 1, rtcpSDES, 4+chunk)
	b = binary.BigEndian.AppendUint32(b, ssrc)
	b = append(b, sdesCNAME, byte(len(cname)))
	b = append(b, cname...)
	for n := 6 + len(cname); n < chunk; n++ {
		b = append(b, 0)
	}
	return b
}

// appendBYE appends a BYE for one source.
func appendBYE(b []byte, ssrc uint32) []byte {
	b = appendHeader(b, 1, rtcpBYE, 8)
	return binary.BigEndian.AppendUint32(b, ssrc)
}

// parseRTCP reads the packets of a compound RTCP packet; those of types
// other than SR, RR, SDES and BYE are returned with their type only.
func parseRTCP(b []byte) ([]rtcpReport, error) {
	if len(b) < 4 {
		return nil, errors.New("rtcp: short packet")
	}
	var out []rtcpReport
	for len(b) > 0 {
		if len(b) < 4 {
			return out, errors.New("rtcp: trailing bytes")
		}
		if b[0]>>6 != 2 {
			return out, fmt.Errorf("rtcp: version %d", b[0]>>6)
		}
		count := int(b[0] & 0x1f)
		n := (int(binary.BigEndian.Uint16(b[2:])) + 1) * 4
		if n > len(b) {
			return out, fmt.Errorf("rtcp: length %d beyond the %d bytes left", n, len(b))
		}
		body := b[4:n]
		r := rtcpReport{typ: b[1]}
		switch r.typ {
		case rtcpSR:
			if len(body) < 24+24*count {
				return out, errors.New("rtcp: short sender report")
			}
			r.ssrc = binary.BigEndian.Uint32(body)
			r.sr = senderInfo{
				ntp:     binary.BigEndian.Uint64(body[4:]),
				rtpTS:   binary.BigEndian.Uint32(body[12:]),
				packets: binary.BigEndian.Uint32(body[16:]),
				octets:  binary.BigEndian.Uint32(body[20:]),
			}
			r.blocks = parseBlocks(body[24:], count)
		case rtcpRR:
			if len(body) < 4+24*count {
				return out, errors.New("rtcp: short receiver report")
			}
			r.ssrc = binary.BigEndian.Uint32(body)
			r.blocks = parseBlocks(body[4:], count)
		case rtcpSDES, rtcpBYE:
			if count > 0 && len(body) >= 4 {
				r.ssrc = binary.BigEndian.Uint32(body)
			}
		}
		out = append(out, r)
		b = b[n:]
	}
	return out, nil
}

func parseBlocks(b []byte, count int) []reportBlock {
	if count == 0 {
		return nil
	}
	out := make([]reportBlock, count)
	for i := range out {
		p := b[24*i:]
		lost := binary.BigEndian.Uint32(p[4:])
		total := int32(lost&0xffffff) << 8 >> 8 // sign-extend 24 bits
		out[i] = reportBlock{
			ssrc:         binary.BigEndian.Uint32(p),
			fractionLost: uint8(lost >> 24),
			totalLost:    total,
			highestSeq:   binary.BigEndian.Uint32(p[8:]),
			jitter:       binary.BigEndian.Uint32(p[12:]),
			lsr:          binary.BigEndian.Uint32(p[16:]),
			dlsr:         binary.BigEndian.Uint32(p[20:]),
		}
	}
	return out
}

// Reception statistics of one source (RFC 3550 Appendix A.1, A.3, A.8).
const (
	maxDropout  = 3000 // a forward jump beyond this restarts the sequence
	maxMisorder = 100  // a backward step beyond this restarts it too
)

// rxStats are the reception statistics of the current remote source.
type rxStats struct {
	init     bool
	ssrc     uint32
	maxSeq   uint16
	cycles   uint32 // wraps of the sequence number, times 65536
	baseSeq  uint32
	received uint64

	expectedPrior, receivedPrior uint64 // at the last report

	transit     int64
	haveTransit bool
	jitter      float64 // in RTP clock units
}

// seq records a packet's sequence number; it returns true when the
// packet starts a new source (a new SSRC, or a sequence restart).
func (r *rxStats) seq(ssrc uint32, seq uint16) bool {
	if !r.init || ssrc != r.ssrc {
		*r = rxStats{init: true, ssrc: ssrc, maxSeq: seq, baseSeq: uint32(seq), received: 1}
		return true
	}
	delta := seq - r.maxSeq
	switch {
	case delta < maxDropout:
		if seq < r.maxSeq {
			r.cycles += 1 << 16
		}
		r.maxSeq = seq
	case delta <= math.MaxUint16-maxMisorder:
		// A very large jump: the source restarted its sequence.
		*r = rxStats{init: true, ssrc: ssrc, maxSeq: seq, baseSeq: uint32(seq), received: 1}
		return true
	default:
		// Duplicate or reordered.
	}
	r.received++
	return false
}

// arrival updates the interarrival jitter with a packet's RTP timestamp
// and its arrival time on the same clock.
func (r *rxStats) arrival(ts, arrival uint32) {
	transit := int64(int32(arrival - ts))
	if r.haveTransit {
		d := transit - r.transit
		if d < 0 {
			d = -d
		}
		r.jitter += (float64(d) - r.jitter) / 16
	}
	r.transit, r.haveTransit = transit, true
}

func (r *rxStats) extendedMax() uint32 { return r.cycles + uint32(r.maxSeq) }

func (r *rxStats) expected() uint64 {
	return uint64(r.extendedMax()) - uint64(r.baseSeq) + 1
}

// lost returns the cumulative number of packets lost (negative with
// duplicates).
func (r *rxStats) lost() int64 { return int64(r.expected()) - int64(r.received) }

// block returns the reception report on the source and starts a new
// report interval. lsr and dlsr describe the source's last SR.
func (r *rxStats) block(lsr, dlsr uint32) reportBlock {
	expected := r.expected()
	ei := expected - r.expectedPrior
	ri := r.received - r.receivedPrior
	r.expectedPrior, r.receivedPrior = expected, r.received
	var fraction uint8
	if ei > 0 && ri < ei {
		fraction = uint8((ei - ri) << 8 / ei)
	}
	return reportBlock{
		ssrc:         r.ssrc,
		fractionLost: fraction,
		totalLost:    int32(max(min(r.lost(), 0x7fffff), -0x800000)),
		highestSeq:   r.extendedMax(),
		jitter:       uint32(r.jitter),
		lsr:          lsr,
		dlsr:         dlsr,
	}
}
