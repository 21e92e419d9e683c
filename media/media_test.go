package media_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sipua/sip/media"
)

// fixed is the smallest Handler: it offers and answers one fixed SDP and
// carries no media, as a signalling test needs.
type fixed struct{ remote []byte }

func (f *fixed) GetDescription(ctx context.Context, o media.Options) (media.Description, error) {
	return media.Description{ContentType: "application/sdp", Body: []byte("v=0\r\n")}, nil
}
func (f *fixed) SetDescription(ctx context.Context, d media.Description, o media.Options) error {
	if d.ContentType != "application/sdp" {
		return fmt.Errorf("%w: %s", media.ErrUnsupportedContent, d.ContentType)
	}
	f.remote = d.Body
	return nil
}
func (f *fixed) HasDescription(ct string) bool        { return ct == "application/sdp" }
func (f *fixed) SendDTMF(string, time.Duration) error { return media.ErrNotSupported }
func (f *fixed) Close() error                         { return nil }

func Example() {
	var factory media.Factory = func(media.SessionInfo) (media.Handler, error) { return &fixed{}, nil }
	h, _ := factory(media.SessionInfo{Incoming: true})
	err := h.SetDescription(context.Background(), media.Description{ContentType: "text/plain"}, media.Options{})
	fmt.Println(err)
	d, _ := h.GetDescription(context.Background(), media.Options{})
	fmt.Printf("%s %q\n", d.ContentType, d.Body)
	// Output:
	// media: unsupported session description type: text/plain
	// application/sdp "v=0\r\n"
}

func ExampleCodecOrder() {
	configured := []string{"PCMU", "PCMA", "G722"}
	fmt.Println(media.CodecOrder(configured, []string{"g722", "pcmu"}))
	fmt.Println(media.CodecOrder(configured, []string{"VP8"}))
	fmt.Println(media.CodecOrder(configured, nil))
	// Output:
	// [G722 PCMU]
	// [PCMU PCMA G722]
	// [PCMU PCMA G722]
}
