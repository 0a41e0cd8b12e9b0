# SafeApp developer tasks. Every cargo call is --locked: Cargo.lock is the truth.

CARGO ?= cargo
IMAGE ?= safeapp:dev
# The CRDs live in crds/ (safeapp.yaml, safejob.yaml), with copies inside config/crd so
# kustomize (which refuses files outside its root) can use them.
SAMPLE := config/samples/backend-app.yaml

.PHONY: all build test lint crds check-crds render run image bench e2e

all: build

build:
	$(CARGO) build --release --locked

test:
	$(CARGO) test --locked

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

# Regenerate the CRD and its kustomize copy from the Rust types.
crds:
	for k in safeapp safejob; do \
		$(CARGO) run --quiet --locked -- crd --kind $$k > crds/$$k.yaml.tmp && \
		mv crds/$$k.yaml.tmp crds/$$k.yaml && cp crds/$$k.yaml config/crd/$$k.yaml || exit 1; \
	done

# Fail if any committed copy of a CRD differs from what the code generates.
check-crds:
	@tmp=$$(mktemp) && trap 'rm -f "$$tmp"' EXIT && \
	status=0 && \
	for k in safeapp safejob; do \
		$(CARGO) run --quiet --locked -- crd --kind $$k > "$$tmp" || exit 1; \
		for f in crds/$$k.yaml config/crd/$$k.yaml; do \
			if diff -u "$$f" "$$tmp" > /dev/null; then \
				echo "$$f is up to date"; \
			else \
				echo "$$f is stale; run 'make crds'" >&2; \
				diff -u "$$f" "$$tmp" | head -n 40 >&2; \
				status=1; \
			fi; \
		done; \
	done; \
	exit $$status

# Print what the backend sample produces, with no cluster.
render:
	$(CARGO) run --quiet --locked -- render -f $(SAMPLE)

# Run the controller against the current kubeconfig context (needs a cluster with the
# CRD installed: kubectl apply --server-side -f crds/).
run:
	$(CARGO) run --quiet --locked -- run --leader-elect=false

image:
	@if ! docker info > /dev/null 2>&1; then \
		echo "make image: no Docker engine is available ('docker info' failed); cannot build $(IMAGE)" >&2; \
		exit 1; \
	fi
	docker build -t $(IMAGE) .

bench:
	$(CARGO) bench --bench render
	$(CARGO) bench --bench controller

# End-to-end tests against the cluster in KUBECONFIG (kind, minikube, any cluster where
# you may create CRDs and namespaces). Without KUBECONFIG each test prints SKIPPED.
e2e:
	@if [ -z "$$KUBECONFIG" ]; then echo "e2e: KUBECONFIG is not set: every e2e test will report SKIPPED"; fi
	$(CARGO) test --locked --features e2e --test e2e -- --test-threads=1 --nocapture
