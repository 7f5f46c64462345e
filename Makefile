# rcontain — build, example, tests, benchmark, conformance.
# `make test`, `make bench` and `make conformance` run real containers: as root.

CARGO        ?= cargo
RCONTAIN     ?= $(CURDIR)/target/release/rcontain
EXAMPLE      ?= bundles/out/example
# Integration tests each start several containers; two at a time suits the
# 2-core CI machines and keeps timing-sensitive runtimes happy.
TEST_THREADS ?= 2
# Integration test targets (Cargo.toml [[test]] entries under runtime-tests/).
RUNTIME_TESTS ?= $(patsubst runtime-tests/%.rs,%,$(wildcard runtime-tests/*.rs))
# Script suites (e.g. bats files) other parts of the project add: each entry
# is a command run from the repo root after the cargo tests.
# runtime-tests/vm-cgroups.sh: the cgroup tests again on a pure cgroup-v2
# kernel in a VM (../shared/vm/run-in-vm.sh); runtime-tests/vm-rootless.sh:
# rootless with a delegated cgroup v2 subtree, in such a VM.
SCRIPT_TESTS ?= runtime-tests/vm-cgroups.sh runtime-tests/vm-rootless.sh runtime-tests/vm-systemd.sh
# The VM suite drives the release runtime (RCONTAIN_BIN, as the host suites
# do); its test binaries build in the dev profile, like the host suites'.
export VM_CGROUPS_PROFILE ?= debug
# opencontainers/runtime-tools, built OUTSIDE this repository
# (docs/conformance.md): make conformance RUNTIME_TOOLS=/path/to/runtime-tools
RUNTIME_TOOLS ?=
# Runtimes compared by `make conformance` besides rcontain.
CONFORMANCE_REFERENCES ?= runc crun

.PHONY: all build print-link-flags print-order-flags print-static-env example run test unit-test runtime-test script-test test-engines test-hosts bench conformance clean-bundles

all: build

# The release binary is linked statically (static-pie: still randomised)
# with packed relative relocations: at every start there is then no ld.so,
# shared libc, libm or libgcc_s to map and relocate, and only the code the
# runtime really uses is in its image. crt-static only works for the binary
# (proc-macro crates cannot be static), hence `cargo rustc`.
LINK_FLAGS ?= -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs
# A static-pie loads no shared library, so libseccomp is linked from its
# archive (Debian's libseccomp-dev ships it); the libseccomp crate wants its
# directory spelled out. Other builds (tests, plain cargo) link it as usual.
SECCOMP_LIBDIR ?= $(shell pkg-config --variable=libdir libseccomp)
STATIC_ENV ?= LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$(SECCOMP_LIBDIR)
# The functions the start path executes go first, together
# (link/make-order.sh says why and regenerates the list); names the list
# has and the binary does not are ignored. --symbol-ordering-file is lld's,
# rustc's own linker on x86_64 Linux since Rust 1.90.
# Elsewhere (arm64: GNU ld) the binary is linked in the default order.
ifeq ($(shell uname -m),x86_64)
ORDER_FLAGS ?= -C link-arg=-Wl,--symbol-ordering-file=$(CURDIR)/link/rcontain.order \
	-C link-arg=-Wl,--no-warn-symbol-ordering
endif

# Cargo flags of the build, e.g. --no-default-features: without the image
# commands (docs/architecture.md); link/make-order.sh takes them too.
BUILD_FLAGS ?=

build:
	$(STATIC_ENV) $(CARGO) rustc --release --bin rcontain $(BUILD_FLAGS) -- $(LINK_FLAGS) $(ORDER_FLAGS) -C strip=symbols

print-link-flags:
	@echo $(LINK_FLAGS)

print-order-flags:
	@echo $(ORDER_FLAGS)

print-static-env:
	@echo $(STATIC_ENV)

$(EXAMPLE)/config.json: bundles/make-bundle.sh bundles/config.template.json
	bundles/make-bundle.sh $(EXAMPLE)

example: $(EXAMPLE)/config.json

# Build, then run the example bundle in the foreground: prints its output.
run: build example
	$(RCONTAIN) --root $(CURDIR)/bundles/out/state run --bundle $(EXAMPLE) example-$$$$

test: build unit-test runtime-test script-test

# Tests build in the dev profile: the integration tests only drive the
# release binary, and linking each of them with fat LTO would take longer
# than running them.
unit-test:
	$(CARGO) test --workspace --lib --bins -- --test-threads=$(TEST_THREADS)

runtime-test:
	RCONTAIN_BIN=$(RCONTAIN) $(CARGO) test --no-fail-fast \
		$(addprefix --test ,$(RUNTIME_TESTS)) -- --test-threads=$(TEST_THREADS)

script-test:
	@set -e; for t in $(SCRIPT_TESTS); do echo "== $$t"; RCONTAIN_BIN=$(RCONTAIN) $$t; done

# containerd, podman, docker and a CRI client driving rcontain (installs
# the engines with apt; needs ../shared/clients beside the checkout).
test-engines: build
	runtime-tests/engines.sh $(RCONTAIN)

# The host matrix (docs/hosts.md): the probe bundles and images with
# rcontain and runc on this host and on VMs of other cgroup layouts, init
# systems and kernel builds, each compared with pure cgroup v2; writes
# docs/hosts.md.
HOSTS_FLAVOURS ?= host v2 v1 hybrid systemd cloud
test-hosts: build
	RCONTAIN_BIN=$(RCONTAIN) runtime-tests/hosts/matrix.sh $(HOSTS_FLAVOURS)

bench: build
	bench/bench.sh $(RCONTAIN)
	SWEEP_EXTRA="floor=bench/floor.sh" bench/mount-sweep.sh $(RCONTAIN)
	LONE_EXTRA="floor=bench/floor.sh" bench/lone.sh $(RCONTAIN)
	bench/engines.sh $(RCONTAIN) $$(command -v runc) $$(command -v crun)
	bundles/bench-unpack.sh

conformance: build
	@if [ ! -x "$(RUNTIME_TOOLS)/runtimetest" ]; then \
		echo "conformance: no built runtime-tools suite at RUNTIME_TOOLS=$(RUNTIME_TOOLS);"; \
		echo "  build it outside this repo as docs/conformance.md explains, then"; \
		echo "  make conformance RUNTIME_TOOLS=/path/to/runtime-tools"; \
		exit 1; \
	fi
	CONFORMANCE_OUT=$(CURDIR)/conformance-results.md \
		bench/conformance.sh "$(RUNTIME_TOOLS)" $(RCONTAIN) $(CONFORMANCE_REFERENCES)

clean-bundles:
	rm -rf bundles/out
