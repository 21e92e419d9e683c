package webrtc

import (
	"bytes"
	"os"
	"testing"
)

// FuzzVideoFiles: the IVF and H.264 readers take any bytes without a
// panic, and end with io.EOF or an error.
func FuzzVideoFiles(f *testing.F) {
	for _, name := range []string{"testdata/clip.ivf", "testdata/clip.h264"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 600)])
	}
	f.Add([]byte("DKIF\x00\x00\x20\x00VP80\xa0\x00\x78\x00\x0f\x00\x00\x00\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if src, err := NewIVFSource(bytes.NewReader(b)); err == nil {
			for range 1000 {
				if _, err := src.ReadFrame(); err != nil {
					break
				}
			}
		}
		if src, err := NewH264Source(bytes.NewReader(b), 0); err == nil {
			for range 1000 {
				if _, err := src.ReadFrame(); err != nil {
					break
				}
			}
		}
	})
}
