#!/usr/bin/env bash
# Installs what ramsnap's tests and benchmarks need on a fresh Debian 12 machine (run as root):
# Bun (from npm), the project's packages, QEMU 10 (bookworm-backports: Debian 12's own QEMU 7.2 has no
# mapped-ram), and fio. Safe to run again: it skips what is already there. With --qemu11 it also builds the
# second QEMU the tests can run (QEMU 11 in a Debian sid chroot: scripts/qemu11.sh, RAMSNAP_QEMU=sid).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bun >/dev/null 2>&1; then
  echo "setup: installing Bun from npm"
  npm install -g bun@1.4.5 >/dev/null
fi
bun install --frozen-lockfile >/dev/null

qemu_major() { qemu-system-x86_64 --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n 1; }
need_apt=()
if [ "$(qemu_major || true)" -lt 10 ] 2>/dev/null || [ -z "$(qemu_major || true)" ]; then need_apt+=(qemu); fi
command -v fio >/dev/null 2>&1 || need_apt+=(fio)

if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # The backports suite comes from the same mirror the machine already uses; no host name is written here.
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    elif [ -f /etc/apt/sources.list ]; then
      uri=$(awk '/^deb / && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || { echo "setup: cannot find the Debian mirror in the apt sources" >&2; exit 1; }
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
      > /etc/apt/sources.list.d/ramsnap-backports.sources
  fi
  echo "setup: installing ${need_apt[*]} with apt"
  apt-get update -q >/dev/null
  for p in "${need_apt[@]}"; do
    case "$p" in
      qemu) apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null ;;
      fio) apt-get install -y -q --no-install-recommends fio >/dev/null ;;
    esac
  done
fi
echo "setup: bun $(bun --version), $(qemu-system-x86_64 --version | head -n 1), $(fio --version)"
if [ "${1:-}" = "--qemu11" ]; then bash scripts/qemu11.sh build && echo "setup: $(bash scripts/qemu11.sh version) in a sid chroot"; fi
