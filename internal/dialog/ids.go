package dialog

import (
	"crypto/rand"
	"encoding/binary"
)

// randomSeq returns a random initial CSeq below 2^31 / 2, leaving room
// to count up (RFC 3261 §8.1.1.5 asks for a value below 2^31).
func randomSeq() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:]) & (1<<30 - 1)
}
