package audio

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

func TestG711RoundTrip(t *testing.T) {
	for c := range 256 {
		u := byte(c)
		if u != 0x7f { // -0 encodes back as +0 (0xff)
			if got := EncodeMuLaw(DecodeMuLaw(u)); got != u {
				t.Errorf("µ-law %#02x -> %d -> %#02x", u, DecodeMuLaw(u), got)
			}
		}
		if got := EncodeALaw(DecodeALaw(u)); got != u {
			t.Errorf("A-law %#02x -> %d -> %#02x", u, DecodeALaw(u), got)
		}
	}
	// Companding error stays within half a step of the segment: under
	// 1/16 of the magnitude, plus the small-signal floor.
	for x := -32768; x <= 32767; x += 7 {
		s := int16(x)
		for name, got := range map[string]int16{"µ-law": DecodeMuLaw(EncodeMuLaw(s)), "A-law": DecodeALaw(EncodeALaw(s))} {
			diff := int(got) - x
			if diff < 0 {
				diff = -diff
			}
			if diff > 16+abs(x)/16 {
				t.Fatalf("%s: %d decodes to %d", name, x, got)
			}
		}
	}
	if EncodeMuLaw(0) != 0xff || EncodeALaw(0) != 0xd5 {
		t.Errorf("silence codes %#02x %#02x", EncodeMuLaw(0), EncodeALaw(0))
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestSources(t *testing.T) {
	var raw bytes.Buffer
	for _, s := range []int16{1, -2, 300, -32768, 32767} {
		_ = binary.Write(&raw, binary.LittleEndian, s)
	}
	p := make([]int16, 4)
	src := PCM16(&raw)
	if n, err := src.ReadSamples(p); n != 4 || err != nil || p[0] != 1 || p[1] != -2 || p[2] != 300 || p[3] != -32768 {
		t.Errorf("PCM16: %d %v %v", n, err, p)
	}
	if n, err := src.ReadSamples(p); n != 1 || err != io.EOF || p[0] != 32767 {
		t.Errorf("PCM16 end: %d %v %v", n, err, p)
	}

	mu := MuLaw(bytes.NewReader([]byte{0xff, 0x00, 0x80}))
	if n, err := mu.ReadSamples(p); n != 3 || err != io.EOF || p[0] != 0 || p[1] != -32124 || p[2] != 32124 {
		t.Errorf("MuLaw: %d %v %v", n, err, p)
	}

	tone := Tone(1000) // 8 samples a period
	q := make([]int16, 16)
	if n, err := tone.ReadSamples(q); n != 16 || err != nil || q[0] != 0 || q[2] != 8000 || q[6] != -8000 || q[10] != 8000 {
		t.Errorf("Tone: %d %v %v", n, err, q)
	}
}
