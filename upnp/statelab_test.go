package upnp

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// stateLab is how a NAT-PMP or PCP lab child, re-run by its parent test
// inside the LAN namespace, sees the lab: the phase to run, the state
// directory shared between phases, and the lab's addresses, passed in the
// environment variable env as "phase,dir,router,self,other,wan".
type stateLab struct {
	phase, dir               string
	router, self, other, wan netip.Addr
}

// stateLabChild reads the lab from env, or skips when the test was not
// started by parent inside the lab.
func stateLabChild(t *testing.T, env, parent string) stateLab {
	f := strings.Split(os.Getenv(env), ",")
	if len(f) != 6 {
		t.Skip("run by " + parent + " inside the lab")
	}
	p := netip.MustParseAddr
	return stateLab{phase: f[0], dir: f[1], router: p(f[2]), self: p(f[3]), other: p(f[4]), wan: p(f[5])}
}

// state opens the state file in dir for the rest of the test.
func (a stateLab) state(t *testing.T, dir string) *forward.State {
	t.Helper()
	st, err := forward.OpenState(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
