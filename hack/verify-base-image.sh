#!/usr/bin/env bash
# Checks that the Dockerfile's base image digest is what the registry serves for its tag.
#
#   bash hack/verify-base-image.sh            # needs Docker Hub and one of: skopeo, crane, docker buildx
#   bash hack/verify-base-image.sh --print    # only print the pinned tag and digest (no network)
#
# The Dockerfile pins `ARG PYTHON_IMAGE=<tag>@sha256:<digest>`; the digest is the one of the
# tag's multi-platform index (what `docker pull <tag>` resolves first). A tag can be moved to
# a rebuilt image (Debian security updates move python:*-slim-* tags every few weeks), so a
# mismatch means either "the tag moved since we pinned" (update both, after review) or
# "the pin is wrong". Exit 0: match; 1: mismatch; 2: could not ask the registry.
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
if command -v skopeo >/dev/null; then
  served="sha256:$(skopeo inspect --raw "docker://$ref" | sha256sum | cut -d' ' -f1)" || exit 2
elif command -v crane >/dev/null; then
  served=$(crane digest "$ref") || exit 2
elif docker buildx version >/dev/null 2>&1; then
  served=$(docker buildx imagetools inspect "$ref" --format '{{json .Manifest.Digest}}' | tr -d '"') || exit 2
else
  echo "verify-base-image: needs skopeo, crane or docker buildx (apt-get install skopeo)" >&2
  exit 2
fi
echo "served: $tag @ $served"
if [ "$served" != "$digest" ]; then
  echo "verify-base-image: MISMATCH: the registry serves $served for $tag, the Dockerfile pins $digest" >&2
  exit 1
fi
echo "verify-base-image: match"
