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

# `-I` (isolated): the project root must not be on sys.path while the venv is bare, or
# the top-level operator/ folder shadows the standard library's operator module.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -I -m venv $(VENV)
	$(PY) -I -m pip install -q --upgrade pip
	$(PY) -I -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	bash hack/install-system-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy -p keepvip
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit -q

netns: $(STAMP) system-deps
	$(VENV)/bin/pytest tests/netns -q

cluster: $(STAMP) system-deps
	bash hack/build-k8s.sh
	bash hack/get-helm.sh
	$(VENV)/bin/pytest tests/cluster -q

# One pytest run over every tier, so the closing line counts every test.
test: $(STAMP) system-deps lint
	bash hack/build-k8s.sh
	bash hack/get-helm.sh
	$(VENV)/bin/pytest tests -q

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
	$(PY) -I bench/failover.py

# The chaos run (issue 14): 200 seeded faults per interval, keepvip beside keepalived,
# judged by an observer; writes docs/reliability.md. Long (about two hours); root only.
chaos: $(STAMP) system-deps
	$(PY) -I bench/chaos.py

clean:
	rm -rf $(VENV) build .mypy_cache .pytest_cache .ruff_cache .hypothesis

.PHONY: bench-scale bench-fast
bench-scale: $(STAMP) system-deps
	$(PY) -I bench/scale.py

bench-fast: $(STAMP) system-deps
	$(PY) -I bench/scale.py --fast

# LoadBalancer at scale (bench/lb.py): 500 Services at once on the local cluster, then the
# holder of every VIP fails. Holds the cluster lock: only one local cluster fits a machine.
.PHONY: bench-lb
bench-lb: $(STAMP) system-deps
	bash hack/build-k8s.sh
	bash hack/get-helm.sh
	flock /tmp/keepvip-cluster.lock $(PY) -I bench/lb.py
