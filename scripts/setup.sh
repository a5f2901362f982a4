#!/usr/bin/env bash
# Installs what ramsnap's tests and benchmarks need on a fresh Debian 12 machine (run as root):
# Bun (from npm, the pinned version), the project's packages, QEMU 10 (bookworm-backports: Debian 12's
# own QEMU 7.2 has no mapped-ram), fio, and strace (the crash-order and direct-I/O tests judge ramsnap
# from its system calls). Safe to run again: it skips what is already there. With --qemu11 it also builds
# the second QEMU the tests can run (QEMU 11 in a Debian sid chroot: scripts/qemu11.sh, RAMSNAP_QEMU=sid).
# The S3 tests' object store (Ceph RGW) is installed here and started by .ci/run (scripts/ceph-rgw.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# The version the lockfile, bun-types and docs/bun-platform-notes.md were checked with; another Bun is
# replaced rather than trusted (its test runner's summary lines and FFI types have changed before).
BUN_VERSION=1.4.5
if [ "$(bun --version 2>/dev/null || true)" != "$BUN_VERSION" ]; then
  echo "setup: installing Bun $BUN_VERSION from npm (found: $(bun --version 2>/dev/null || echo none))"
  npm install -g "bun@$BUN_VERSION" >/dev/null
  hash -r
fi
[ "$(bun --version)" = "$BUN_VERSION" ] || { echo "setup: bun is $(bun --version) at $(command -v bun), not $BUN_VERSION" >&2; exit 1; }
bun install --frozen-lockfile >/dev/null

qemu_major() { qemu-system-x86_64 --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n 1; }
need_apt=()
if [ "$(qemu_major || true)" -lt 10 ] 2>/dev/null || [ -z "$(qemu_major || true)" ]; then need_apt+=(qemu); fi
command -v fio >/dev/null 2>&1 || need_apt+=(fio)
command -v strace >/dev/null 2>&1 || need_apt+=(strace)

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
      strace) apt-get install -y -q --no-install-recommends strace >/dev/null ;;
    esac
  done
fi
# What apt gave must be what the tests need: mapped-ram as the tests use it is QEMU 10's.
major=$(qemu_major || true)
if [ -z "$major" ] || [ "$major" -lt 10 ]; then
  echo "setup: QEMU 10 or later is needed, found: $(qemu-system-x86_64 --version 2>/dev/null | head -n 1 || echo none)" >&2
  exit 1
fi
bash scripts/ceph-rgw.sh install
echo "setup: bun $(bun --version), $(qemu-system-x86_64 --version | head -n 1), $(fio --version), $(strace -V | head -n 1), $(radosgw --version | cut -d' ' -f1-3)"
if [ "${1:-}" = "--qemu11" ]; then bash scripts/qemu11.sh build && echo "setup: $(bash scripts/qemu11.sh version) in a sid chroot"; fi
