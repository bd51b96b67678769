# The two commands of the README: `make run` and `make test`. Everything else is a step of them.
.PHONY: run test chaos bench tools build cluster-up cluster-down crds

run:
	@bash hack/run.sh

test:
	@bash hack/test.sh

# The fault suite: kill -9, API server and PostgreSQL outages, Prometheus stopped (hack/chaos.sh).
chaos:
	@bash hack/chaos.sh

# Benchmarks at platform scale on a cluster of its own; writes docs/BENCHMARKS.md (hack/bench.sh).
bench:
	@bash hack/bench.sh

tools:
	@bash hack/tools.sh

build: tools
	@bash hack/build.sh

cluster-up:
	@bash hack/cluster/up.sh && bash hack/cluster/seed.sh && . "$${HEXA_CLUSTER_DIR:-$${HEXA_CACHE:-$$HOME/.cache/hexabase}/cluster}/env" && echo "export KUBECONFIG=$$KUBECONFIG"

cluster-down:
	@bash hack/cluster/down.sh
