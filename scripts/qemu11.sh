#!/usr/bin/env bash
# A second QEMU for the integration tests: QEMU 11 from Debian sid, in a chroot (run as root).
#
# Installing sid's QEMU on the Debian 12 host would pull sid's C library, so it lives in a minimal sid
# chroot and runs as `chroot ROOT qemu-system-x86_64 ...`. The host's /dev/shm (guest RAM backends), /tmp
# (QMP sockets, migration files, disk images) and /proc are bind-mounted at the same paths inside it, so a
# path means the same file on both sides and fd passing (SCM_RIGHTS) works as usual: same kernel.
#
#   bash scripts/qemu11.sh build        build the chroot if it is not there yet (~350 MB, about a minute)
#   bash scripts/qemu11.sh run CMD...   build if needed, mount the binds, run CMD with RAMSNAP_QEMU=sid, and
#                                       unmount when it ends (unless another run is still going)
#   bash scripts/qemu11.sh up | down    mount the binds and leave them (until `down` or a run's end)
#   bash scripts/qemu11.sh remove       unmount, then delete the chroot
#   bash scripts/qemu11.sh version      the chroot's QEMU version line
#
# RAMSNAP_QEMU11_ROOT chooses where the chroot lives; harness/qemu-binary.ts reads the same variable.
set -euo pipefail

ROOT="${RAMSNAP_QEMU11_ROOT:-/var/cache/ramsnap/qemu11-sid}"
SUITE=sid
# Same paths inside and out: nothing a test hands QEMU needs translating (harness/qemu-binary.ts checks).
BINDS=(/proc /dev/shm /tmp)
# Written last by build: a chroot without it is a half-finished one, never reused.
MARK="$ROOT/.ramsnap-qemu11-complete"

say() { echo "qemu11: $*" >&2; }

mirror_uri() {
  # The mirror the machine already uses, as scripts/setup.sh finds it: no host name is written here.
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  elif [ -f /etc/apt/sources.list ]; then
    uri=$(awk '/^deb / { print $2; exit }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { say "cannot find the Debian mirror in the apt sources"; exit 1; }
  echo "$uri"
}

# Mount points under ROOT that are mounted now (deepest first), from the kernel's own table.
mounts_under_root() {
  findmnt -rn -o TARGET | awk -v root="$ROOT" 'index($0, root "/") == 1 || $0 == root' | sort -r
}

build() {
  if [ -f "$MARK" ]; then return 0; fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap with apt"
    # A machine whose QEMU and fio were already there may never have fetched the package lists.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null; }
  fi
  local partial="$ROOT.partial"
  # debootstrap mounts /proc and /sys in the tree while it works, and a failed or killed one leaves them.
  unmount_partial() { findmnt -rn -o TARGET | awk -v p="$partial/" 'index($0, p) == 1' | sort -r | xargs -r -n1 umount -l; }
  unmount_partial
  rm -rf --one-file-system "$partial"
  mkdir -p "$(dirname "$ROOT")"
  local started=$SECONDS
  say "building a $SUITE chroot with qemu-system-x86 in $ROOT"
  debootstrap --variant=minbase --include=qemu-system-x86 "$SUITE" "$partial" "$(mirror_uri)" >"$partial.log" 2>&1 ||
    { unmount_partial; say "debootstrap failed; the end of its log:"; tail -n 30 "$partial.log" >&2; exit 1; }
  unmount_partial
  # The package cache is not needed to run QEMU: ~100 MB less to keep.
  rm -rf "$partial"/var/cache/apt/archives/*.deb
  rm -f "$partial.log"
  mv "$partial" "$ROOT"
  chroot "$ROOT" qemu-system-x86_64 --version | head -n 1 >"$MARK"
  say "built in $((SECONDS - started)) s: $(cat "$MARK")"
}

up() {
  build
  local b
  for b in "${BINDS[@]}"; do
    mkdir -p "$ROOT$b"
    mountpoint -q "$ROOT$b" || mount --bind "$b" "$ROOT$b"
  done
}

unmount() {
  local m
  for m in "$@"; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}

down() {
  local m
  mapfile -t m < <(mounts_under_root)
  [ ${#m[@]} -eq 0 ] || unmount "${m[@]}"
}

# Runs may overlap (two terminals, two worktrees). Lock 8 is held briefly by whoever builds, mounts or
# unmounts; lock 9 is held shared by every run for as long as it runs, so the last run out (the only one
# that can turn its hold exclusive) unmounts, and `down` waits for the runs to end.
mkdir -p "$(dirname "$ROOT")"
exec 8>"$ROOT.lock" 9>"$ROOT.users"

case "${1:-}" in
  build) flock -x 8; build ;;
  up) flock -x 8; up ;;
  down) flock -x 8; flock -x 9; down ;;
  run)
    shift
    [ $# -gt 0 ] || { say "usage: $0 run CMD..."; exit 2; }
    flock -x 8
    up
    flock -s 9
    flock -u 8
    # Unmount however this run ends (failure, Ctrl-C, TERM from CI's timeout), unless another still runs.
    trap 'flock -x 8; if flock -xn 9; then down; fi' EXIT
    # In the background so a signal is handled at once (bash runs traps only after a foreground command
    # ends) and passed on; `<&0` keeps stdin, which a background command would otherwise lose. The command
    # does not get the locks' descriptors: a QEMU it leaves behind must not keep the binds mounted forever.
    RAMSNAP_QEMU=sid RAMSNAP_QEMU11_ROOT="$ROOT" "$@" <&0 8>&- 9>&- &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 130' INT
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM
    wait "$child"
    ;;
  remove)
    flock -x 8
    flock -x 9
    down
    # Never delete through a bind mount: /tmp and /dev/shm would go with the chroot.
    if [ -n "$(mounts_under_root)" ]; then say "still mounted under $ROOT:"; mounts_under_root >&2; exit 1; fi
    rm -rf --one-file-system "$ROOT" "$ROOT.partial"
    rm -f "$ROOT.lock" "$ROOT.users"
    ;;
  version) flock -x 8; build; cat "$MARK" ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
