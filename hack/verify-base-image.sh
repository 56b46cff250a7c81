#!/usr/bin/env bash
# Checks that the Dockerfile's base image digest is what the registry serves for its tag.
#
#   bash hack/verify-base-image.sh            # needs Docker Hub and skopeo or docker buildx
#   bash hack/verify-base-image.sh --print    # only print the pinned tag and digest (no network)
#
# The Dockerfile pins `ARG PYTHON_IMAGE=<tag>@sha256:<digest>`; the digest is the one of the
# tag's multi-platform index (what `docker pull <tag>` resolves first). Checked: the digest
# exists in the registry and is the tag's Python release (exit 1 if not); reported: whether
# the tag still points there (official images are rebuilt for Debian security updates, so
# it moves). Exit 2: the registry could not be asked.
set -euo pipefail
cd "$(dirname "$0")/.."
pinned=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)
tag=${pinned%@*}
digest=${pinned#*@}
if [ -z "$pinned" ] || [ "$tag" = "$pinned" ]; then
  echo "verify-base-image: no 'ARG PYTHON_IMAGE=<tag>@sha256:<digest>' line in Dockerfile" >&2
  exit 1
fi
echo "pinned: $tag @ $digest"
[ "${1:-}" = "--print" ] && exit 0
ref="docker.io/library/$tag"
repo="docker.io/library/${tag%%:*}"
version=${tag#*:}; version=${version%%-*}   # 3.11.10 from 3.11.10-slim-bookworm
# 1. The pinned digest exists and is that Python release (what a build pulls).
if command -v skopeo >/dev/null; then
  env=$(skopeo inspect --override-os linux --override-arch amd64 "docker://$repo@$digest") || exit 2
  served="sha256:$(skopeo inspect --raw "docker://$ref" | sha256sum | cut -d' ' -f1)" || exit 2
elif docker buildx version >/dev/null 2>&1; then
  env=$(docker buildx imagetools inspect "$repo@$digest" --format '{{json .Image}}') || exit 2
  served=$(docker buildx imagetools inspect "$ref" --format '{{json .Manifest.Digest}}' | tr -d '"') || exit 2
else
  echo "verify-base-image: needs skopeo (apt-get install skopeo) or docker buildx" >&2
  exit 2
fi
if ! grep -q "PYTHON_VERSION=$version" <<<"$env"; then
  echo "verify-base-image: $repo@$digest is not Python $version (no PYTHON_VERSION=$version in its config)" >&2
  exit 1
fi
echo "verify-base-image: the pinned digest exists and is Python $version"
# 2. Whether the tag still points there: official images are rebuilt (Debian security
#    updates), so a moved tag is expected over time; it means "review and re-pin", not "wrong".
if [ "$served" = "$digest" ]; then
  echo "verify-base-image: $tag still points at the pinned digest"
else
  echo "verify-base-image: $tag now points at $served (rebuilt since the pin): review and re-pin"
fi
