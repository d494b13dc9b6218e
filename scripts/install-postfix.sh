#!/usr/bin/env bash
# Installs what Freight's private Postfix instances, the tests and the benchmarks need from Debian's
# packages, non-interactively. Idempotent; needs root only when something is missing.
#
# It never stops, disables, reconfigures or reloads a Postfix it did not start. A machine that already
# runs Postfix keeps it running as it was: Freight's instances use the same binaries with their own
# config directory, queue directory, data directory and loopback ports, so nothing is shared with the
# host's instance (/etc/postfix, /var/spool/postfix, port 25). When the package is missing it is
# installed with "No configuration" and is neither started nor enabled.
set -euo pipefail

# Tools the benchmarks compare against are checked by the names the benchmarks run.
declare -A tool_of=(
  [postfix]=/usr/sbin/postfix
  [swaks]=swaks
  [pflogsumm]=pflogsumm
  [postfwd]=/usr/sbin/postfwd2
  [openssl]=openssl
  [sqlite3]=sqlite3
)
need=()
for pkg in postfix swaks pflogsumm postfwd openssl sqlite3; do
  command -v "${tool_of[$pkg]}" >/dev/null 2>&1 || need+=("$pkg")
done

# The host's instance is the one Postfix's own commands find by default: MAIL_CONFIG, else /etc/postfix.
host_postfix_state() {
  if [ -f "${MAIL_CONFIG:-/etc/postfix}/main.cf" ] && /usr/sbin/postfix status >/dev/null 2>&1; then
    echo "running (left as it is)"
  elif [ -x /usr/sbin/postfix ]; then
    echo "installed, not running (left as it is)"
  else
    echo "not installed"
  fi
}

if [ "${#need[@]}" -eq 0 ]; then
  echo "install-postfix: nothing to install; host Postfix: $(host_postfix_state)"
else
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-postfix: need root to install: ${need[*]}" >&2
    exit 1
  fi
  had_postfix=yes
  [ -x /usr/sbin/postfix ] || had_postfix=no
  for pkg in "${need[@]}"; do
    if [ "$pkg" = postfix ]; then echo "install-postfix: installing postfix … (not started, not enabled)"; else echo "install-postfix: installing $pkg …"; fi
  done
  # "No configuration": the package writes no /etc/postfix/main.cf, so it has nothing to start.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string $(hostname -f 2>/dev/null || hostname)" | debconf-set-selections
  # policy-rc.d exit 101 tells invoke-rc.d (every maintainer script's way to start a service) not to
  # start anything during this install; an operator's own policy-rc.d is kept and respected.
  own_policy=no
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=yes
  fi
  trap '[ "$own_policy" = yes ] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Only a Postfix this script just installed is kept from starting at boot: a host's own is its own.
  if [ "$had_postfix" = no ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable postfix.service >/dev/null 2>&1 || true
  fi
fi

missing=()
for pkg in "${!tool_of[@]}"; do
  command -v "${tool_of[$pkg]}" >/dev/null 2>&1 || missing+=("${tool_of[$pkg]} (package $pkg)")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-postfix: still missing after install: ${missing[*]}" >&2
  exit 1
fi
echo "install-postfix: $(/usr/sbin/postconf -d mail_version 2>/dev/null)"
