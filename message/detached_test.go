package message

import (
	"testing"
	"unsafe"
)

func TestResponseDetached(t *testing.T) {
	raw := []byte("BYE sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKd1\r\n" +
		"From: <sip:alice@example.com>;tag=ft\r\n" +
		"To: <sip:bob@example.com>;tag=tt\r\n" +
		"Call-ID: detached-1\r\n" +
		"CSeq: 8 BYE\r\n" +
		"X-Other: kept\r\n" +
		"Content-Length: 0\r\n\r\n")
	req, err := ParseRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	resp := NewResponse(req, 200, "", "")
	resp.Header.Add("X-Other", "yes")
	resp.Body = []byte("body")
	d := resp.Detached()
	if got, want := string(d.AppendTo(nil)), string(resp.AppendTo(nil)); got != want {
		t.Fatalf("Detached writes\n%q\nwant\n%q", got, want)
	}
	// No string of d points into the request's memory.
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	hi := lo + uintptr(len(raw))
	reqLo := uintptr(unsafe.Pointer(unsafe.StringData(req.Header.CallID())))
	inReq := func(s string) bool {
		if s == "" {
			return false
		}
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return (p >= lo && p < hi) || p == reqLo
	}
	for _, f := range d.Header.Fields() {
		if inReq(f.Value) || inReq(f.Name) {
			t.Errorf("%s: %q shares the request's memory", f.Name, f.Value)
		}
	}
	if v := d.Header.Get("Call-ID"); v != "detached-1" {
		t.Errorf("Call-ID %q", v)
	}
	if string(d.Body) != "body" || &d.Body[0] == &resp.Body[0] {
		t.Errorf("body %q not copied", d.Body)
	}
}
