#!/usr/bin/env bash
# A real S3 endpoint for the tests and benchmarks: Ceph's RGW (Debian 12's Ceph 16) on a single-node
# cluster, one mon + one bluestore OSD + radosgw, all state under one scratch directory. Ceph 16's RGW
# cannot run without RADOS, so this is the smallest real object store Debian ships. The facts and
# pitfalls behind each setting are in the shared Ceph RGW notes; the ones that bit are commented below.
#
#   bash scripts/ceph-rgw.sh install   apt-get ceph-mon ceph-osd radosgw curl if missing
#   bash scripts/ceph-rgw.sh start     bring the cluster up (or reuse one that answers), user and bucket made
#   bash scripts/ceph-rgw.sh stop      rgw, then osd, then mon, by PID (SIGKILL after a timeout)
#   bash scripts/ceph-rgw.sh env       `export S3_...` lines for eval
#   bash scripts/ceph-rgw.sh status    exit 0 when it answers (with the test keys and bucket)
#
# RAMSNAP_RGW_DIR moves the state (default /var/tmp/ramsnap-rgw: bluestore needs O_DIRECT, so it must be a
# disk file system such as ext4, never tmpfs). The ports are fixed (3300, 6800-7300, 7480): one per machine.
set -Eeuo pipefail # -E: the ERR trap of start also fires inside its functions

DIR=${RAMSNAP_RGW_DIR:-/var/tmp/ramsnap-rgw}
CONF=$DIR/ceph.conf
ENDPOINT=http://127.0.0.1:7480
REGION=us-east-1
BUCKET=ramsnap-test
# Fixed test keys: this endpoint only listens on 127.0.0.1 and holds nothing but test objects.
ACCESS_KEY=RAMSNAPTESTACCESSKEY
SECRET_KEY=ramsnap-test-secret-key-not-a-secret-0000
RGW_NAME=client.rgw.ramsnap

say() { echo "ceph-rgw: $*"; }
die() { echo "ceph-rgw: $*" >&2; exit 1; }

cmd_install() {
  local missing=()
  for c in ceph-mon ceph-osd radosgw curl; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ceph-mon ceph-osd radosgw curl with apt (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends ceph-mon ceph-osd radosgw curl >/dev/null
}

ceph_() { timeout 20 ceph -c "$CONF" --connect-timeout 10 "$@"; }

# The endpoint answers and our keys can see our bucket: a HEAD signed with the test keys.
answering() {
  curl -fsS -o /dev/null -m 3 -I --aws-sigv4 "aws:amz:$REGION:s3" -u "$ACCESS_KEY:$SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$ENDPOINT/$BUCKET" 2>/dev/null
}

# wait_for SECONDS WHAT COMMAND...: polls every 0.2 s.
wait_for() {
  local limit=$1 what=$2 t0=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - t0)) -lt "$limit" ] || die "$what did not come up within $limit s (logs: $DIR/log)"
    sleep 0.2
  done
}

write_conf() {
  local fsid=$1
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:3300
# No keyrings: a throwaway cluster on 127.0.0.1.
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
run_dir = $DIR/run
admin_socket = $DIR/run/\$name.asok
log_file = $DIR/log/\$name.log
mon_data = $DIR/mon/\$id
osd_data = $DIR/osd/\$id
rgw_data = $DIR/rgw
[mon]
# The default 1 s per map change makes start-up about 3x slower.
paxos_propose_interval = 0.1
[osd]
osd_objectstore = bluestore
# A sparse file that mkfs creates as \$osd_data/block (naming that path in bluestore_block_path makes a
# symlink to itself: ELOOP).
bluestore_block_create = true
bluestore_block_size = 64424509440
# Bounds the OSD's caches (its default is 4 GiB).
osd_memory_target = 939524096
[$RGW_NAME]
rgw_frontends = beast endpoint=127.0.0.1:7480
# With auth none, radosgw hangs forever in get_initial_auth_request (-13) without this.
ms_mon_client_mode = crc
# Deleted objects' data is collected after 2 h by default: the tests write and delete GiBs.
rgw_gc_obj_min_wait = 60
rgw_gc_processor_period = 60
# radosgw can take 120 s to stop when the OSD is already gone.
rgw_exit_timeout_secs = 10
EOF
}

