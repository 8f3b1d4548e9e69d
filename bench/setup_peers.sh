#!/bin/sh
# Install the peers of `bench/peers.py` from Debian packages: SAGA (saga_cmd) and GRASS (grass).
# Bench set-up only: the plugin itself needs neither. Run as root (or with sudo); does nothing
# when both are already installed.
set -eu

missing=""
command -v saga_cmd >/dev/null 2>&1 || missing="$missing saga"
command -v grass >/dev/null 2>&1 || missing="$missing grass-core"
if [ -z "$missing" ]; then
    echo "SAGA and GRASS are installed: $(command -v saga_cmd) $(command -v grass)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086  # $missing is a list of package names
$SUDO apt-get install -y -qq --no-install-recommends $missing
saga_cmd --version 2>&1 | head -n 1
grass --version 2>&1 | head -n 1
