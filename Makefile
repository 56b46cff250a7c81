# keepvip — the two commands a new user needs are `make demo` and `make test`.
# Everything else they need (apt packages, the virtual environment, the local control
# plane) is installed by these targets themselves and cached under ~/.cache/keepvip.

SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: all test lint unit netns cluster demo system-deps venv clean bench crd chaos

all: test

# The product is four distributions, one per source root (keepvip, keepvip-api,
# keepvip-operator, keepvip-speaker); localcluster/ is the development tools. All editable,
# in one pip run so that the local parts satisfy each other's requirements.
PARTS := ./api ./operator ./speaker ./localcluster

$(STAMP): pyproject.toml api/pyproject.toml operator/pyproject.toml speaker/pyproject.toml localcluster/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(foreach part,$(PARTS),-e $(part)) -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	bash hack/install-system-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit -q

netns: $(STAMP) system-deps
	$(VENV)/bin/pytest tests/netns -q

cluster: $(STAMP) system-deps
	bash hack/build-k8s.sh
	bash hack/get-helm.sh
	$(VENV)/bin/pytest tests/cluster -q

# Two pytest runs. The first runs every tier on two workers (pytest-xdist):
# tests/conftest.py makes the cluster tier one unit of work on one worker, because its
# tests share the session's cluster; every netns and unit test is dealt to whichever
# worker is free (each netns test builds its own uniquely named namespaces). The second
# runs the tests marked `quiet` alone: they judge a race of a few milliseconds between
# speakers, which a busy CPU beside them decides instead. Both always run; either failing
# fails the target.
test: $(STAMP) system-deps lint
	bash hack/build-k8s.sh
	bash hack/get-helm.sh
	status=0; \
	$(VENV)/bin/pytest tests -q --durations=40 -n 2 --dist loadscope -m "not quiet" || status=$$?; \
	$(VENV)/bin/pytest tests -q -m quiet || status=$$?; \
	exit $$status

crd: $(STAMP)
	$(VENV)/bin/keepvip crd > crds/virtualips.keepvip.io.yaml
	$(VENV)/bin/keepvip crd --kind VirtualIPPool > crds/virtualippools.keepvip.io.yaml
	cp crds/virtualips.keepvip.io.yaml crds/virtualippools.keepvip.io.yaml charts/keepvip/files/crds/

# The cluster demo (helm install, kubectl apply, failover); `keepvip demo --standalone`
# is the same story without Kubernetes.
demo: $(STAMP) system-deps
	bash hack/build-k8s.sh
	bash hack/get-helm.sh
	$(VENV)/bin/keepvip demo

bench: $(STAMP) system-deps
	$(PY) bench/failover.py

# The chaos run (issue 14): 200 seeded faults per interval, keepvip beside keepalived,
# judged by an observer; writes docs/reliability.md. Long (about two hours); root only.
chaos: $(STAMP) system-deps
	$(PY) bench/chaos.py

# The chaos run in the cluster (issue 14): API server stopped, operator SIGKILLed, speaker
# pods deleted, nodes NotReady, VirtualIPs edited during faults, on the local cluster with the
# chart; adds its section to docs/reliability.md. Holds the cluster lock (one cluster at a time).
.PHONY: chaos-cluster
chaos-cluster: $(STAMP) system-deps
	bash hack/build-k8s.sh
	bash hack/get-helm.sh
	flock /tmp/keepvip-cluster.lock $(PY) bench/chaos_cluster.py

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache .hypothesis

.PHONY: bench-scale bench-fast
bench-scale: $(STAMP) system-deps
	$(PY) bench/scale.py

bench-fast: $(STAMP) system-deps
	$(PY) bench/scale.py --fast

# LoadBalancer at scale (bench/lb.py): 500 Services at once on the local cluster, then the
# holder of every VIP fails. Holds the cluster lock: only one local cluster fits a machine.
.PHONY: bench-lb
bench-lb: $(STAMP) system-deps
	bash hack/build-k8s.sh
	bash hack/get-helm.sh
	flock /tmp/keepvip-cluster.lock $(PY) bench/lb.py

# The VirtualIP admission webhook's own answer times (AdmissionReviews straight to the
# operator over its TLS, during 500 creates and at rest) beside the API server's histogram.
.PHONY: bench-webhook
bench-webhook: $(STAMP) system-deps
	bash hack/build-k8s.sh
	bash hack/get-helm.sh
	flock /tmp/keepvip-cluster.lock $(PY) bench/webhook.py
