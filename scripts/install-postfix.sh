#!/usr/bin/env bash
# Installs Postfix (and the tools the tests and benchmarks compare against) from Debian's packages,
# non-interactively, and makes sure no system-wide Postfix is left listening: Freight runs its own
# private instance. Idempotent; needs root.
set -euo pipefail

need=()
command -v /usr/sbin/postfix >/dev/null 2>&1 || need+=(postfix)
command -v swaks >/dev/null 2>&1 || need+=(swaks)
command -v pflogsumm >/dev/null 2>&1 || need+=(pflogsumm)
command -v /usr/sbin/postfwd >/dev/null 2>&1 || need+=(postfwd)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-postfix: need root to install: ${need[*]}" >&2
    exit 1
  fi
  echo "install-postfix: installing ${need[*]}"
  # "No configuration": the package must not write /etc/postfix/main.cf or start a system Postfix.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string $(hostname -f 2>/dev/null || hostname)" | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# On a systemd host the package enables postfix.service; Freight's instance is the only Postfix we want.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now postfix.service >/dev/null 2>&1 || true
fi
if [ -f /etc/postfix/main.cf ] && /usr/sbin/postfix status >/dev/null 2>&1; then
  echo "install-postfix: stopping the system-wide Postfix (Freight runs a private instance)"
  /usr/sbin/postfix stop >/dev/null 2>&1 || true
fi
if command -v ss >/dev/null 2>&1 && ss -ltnH 'sport = :25' | grep -q .; then
  echo "install-postfix: warning: something still listens on port 25:" >&2
  ss -ltnp 'sport = :25' >&2
fi
echo "install-postfix: $(/usr/sbin/postconf -d mail_version 2>/dev/null || echo 'postfix not found')"
