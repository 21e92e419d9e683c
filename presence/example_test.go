package presence_test

import (
	"fmt"

	"github.com/sipua/sip/presence"
)

// Build the PIDF body a sip.Publisher sends, and read a busy-lamp NOTIFY.
func Example() {
	body, err := presence.NewPIDF("sip:alice@example.com", presence.Open, "at my desk").Marshal()
	if err != nil {
		fmt.Println(err)
		return
	}
	p, _ := presence.ParsePIDF(body)
	fmt.Println(p.Entity, p.Tuples[0].Basic, p.Tuples[0].Note)

	notify := []byte(`<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="2" state="full" entity="sip:bob@example.com">
 <dialog id="a1" direction="recipient"><state>confirmed</state></dialog>
</dialog-info>`)
	d, err := presence.ParseDialogInfo(notify)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Entity, d.Dialogs[0].State, "busy:", d.Busy())
	// Output:
	// sip:alice@example.com open at my desk
	// sip:bob@example.com confirmed busy: true
}
