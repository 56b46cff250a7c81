#!/usr/bin/env bash
# build-k8s.sh — kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy v1.20.2
# for the local cluster (tests/cluster, `keepvip demo`), built from Debian bookworm's
# `kubernetes` *source* package with Debian's Go 1.19. Nothing but apt is contacted.
#
# Why from source: there is no docker here, no kind/k3s/envtest download, and no package
# on Debian, PyPI or npm that ships kube-apiserver. Bookworm's orig tarball is the full
# upstream tree including vendor/, so it builds offline. Measured facts and the three
# fixes it needs are in ../shared/reference/local-control-plane.md:
#   1. GOPATH mode (module mode stops with "updates to go.mod needed");
#   2. pkg/generated/openapi is generated with the vendored openapi-gen;
#   3. vendored modern-go/reflect2 v1.0.1 segfaults under Go >= 1.18, so Debian's 1.0.2
#      (golang-github-modern-go-reflect2-dev) replaces it.
#
# Idempotent: when the binaries are cached it returns at once (0 s). Cold: ~5 min on 2 cores.
# Only missing binaries are built: a cache made before kube-proxy was added gets just
# kube-proxy (the others are not rebuilt or replaced under running clusters).
# env: K8S_PREFIX (default ~/.cache/keepvip/k8s-v1.20.2; binaries in $K8S_PREFIX/bin),
#      GOCACHE (default ~/.cache/go-build; a warm Go cache makes a rebuild ~20 s).
set -euo pipefail

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}
PREFIX=${K8S_PREFIX:-$CACHE/keepvip/k8s-v1.20.2}
COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler kube-proxy"
K8S_VERSION=v1.20.2
SRC_VERSION_PREFIX="1.20.5+really1.20.2"

cached() {
  local c
  for c in $COMPONENTS; do [ -x "$PREFIX/bin/$c" ] || return 1; done
  command -v etcd >/dev/null
}
if cached; then echo "keepvip: k8s $K8S_VERSION binaries cached in $PREFIX/bin"; exit 0; fi

mkdir -p "$PREFIX"
# Two concurrent runs (make test in two shells) must not build into each other.
exec 9>"$PREFIX/.build.lock"
flock 9
if cached; then echo "keepvip: k8s $K8S_VERSION binaries cached in $PREFIX/bin"; exit 0; fi

if [ "$(id -u)" != 0 ]; then
  echo "keepvip: building the local control plane needs apt (root): run as root once" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)

# 1. Toolchain and etcd (hack/install-system-deps.sh normally installed them already).
missing=()
for p in golang-go etcd-server dpkg-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. A deb-src entry for bookworm. Images often ship binary entries only; the
#    kubernetes source with vendor/ exists only in bookworm (trixie/sid are kubectl-only).
have_src() { apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: $SRC_VERSION_PREFIX"; }
if ! have_src; then
  src_list=/etc/apt/sources.list.d/keepvip-bookworm-src.sources
  if [ ! -f "$src_list" ]; then
    echo "keepvip: adding a deb-src entry for bookworm ($src_list)"
    printf '%s\n' \
      "# Added by keepvip hack/build-k8s.sh: the kubernetes source package (local control plane)." \
      "Types: deb-src" "URIs: http://deb.debian.org/debian" "Suites: bookworm" "Components: main" \
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" > "$src_list"
  fi
  apt-get update -qq
  have_src || { echo "keepvip: kubernetes $SRC_VERSION_PREFIX source not found in apt" >&2; exit 1; }
fi

W=$(mktemp -d /tmp/keepvip-k8s-build.XXXXXX)
trap 'cd /; chmod -R u+w "$W" 2>/dev/null; rm -rf "$W"' EXIT
chmod 755 "$W"   # apt's _apt user downloads into it (else a "download is performed unsandboxed" warning)
cd "$W"

# 3. Source: the orig tarball is the full upstream tree (vendor/ and staging/ included).
echo "keepvip: fetching the kubernetes source package"
apt-get source -qq --download-only "kubernetes/bookworm" >/dev/null 2>&1 \
  || apt-get source -qq --download-only kubernetes >/dev/null
# gpgv "no public key" is harmless: apt verified the checksums against the signed index.
dpkg-source -q -x kubernetes_*.dsc src >/dev/null 2>&1
SRC=$W/src

# 4. reflect2 swap (fix 3).
apt-get download -qq golang-github-modern-go-reflect2-dev >/dev/null
dpkg-deb -x golang-github-modern-go-reflect2-dev_*.deb r2
rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
cp -r r2/usr/share/gocode/src/github.com/modern-go/reflect2 "$SRC/vendor/github.com/modern-go/reflect2"

# 5. GOPATH-mode build (fix 1), as upstream v1.20's hack/ scripts and Debian's rules do.
export GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0 GOPATH=$W/gopath
export GOCACHE=${GOCACHE:-$CACHE/go-build}
mkdir -p "$GOPATH/src/k8s.io"
ln -s "$SRC" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"

# 6. OpenAPI definitions (fix 2): the same inputs as upstream's Makefile.generated_files,
#    i.e. every package tagged +k8s:openapi-gen=.
echo "keepvip: generating pkg/generated/openapi"
go build -o "$W/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
dirs=$(find -H . \( -not \( \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune \) \) \
    -type f -name '*.go' | sed 's|^./staging/src|vendor|; s|/[^/]*$||; s|^./||' | LC_ALL=C sort -u)
# shellcheck disable=SC2086
tagfiles=$(find $dirs -maxdepth 1 -type f -name '*.go' | xargs grep -l '^// *+k8s:' \
    | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/')
# shellcheck disable=SC2086
inputs=$(grep -l '+k8s:openapi-gen=' $tagfiles | xargs -n1 dirname | LC_ALL=C sort -u \
    | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
"$W/openapi-gen" -i "$inputs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
  -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$W/violations.report" 2>/dev/null

# 7. Build. There is no .git, so the version comes in through -X.
V=k8s.io/kubernetes/vendor/k8s.io
LDF="-s -w"
for p in $V/component-base/version $V/client-go/pkg/version; do
  LDF="$LDF -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=20"
  LDF="$LDF -X $p.gitTreeState=clean -X $p.buildDate=2021-01-13T00:00:00Z"
done
mkdir -p "$W/out" "$PREFIX/bin"
todo=""
for c in $COMPONENTS; do [ -x "$PREFIX/bin/$c" ] || todo="$todo $c"; done
for c in $todo; do
  echo "keepvip: building $c"
  t=$(date +%s)
  go build -trimpath -ldflags "$LDF" -o "$W/out/$c" "./cmd/$c"
  echo "keepvip: built $c in $(( $(date +%s) - t )) s"
done
# Install each binary atomically, so an interrupted run never leaves a half-written
# binary that a later run would take for a cached one.
for c in $todo; do
  install -m 0755 "$W/out/$c" "$PREFIX/bin/.$c.tmp"
  mv -f "$PREFIX/bin/.$c.tmp" "$PREFIX/bin/$c"
done
for c in $todo; do "$PREFIX/bin/$c" --version; done
echo "keepvip: built k8s $K8S_VERSION into $PREFIX/bin in $(( $(date +%s) - start )) s"
