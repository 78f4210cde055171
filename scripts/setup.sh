#!/usr/bin/env bash
# One-shot, idempotent setup of everything `npm test` and `npm start` need on a Debian machine:
#   1. Debian packages (PostgreSQL, MariaDB, Redis, mosquitto, openssl) — installed only when missing;
#   2. node_modules (npm ci, which also brings Node 24) — only when missing or older than package-lock.json;
#   3. the Go-built control plane, helm and kube-linter (scripts/build-tools.sh; cached per pinned version).
# Prints per-phase timings. Any failure names what is missing and exits non-zero, before anything runs
# against a half-configured machine. `--quiet` prints only the summary line (used by `npm start`).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/versions.env
quiet=false
for arg in "$@"; do
  case "$arg" in
    --quiet|-q) quiet=true ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown option '$arg' (known: --quiet)" >&2; exit 2 ;;
  esac
done

say() { $quiet || echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }
summary=()
phase() { # phase NAME COMMAND...: runs a phase, records its duration
  local name=$1 t0=$SECONDS; shift
  "$@"
  summary+=("$name $((SECONDS - t0))s")
  say "$name done in $((SECONDS - t0))s"
}

# Runs a command, keeping its output out of the way in --quiet mode but showing it on failure.
run_logged() {
  if $quiet; then
    local log; log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then cat "$log" >&2; rm -f "$log"; return 1; fi
    rm -f "$log"
  else
    "$@"
  fi
}

# --- 1. Debian packages -------------------------------------------------------------------------
# package → a file it installs, so "missing" is a cheap filesystem check.
declare -A probe=(
  [postgresql]=/usr/lib/postgresql
  [mariadb-server]=/usr/sbin/mariadbd
  [redis-server]=/usr/bin/redis-server
  [mosquitto]=/usr/sbin/mosquitto
  [mosquitto-clients]=/usr/bin/mosquitto_pub
  [openssl]=/usr/bin/openssl
  # the image test (test/integration/images) builds both Dockerfiles without a container engine
  [buildah]=/usr/bin/buildah
  [debootstrap]=/usr/sbin/debootstrap
  # the test node (test/support/node.ts): container runtime, CNI plugins, what kube-proxy and
  # kube-router drive (iptables, ipset, conntrack), gcc for the static pause binary
  [containerd]=/usr/bin/containerd
  [runc]=/usr/sbin/runc
  [containernetworking-plugins]=/usr/lib/cni/bridge
  [iptables]=/usr/sbin/iptables
  [ipset]=/usr/sbin/ipset
  [conntrack]=/usr/sbin/conntrack
  [iproute2]=/usr/sbin/ip
  [gcc]=/usr/bin/gcc
  [libc6-dev]=/usr/include/stdio.h
)
apt_packages() {
  local missing=()
  for pkg in "${!probe[@]}"; do [ -e "${probe[$pkg]}" ] || missing+=("$pkg"); done
  command -v setpriv >/dev/null || missing+=(util-linux)
  if [ ${#missing[@]} -eq 0 ]; then say "Debian packages present"; return 0; fi
  say "installing Debian packages: ${missing[*]}"
  command -v apt-get >/dev/null || die "missing ${missing[*]} and apt-get is not available (Debian/Ubuntu expected); install them by hand"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "missing ${missing[*]}; run as root (or install sudo) so apt-get can install them"
    sudo=(sudo)
  fi
  # policy-rc.d: don't start the packages' system services; tests start private instances.
  run_logged "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q \
    || die "apt-get update failed (is a Debian mirror reachable?) — needed to install: ${missing[*]}"
  run_logged "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install failed for: ${missing[*]}"
  for pkg in "${missing[@]}"; do
    [ "$pkg" = util-linux ] && continue
    [ -e "${probe[$pkg]}" ] || die "package $pkg installed but ${probe[$pkg]} is still missing"
  done
}

# --- 2. node_modules ----------------------------------------------------------------------------
node_modules() {
  command -v npm >/dev/null || die "npm is not installed (any Node >= 18 with npm bootstraps; Node 24 comes from package.json): apt-get install npm"
  local hidden=node_modules/.package-lock.json
  if [ -f "$hidden" ] && [ ! package-lock.json -nt "$hidden" ] && [ -x node_modules/.bin/node ]; then
    say "node_modules up to date"
    return 0
  fi
  say "npm ci (node_modules missing or older than package-lock.json)"
  # Serialised with other npm installs in this work tree (same lock file as `flock /tmp/npm.lock npm install`).
  local lock=()
  command -v flock >/dev/null && lock=(flock /tmp/npm.lock)
  run_logged "${lock[@]}" npm ci --no-audit --no-fund || die "npm ci failed (is the npm registry reachable?)"
  [ -x node_modules/.bin/node ] || die "npm ci finished but node_modules/.bin/node (Node ${NODE_MAJOR:-24}) is missing"
}

# --- 3. Go-built tools --------------------------------------------------------------------------
go_tools() {
  if $quiet; then
    run_logged bash scripts/build-tools.sh
  else
    bash scripts/build-tools.sh
  fi
}

t_all=$SECONDS
phase apt apt_packages
phase npm node_modules
phase tools go_tools
echo "setup: ready in $((SECONDS - t_all))s (${summary[*]})"
