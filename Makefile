# The two commands of the README: `make run` and `make test`. Everything else is a step of them.
.PHONY: run test chaos bench first-page tools build cluster-up cluster-down crds slowdown

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

# Time to first page: `make run` timed until the sign-in page answers, step by step
# (COLD=1: from empty caches in a temporary directory; hack/first-page.sh).
first-page:
	@bash hack/first-page.sh $(if $(COLD),--cold)

tools:
	@bash hack/tools.sh

build: tools
	@bash hack/build.sh

cluster-up:
	@bash hack/cluster/ready.sh

cluster-down:
	@bash hack/cluster/down.sh

# Demo only: slow the simulated traffic of the demo's web app down, e.g. to see the latency
# guard pause a migration (MS=300 SECONDS=120 by default; MS=0 ends it; hack/slowdown.sh).
slowdown:
	@bash hack/slowdown.sh $(or $(MS),300) $(or $(SECONDS),120)
