package rtp

import (
	"testing"

	prtp "github.com/pion/rtp"
)

// BenchmarkSRTP: protecting and unprotecting one 20 ms G.711 packet (12
// header bytes, 160 payload bytes) per suite.
func BenchmarkSRTP(b *testing.B) {
	for _, suite := range []SRTPSuite{SRTPAES128SHA80, SRTPAES128SHA32, SRTPAEADAES128GCM} {
		local, _ := newKey(suite)
		remote, _ := newKey(suite)
		tx, err := newSRTPSession(&sdes{suite: suite, local: local, remote: remote})
		if err != nil {
			b.Fatal(err)
		}
		rx, err := newSRTPSession(&sdes{suite: suite, local: remote, remote: local})
		if err != nil {
			b.Fatal(err)
		}
		hdr := prtp.Header{Version: 2, PayloadType: 0, SSRC: 0x1234, SequenceNumber: 1, Timestamp: 160}
		plain, _ := hdr.Marshal()
		plain = append(plain, make([]byte, 160)...)
		b.Run(string(suite)+"/protect", func(b *testing.B) {
			var out []byte
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				plain[2], plain[3] = byte(i>>8), byte(i)
				if out, err = tx.txRTP.EncryptRTP(out[:0], plain, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Unprotect a stream of distinct packets (replay protection
		// refuses one packet twice), protected beforehand.
		const n = 1 << 14
		pkts := make([][]byte, n)
		for i := range pkts {
			plain[2], plain[3] = byte(i>>8), byte(i)
			pkts[i], _ = tx.txRTP.EncryptRTP(nil, plain, nil)
		}
		b.Run(string(suite)+"/unprotect", func(b *testing.B) {
			var out []byte
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == n { // a fresh context for the next round of sequence numbers
					b.StopTimer()
					rx, _ = newSRTPSession(&sdes{suite: suite, local: remote, remote: local})
					i = 0
					b.StartTimer()
				}
				if out, err = rx.rxRTP.DecryptRTP(out[:0], pkts[i], nil); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
