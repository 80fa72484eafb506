package lab

import (
	"net"
	"os"
	"testing"
)

// TestLabSyslogSink: while a lab is up something answers on /dev/log, so
// miniupnpd's log lines do not go to the console; afterwards the machine is
// as it was.
func TestLabSyslogSink(t *testing.T) {
	before := syslogServed()
	l := ForTest(t, Options{})
	if !syslogServed() {
		t.Fatalf("nothing answers on %s while lab %s is up", syslogPath, l.Name)
	}
	c, err := net.Dial("unixgram", syslogPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("<15>lab test: a line")); err != nil {
		t.Errorf("writing to the sink: %v", err)
	}
	c.Close()
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	sink.Lock()
	users := sink.users
	sink.Unlock()
	if users == 0 && !before {
		if _, err := os.Lstat(syslogPath); err == nil {
			t.Errorf("%s left behind after the last lab went down", syslogPath)
		}
	}
}
