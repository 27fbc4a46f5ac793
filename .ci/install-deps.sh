#!/usr/bin/env bash
# Installs every Debian package sealmail's build, tests and demo need.
# Idempotent; runs apt-get only for what is missing. Needs root (or sudo).
set -euo pipefail

PKGS=(
  # build
  meson ninja-build pkg-config gcc clang libclang-rt-14-dev
  libsodium-dev libssl-dev liblmdb-dev libyubikey-dev libargon2-dev zlib1g-dev
  libseccomp-dev scdoc
  # tests: real clients and tools
  python3 lmdb-utils openssl isync fetchmail swaks
  # man -l renders the installed pages (test_install); systemd-analyze checks the
  # units (test_systemd); ss reads TCP keepalive timers (test_imapd)
  man-db systemd iproute2
  # reference peer for differential tests and benchmarks
  dovecot-imapd dovecot-lmtpd
  # MTA for the LMTP integration test (tests/test_postfix.py runs a private instance)
  postfix
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Dovecot's package scripts try to start the service; we never want the system
# instance running (tests start private instances on loopback ports).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
# postfix: no configuration (tests run private instances; never touch /etc/postfix).
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
