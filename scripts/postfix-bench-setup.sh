#!/bin/sh
# Install what `mtalab bench relay` needs besides mtalab: Postfix (its smtp-source load
# generator, its smtp-sink next hop, and Postfix itself for the side-by-side run).
#
# Debian/Ubuntu. Preseeds "No configuration" so that no system-wide Postfix instance is set up
# or started (nothing listens on port 25); the benchmark runs a private instance of its own.
# Run as root (or with sudo available). Does nothing when the tools are already there.
set -eu

have() { [ -x "/usr/sbin/$1" ] || command -v "$1" >/dev/null 2>&1; }
if have postfix && have smtp-source && have smtp-sink; then
    echo "postfix-bench-setup: postfix, smtp-source and smtp-sink are installed"
    exit 0
fi

SUDO=
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
fi

echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix
echo "postfix-bench-setup: installed postfix $(/usr/sbin/postconf -d -h mail_version)"
