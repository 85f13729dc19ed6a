#!/usr/bin/env bash
# Build kube-apiserver and kube-scheduler v1.20.2 from Debian's `kubernetes` source package with
# Debian's Go, for the Kubernetes tests (tests/kube). Installs etcd-server too.
#
# The binaries are cached OUTSIDE the clone, keyed by version, so only the first run builds
# (~3-4 min on 2 cores, ~1.9 GB of disk while building, ~150 MB kept):
#     ${GPUPOOL_K8S_CACHE:-/var/cache/gpupool/k8s-v1.20.2}/bin/{kube-apiserver,kube-scheduler}
# Needs root and apt-get (a fresh Debian 12 is enough). Exits 0 with a note when it cannot build,
# so the test suite still runs and the Kubernetes tests skip with the reason.
#
# Why the vendor swap: Kubernetes 1.20 vendors modern-go/reflect2 v1.0.1, which makes
# kube-apiserver crash at run time under Go >= 1.18 ("unexpected fault address ... mapiterinit").
# Debian ships reflect2 1.0.2 and json-iterator 1.1.12, the same bump upstream made for Go 1.18.
set -euo pipefail

VERSION=1.20.2
CACHE=${GPUPOOL_K8S_CACHE:-/var/cache/gpupool/k8s-v$VERSION}
BIN=$CACHE/bin

have_binaries() {
    [[ -x $BIN/kube-apiserver && -x $BIN/kube-scheduler ]] \
        && "$BIN/kube-apiserver" --version 2>/dev/null | grep -q "v$VERSION" \
        && command -v etcd >/dev/null
}

if have_binaries; then
    echo "k8s-build: cached control plane v$VERSION in $BIN" >&2
    exit 0
fi
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "k8s-build: not root or no apt-get; Kubernetes tests will skip (see docs/kubernetes.md)" >&2
    exit 0
fi

add_deb_src() {
    # The same mirrors as the machine's binary sources, for `apt-get source`.
    grep -rqs '^deb-src\|^Types:.*deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && grep -q '^Types: deb$' "$f" \
            && sed 's/^Types: deb$/Types: deb-src/' "$f" > "${f%.sources}-gpupool-src.sources"
    done
    if [[ -f /etc/apt/sources.list ]] && grep -q '^deb ' /etc/apt/sources.list; then
        grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/gpupool-src.list
    fi
}

start=$(date +%s)
echo "k8s-build: building kube-apiserver + kube-scheduler v$VERSION (first run only, ~3-4 min)" >&2
add_deb_src
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    golang-go dpkg-dev make rsync etcd-server openssl \
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/gpupool-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source -qq kubernetes 2>&1 | grep -v -i 'unsandboxed\|^W:\|dpkg-source: info' || true)
src=$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
[[ -n $src && -f $src/cmd/kube-apiserver/apiserver.go ]] || { echo "k8s-build: no kubernetes source" >&2; exit 1; }

gocode=/usr/share/gocode/src/github.com
for pkg in modern-go/reflect2 json-iterator/go; do
    vendored=$src/vendor/github.com/$pkg
    find "$vendored" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
    find "$gocode/$pkg" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
        -exec cp {} "$vendored/" \;
done

# Kubernetes 1.20 builds in GOPATH mode; the OpenAPI definitions are generated code.
export GOPATH=$work/gopath GOCACHE=$work/gocache GO111MODULE=off CGO_ENABLED=0 GOFLAGS=
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$src" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
[[ -f pkg/generated/openapi/zz_generated.openapi.go ]] || make gen_openapi >/dev/null
ldflags="-s -w"
for v in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $v.gitVersion=v$VERSION -X $v.gitMajor=1 -X $v.gitMinor=20 -X $v.gitTreeState=clean"
done
mkdir -p "$CACHE"
rm -rf "$CACHE"/bin.*  # what an interrupted earlier build left
staging=$(mktemp -d "$CACHE/bin.XXXXXX")
go build -trimpath -ldflags "$ldflags" -o "$staging/" ./cmd/kube-apiserver ./cmd/kube-scheduler
# Swap the finished directory in whole, so a build killed half-way never looks cached.
rm -rf "$BIN" && mv "$staging" "$BIN" && chmod 755 "$BIN"
have_binaries || { echo "k8s-build: built binaries do not run" >&2; exit 1; }
echo "k8s-build: done in $(( $(date +%s) - start )) s -> $BIN" >&2