start_mon() {
  local fsid=$1
  monmaptool --create --fsid "$fsid" --addv a '[v2:127.0.0.1:3300]' "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" -i a -f >>"$DIR/log/mon.out" 2>&1 &
  echo $! >"$DIR/pids/mon"
  wait_for 30 "the mon" ceph_ mon stat
}

osd_up() { ceph_ osd stat -f json | grep -q '"num_up_osds":1'; }

start_osd() {
  local uuid
  uuid=$(uuidgen)
  ceph_ osd new "$uuid" 0 >/dev/null
  mkdir -p "$DIR/osd/0"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >>"$DIR/log/osd-mkfs.out" 2>&1
  ceph-osd -c "$CONF" -i 0 -f >>"$DIR/log/osd.out" 2>&1 &
  echo $! >"$DIR/pids/osd"
  wait_for 60 "the OSD" osd_up
}

# All seven pools RGW would create, in one ceph call (read from stdin), before radosgw starts: made one
# by one by radosgw, each waits for its own map change.
create_pools() {
  local p cmds=""
  for p in .rgw.root default.rgw.log default.rgw.control default.rgw.meta default.rgw.buckets.index \
    default.rgw.buckets.data default.rgw.buckets.non-ec; do
    cmds+="osd pool create $p 8 8"$'\n'"osd pool application enable $p rgw"$'\n'
  done
  printf '%s' "$cmds" | ceph_ >>"$DIR/log/pools.out" 2>&1 || die "creating the RGW pools failed (see $DIR/log/pools.out)"
}

start_rgw() {
  radosgw -c "$CONF" -n "$RGW_NAME" -f >>"$DIR/log/rgw.out" 2>&1 &
  echo $! >"$DIR/pids/rgw"
  wait_for 60 "radosgw on $ENDPOINT" curl -fsS -o /dev/null -m 2 "$ENDPOINT/"
  timeout 30 radosgw-admin -c "$CONF" user create --uid=ramsnap --display-name=ramsnap \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  # Bun's S3 client cannot create buckets and RGW does not create them on write. Without the
  # UNSIGNED-PAYLOAD header RGW answers SignatureDoesNotMatch to curl's signature.
  curl -fsS -o /dev/null -m 10 -X PUT --aws-sigv4 "aws:amz:$REGION:s3" -u "$ACCESS_KEY:$SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$ENDPOINT/$BUCKET"
}

cmd_start() {
  if answering; then
    say "already up and answering at $ENDPOINT (bucket $BUCKET): reusing it"
    return 0
  fi
  local t0 fsid
  t0=$(date +%s.%N)
  trap 'echo "ceph-rgw: start failed at line $LINENO (logs: $DIR/log)" >&2' ERR
  for c in ceph-mon ceph-osd radosgw monmaptool uuidgen curl; do
    command -v "$c" >/dev/null 2>&1 || die "$c is not installed: run bash scripts/ceph-rgw.sh install"
  done
  cmd_stop quiet # whatever a previous run left (a daemon whose partners died) goes, with its state
  rm -rf "$DIR"
  mkdir -p "$DIR"/{run,log,pids,mon,osd,rgw}
  fsid=$(uuidgen)
  write_conf "$fsid"
  start_mon "$fsid"
  start_osd
  create_pools
  start_rgw
  answering || die "radosgw answers but the bucket $BUCKET is not reachable with the test keys (logs: $DIR/log)"
  say "up at $ENDPOINT, bucket $BUCKET, in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s (state: $DIR)"
}

# stop_pid NAME SECONDS: SIGTERM, then SIGKILL if it is still there after SECONDS.
stop_pid() {
  local f=$DIR/pids/$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  rm -f "$f"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  say "$1 (pid $pid) did not stop within $2 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
  # rgw first (it waits for the OSD on its way out), then the OSD, then the mon.
  stop_pid rgw 15
  stop_pid osd 15
  stop_pid mon 10
  [ "${1:-}" = quiet ] || say "stopped (state left in $DIR for its logs; the next start replaces it)"
}

cmd_env() {
  echo "export S3_ENDPOINT=$ENDPOINT"
  echo "export S3_ACCESS_KEY_ID=$ACCESS_KEY"
  echo "export S3_SECRET_ACCESS_KEY=$SECRET_KEY"
  echo "export S3_REGION=$REGION"
  echo "export S3_BUCKET=$BUCKET"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  status) answering ;;
  *) die "usage: bash scripts/ceph-rgw.sh install|start|stop|env|status" ;;
esac
