#!/usr/bin/env bash
# Builds the stand-in for docker.io/library/node:24-bookworm-slim that the image test uses where
# no registry can be pulled from: a debootstrap'd Debian bookworm (minbase + ca-certificates), the
# Node 24 binary from node_modules/node, and npm, at the paths the official image uses
# (/usr/local/bin/node, /usr/local/lib/node_modules/npm). The published Dockerfiles keep their
# public base; only `--build-arg NODE_IMAGE=localhost/enclave-node-base:24` points them here.
# Needs root, debootstrap and buildah (Debian packages). Cached: a second run takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."
store=${ENCLAVE_IMAGE_STORE:-${XDG_CACHE_HOME:-$HOME/.cache}/enclave/images}
tag=localhost/enclave-node-base:24
bah() { buildah --root "$store/storage" --runroot "$store/run" --storage-driver vfs "$@"; }

if bah inspect --type image "$tag" >/dev/null 2>&1; then echo "local-base: $tag exists"; exit 0; fi
command -v debootstrap >/dev/null || { echo "local-base: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
[ -x node_modules/node/bin/node ] || { echo "local-base: node_modules/node/bin/node missing (npm ci)" >&2; exit 1; }
npm_dir=$(npm root -g)/npm
[ -f "$npm_dir/package.json" ] || { echo "local-base: no npm at $npm_dir" >&2; exit 1; }

rootfs=$store/rootfs-bookworm
if [ ! -s "$rootfs/etc/ssl/certs/ca-certificates.crt" ]; then
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" http://deb.debian.org/debian
fi

ctr=$(bah from scratch)
trap 'bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
mnt=$(bah mount "$ctr")
cp -a "$rootfs/." "$mnt/"
rm -rf "$mnt/var/cache/apt/archives/"*.deb "$mnt/var/lib/apt/lists/"*
install -D -m 0755 node_modules/node/bin/node "$mnt/usr/local/bin/node"
mkdir -p "$mnt/usr/local/lib/node_modules"
cp -a "$npm_dir" "$mnt/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
# Trust what this machine trusts: `npm ci` in the build stage reaches the registry through the
# same TLS-inspecting network path as the host, whose CA is only in the host's bundle.
cp /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/ca-certificates.crt"
bah umount "$ctr" >/dev/null
bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt --cmd node "$ctr"
bah commit --rm "$ctr" "$tag" >/dev/null
trap - EXIT
echo "local-base: built $tag"
