#!/bin/sh
# portfwd's units are gone: make systemd forget them. Forwards on the
# router stay until their lease runs out (portfwd down removes them at once;
# run it before removing the package).
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
