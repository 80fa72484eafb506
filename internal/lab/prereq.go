package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// A prerequisite is a program the lab runs and the Debian package that
// ships it.
var prerequisites = []struct{ bin, pkg string }{
	{"ip", "iproute2"},
	{"nft", "nftables"},
	{miniupnpdBin, "miniupnpd-nftables"},
	{"upnpc", "miniupnpc"},
	{"natpmpc", "natpmpc"},
	{"iptables", "iptables"},
	{"iptables-save", "iptables"},
}

// Prerequisites reports everything the lab needs and does not have: root,
// and each missing program with the package to apt-get install.
func Prerequisites() error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("the lab needs root (network namespaces, nftables)"))
	}
	var missing []string
	for _, p := range prerequisites {
		if _, err := lookPath(p.bin); err != nil {
			errs = append(errs, fmt.Errorf("%s not found (package %s)", p.bin, p.pkg))
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) == 0 {
		if err := checkNftablesBuild(); err != nil {
			errs = append(errs, err)
		}
	} else {
		errs = append(errs, fmt.Errorf("install with: DEBIAN_FRONTEND=noninteractive apt-get install -y %s", strings.Join(missing, " ")))
	}
	return errors.Join(errs...)
}

// checkNftablesBuild rejects the iptables build of miniupnpd: it would
// ignore the nftables chains the lab creates and map nothing.
func checkNftablesBuild() error {
	out, _ := exec.Command(tool(miniupnpdBin), "--version").CombinedOutput()
	if !strings.Contains(string(out), "nftables") {
		return fmt.Errorf("%s is not the nftables build (package miniupnpd-nftables): %s", tool(miniupnpdBin), strings.TrimSpace(string(out)))
	}
	return nil
}

// lookPath also searches the sbin directories, which a non-root PATH lacks.
func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, bin)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// tool is lookPath or the bare name, which then fails with a clear
// "not found" when run.
func tool(bin string) string {
	if p, err := lookPath(bin); err == nil {
		return p
	}
	return bin
}
