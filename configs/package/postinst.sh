#!/bin/sh
# portfwd's units are new or changed: make systemd read them. Nothing is
# enabled or started: choose portfwd.service (the daemon),
# portfwd-apply.timer or portfwd-router.service (the Linux router itself).
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
