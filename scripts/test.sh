#!/usr/bin/env bash
# Set up gpupool with its test tools, then run the whole test suite (no GPU needed).
# Extra arguments go to pytest, e.g. `scripts/test.sh -k store -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev

# System services the tests start for real (each test skips with a reason where one is missing).
need_apt=()
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need_apt+=(postgresql)
# Debian's chromium for the dashboard's browser test (never `playwright install`).
[[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
if (( ${#need_apt[@]} )) && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "test: installing ${need_apt[*]} with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# kube-apiserver + kube-scheduler for tests/kube: built once, cached outside the clone.
bash scripts/k8s-build.sh || echo "test: no Kubernetes control plane; tests/kube will skip" >&2
# A real libvirtd with QEMU (TCG, no KVM needed) for the VM lifecycle-event test; ~35 small packages.
need_vm=()
[[ -x /usr/sbin/libvirtd ]] || need_vm+=(libvirt-daemon libvirt-daemon-driver-qemu)
[[ -x /usr/bin/qemu-system-x86_64 ]] || need_vm+=(qemu-system-x86)
if (( ${#need_vm[@]} )) && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "test: installing ${need_vm[*]} with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_vm[@]}" >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_vm[@]}" >/dev/null; }
fi
exec .venv/bin/python -m pytest "$@"
