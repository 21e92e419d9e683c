package webrtc

import "github.com/sipua/sip/media/audio"

// EncodeMuLaw returns the G.711 µ-law (PCMU) code of a 16-bit linear
// sample (media/audio's EncodeMuLaw).
func EncodeMuLaw(s int16) byte { return audio.EncodeMuLaw(s) }

// DecodeMuLaw returns the 16-bit linear sample of a G.711 µ-law code
// (media/audio's DecodeMuLaw).
func DecodeMuLaw(u byte) int16 { return audio.DecodeMuLaw(u) }

// EncodeALaw returns the G.711 A-law (PCMA) code of a 16-bit linear
// sample (media/audio's EncodeALaw).
func EncodeALaw(s int16) byte { return audio.EncodeALaw(s) }

// DecodeALaw returns the 16-bit linear sample of a G.711 A-law code
// (media/audio's DecodeALaw).
func DecodeALaw(a byte) int16 { return audio.DecodeALaw(a) }
