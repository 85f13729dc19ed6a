#!/usr/bin/env bash
# Set up gpupool in ./.venv (idempotent). `--dev` adds test and lint tools, `--vms` VM support.
# Works on a fresh Debian with Python 3.11; installs python3-venv with apt when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[[ "${1:-}" == "--dev" ]] && extras="[dev]"
[[ "${1:-}" == "--vms" ]] && extras="[vms]"  # `serve --libvirt` (VMs); [dev] includes it

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "gpupool needs Python >= 3.11 (found: $("$python" --version 2>&1))" >&2
    exit 2
fi

if [[ ! -x .venv/bin/python ]]; then
    if ! "$python" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        echo "setup: python3-venv missing; installing it with apt-get" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        "$python" -m venv .venv
    fi
fi

# Skip pip when this pyproject.toml was installed already with these extras (or more): a rerun is
# instant and needs no network. The stamp is "<sha256 of pyproject.toml> <extras>".
stamp=.venv/.gpupool-setup
pyproject_hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ -x .venv/bin/gpupool && -f $stamp ]] && read -r done_hash done_extras <"$stamp" \
    && [[ $done_hash == "$pyproject_hash" && ( -z $extras || $done_extras == "$extras" ) ]]; then
    echo "setup: .venv is up to date" >&2
else
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    [[ -n "$extras" ]] && bash scripts/libvirt-build-deps.sh .venv/bin/python
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}"
    echo "$pyproject_hash ${extras:-[]}" >"$stamp"
fi
echo "setup: gpupool installed in $(pwd)/.venv; \`source .venv/bin/activate\` puts gpupool on your PATH" >&2
