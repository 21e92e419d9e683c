package rtp

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/pion/rtcp"
)

// RTCP packet types (RFC 3550 §12.1).
const (
	rtcpSR   = 200
	rtcpRR   = 201
	rtcpSDES = 202
	rtcpBYE  = 203
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

// The packets below are built and read by pion/rtcp; these helpers map
// them to and from the package's own report types.

func toReception(blocks []reportBlock) []rtcp.ReceptionReport {
	out := make([]rtcp.ReceptionReport, len(blocks))
	for i, r := range blocks {
		out[i] = rtcp.ReceptionReport{
			SSRC:               r.ssrc,
			FractionLost:       r.fractionLost,
			TotalLost:          uint32(max(min(r.totalLost, 0x7fffff), -0x800000)) & 0xffffff,
			LastSequenceNumber: r.highestSeq,
			Jitter:             r.jitter,
			LastSenderReport:   r.lsr,
			Delay:              r.dlsr,
		}
	}
	return out
}

func fromReception(rs []rtcp.ReceptionReport) []reportBlock {
	if len(rs) == 0 {
		return nil
	}
	out := make([]reportBlock, len(rs))
	for i, r := range rs {
		out[i] = reportBlock{
			ssrc:         r.SSRC,
			fractionLost: r.FractionLost,
			totalLost:    int32(r.TotalLost&0xffffff) << 8 >> 8, // sign-extend 24 bits
			highestSeq:   r.LastSequenceNumber,
			jitter:       r.Jitter,
			lsr:          r.LastSenderReport,
			dlsr:         r.Delay,
		}
	}
	return out
}

// appendPackets marshals RTCP packets and appends them to b.
func appendPackets(b []byte, pkts ...rtcp.Packet) []byte {
	out, err := rtcp.Marshal(pkts)
	if err != nil {
		return b // only with more than 31 blocks or a CNAME over 255 bytes, which this package never makes
	}
	return append(b, out...)
}

// appendSR appends a sender report (at most 31 blocks).
func appendSR(b []byte, ssrc uint32, si senderInfo, blocks []reportBlock) []byte {
	return appendPackets(b, &rtcp.SenderReport{
		SSRC:        ssrc,
		NTPTime:     si.ntp,
		RTPTime:     si.rtpTS,
		PacketCount: si.packets,
		OctetCount:  si.octets,
		Reports:     toReception(blocks),
	})
}

// appendRR appends a receiver report (at most 31 blocks).
func appendRR(b []byte, ssrc uint32, blocks []reportBlock) []byte {
	return appendPackets(b, &rtcp.ReceiverReport{SSRC: ssrc, Reports: toReception(blocks)})
}

// appendSDES appends a source description with one chunk: the CNAME
// (at most 255 bytes), which every compound packet carries (RFC 3550
// §6.1).
func appendSDES(b []byte, ssrc uint32, cname string) []byte {
	if len(cname) > 255 {
		cname = cname[:255]
	}
	return appendPackets(b, &rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{
		Source: ssrc,
		Items:  []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: cname}},
	}}})
}

// appendBYE appends a BYE for one source.
func appendBYE(b []byte, ssrc uint32) []byte {
	return appendPackets(b, &rtcp.Goodbye{Sources: []uint32{ssrc}})
}

// parseRTCP reads the packets of a compound RTCP packet; those of types
// other than SR, RR, SDES and BYE are returned with their type only.
func parseRTCP(b []byte) ([]rtcpReport, error) {
	if len(b) < 4 {
		return nil, errors.New("rtcp: short packet")
	}
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("rtcp: %w", err)
	}
	out := make([]rtcpReport, 0, len(pkts))
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			out = append(out, rtcpReport{typ: rtcpSR, ssrc: p.SSRC, sr: senderInfo{
				ntp: p.NTPTime, rtpTS: p.RTPTime, packets: p.PacketCount, octets: p.OctetCount,
			}, blocks: fromReception(p.Reports)})
		case *rtcp.ReceiverReport:
			out = append(out, rtcpReport{typ: rtcpRR, ssrc: p.SSRC, blocks: fromReception(p.Reports)})
		case *rtcp.SourceDescription:
			r := rtcpReport{typ: rtcpSDES}
			if len(p.Chunks) > 0 {
				r.ssrc = p.Chunks[0].Source
			}
			out = append(out, r)
		case *rtcp.Goodbye:
			r := rtcpReport{typ: rtcpBYE}
			if len(p.Sources) > 0 {
				r.ssrc = p.Sources[0]
			}
			out = append(out, r)
		default:
			var typ uint8
			if raw, err := p.Marshal(); err == nil && len(raw) > 1 {
				typ = raw[1]
			}
			out = append(out, rtcpReport{typ: typ})
		}
	}
	return out, nil
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
