package forwardtest_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

func TestMemoryConforms(t *testing.T) {
	self := netip.MustParseAddr("192.168.1.10")
	var gw *forwardtest.Memory
	forwardtest.Run(t, forwardtest.Harness{
		New: func(*testing.T) forward.Backend {
			gw = forwardtest.NewMemory(self)
			return gw
		},
		Self:       self,
		Other:      netip.MustParseAddr("192.168.1.11"),
		Port:       40000,
		Lease:      time.Hour,
		AddForeign: func(_ *testing.T, m forward.Mapping) { gw.Put(m) },
	})
}
