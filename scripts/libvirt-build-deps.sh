#!/usr/bin/env bash
# What pip needs to build libvirt-python (the `[vms]` extra, part of `[dev]`): libvirt's headers,
# pkg-config, a C compiler and Python's headers. Installed with apt-get when missing (as root);
# pip keeps the built wheel in its cache (~/.cache/pip), so later setups skip the build.
set -euo pipefail
python=${1:-python3}
need=()
pkg-config --exists libvirt 2>/dev/null || need+=(libvirt-dev pkg-config)
command -v cc >/dev/null || need+=(gcc)
include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[[ -f "$include/Python.h" ]] || need+=("python$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-dev")
(( ${#need[@]} )) || exit 0
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "setup: VM support needs ${need[*]} to build libvirt-python; install them (as root) and rerun" >&2
    exit 2
fi
echo "setup: installing ${need[*]} with apt-get (to build libvirt-python)" >&2
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
