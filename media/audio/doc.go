// Package audio holds what every media handler of sipua shares, with no
// network or WebRTC code: G.711 µ-law and A-law companding (ITU-T G.711),
// the AudioSource through which an application feeds a call's audio (mono
// 16-bit linear PCM at 8 kHz) with a tone generator and raw-PCM readers,
// and RFC 4733 telephone-event (DTMF) packet building and reading.
// media/rtp and media/webrtc both use it, so a program that uses plain
// RTP links neither pion/webrtc nor anything else it does not need.
package audio
