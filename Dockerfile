# syntax=docker/dockerfile:1
#
# The one keepvip image: the operator Deployment and the speaker DaemonSet both run it.
#
#   docker build -t ghcr.io/keepvip/keepvip:0.1.0 .
#
# Stage 1 (builder) turns the project and every runtime dependency into wheels, so the
# runtime stage installs offline from /wheels and carries no compiler, no pip cache and
# no build tooling. Stage 2 is the same slim Python base with those wheels installed.
#
# Users: the image's default user is the unprivileged `keepvip` (uid/gid 65532), which is
# what the operator runs as. The speaker cannot: it opens raw IP-protocol-112 sockets and
# adds addresses with netlink, which needs CAP_NET_RAW and CAP_NET_ADMIN in the
# *effective* set, and Kubernetes only grants added capabilities to uid 0 (it sets no
# ambient capabilities). So the speaker DaemonSet runs as root with every capability
# dropped except NET_ADMIN and NET_RAW, a read-only root filesystem and no privilege
# escalation (see docs/install.md, "Security").

# The base image, pinned by digest: a tag can be re-pointed, a digest cannot. Tag and
# digest of the official image python:3.11.10-slim-bookworm as recorded by public
# digest pins (e.g. nalabelle/build images/digests.Dockerfile); the digest is what is
# pulled, the tag documents which release it is. To update: `docker buildx imagetools
# inspect python:3.11-slim-bookworm` and replace both (docs/security.md, "Supply chain").
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Runtime dependencies: exactly the wheels in requirements.lock, each checked against its
# sha256 (hack/lock-requirements.py writes the file); a changed upload fails the build.
COPY requirements.lock ./
RUN pip download --require-hashes --no-deps --only-binary=:all: --dest /wheels -r requirements.lock \
 && cp requirements.lock /wheels/
# The product is one distribution per source root (docs/architecture.md, "Layout"): the
# parts api/, operator/, speaker/ (each with its pyproject.toml) and keepvip itself (src/).
# Copy exactly those, nothing else from the working tree: the development tools
# (localcluster/) never enter the image.
COPY pyproject.toml README.md ./
COPY src/ src/
COPY api/ api/
COPY operator/ operator/
COPY speaker/ speaker/
RUN pip wheel --no-deps --wheel-dir /wheels ./api ./operator ./speaker .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="keepvip" \
      org.opencontainers.image.description="Kubernetes-native virtual IPs kept alive by VRRP" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/keepvip/keepvip"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 65532 keepvip \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin keepvip
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels --no-deps --require-hashes -r /wheels/requirements.lock \
 && pip install --no-index --no-deps /wheels/keepvip-*.whl /wheels/keepvip_*.whl
USER 65532:65532
ENTRYPOINT ["keepvip"]
CMD ["--help"]
