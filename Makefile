# ALPHA-REN node firmware. The two commands: `make run` and `make test`.
SHELL := /bin/bash
STATE ?= $(CURDIR)/state
CARGO ?= cargo

BOARD ?= qemu-x86_64

.PHONY: all deps build release image bundle run dev test lint unit e2e e2e-build bench clean

all: build

deps:
	@scripts/deps.sh

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# The disk image for BOARD (qemu-x86_64 or pc-x86_64) in images/out/.
image: deps release
	images/build.sh $(BOARD)

# The signed update bundle images/out/alpharen-$(BOARD)-<version>.aru of the
# slot the last `make image` built (builds the image first if there is none).
# UPDATE_KEY=FILE signs with that minisign key instead of the development
# key; UPDATE_KEY=offline and UPDATE_SIGNATURE=FILE sign elsewhere
# (docs/update.md). BOARD=rpi4-64 needs SLOT_DIR=<Buildroot output>/images/slot-rpi4-64.
bundle: deps release
	images/bundle.sh $(BOARD)

# Builds the node image and boots it in QEMU; prints the console URL and
# the setup code. Ctrl-A X quits QEMU; the image keeps its data partition.
run: BOARD = qemu-x86_64
run: image
	images/run-qemu.sh images/out/alpharen-qemu-x86_64.img

# Supervisor and services in the foreground on this machine (loopback dev
# ports, state in ./state): quicker than an image for development.
dev: deps release
	@echo "state directory: $(STATE)  (Ctrl-C stops the node)"
	target/release/alpharen run --state-dir $(STATE) --dev

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p alpharen-dpx --features fuzzing -- -D warnings

unit:
	$(CARGO) test --workspace

# What the end-to-end tests run: the debug binary and the mail-dev example.
e2e-build: build
	$(CARGO) build -p alpharen-mail --example mail-dev

# Every tests/e2e/*.sh, E2E_JOBS (default 2) at a time; ONLY="vpn web" runs
# just those.
e2e: e2e-build
	tests/run-e2e.sh $(ONLY)

# The whole suite; ends with a table of how long each step took. The
# images (the release build and both boards) are built in the background
# beside lint, unit and build: the release build's link-time optimization
# runs on one core, and the debug steps use the other. They are done before
# the end-to-end tests start, so those tests' time limits count only the
# tests. A one-shot build keeps no incremental caches (they were a third of
# target/, and CI's disk is not large).
test: export CARGO_INCREMENTAL = 0
test:
	@scripts/timed.sh "deps=$(MAKE) --no-print-directory deps" \
	  "images&=$(MAKE) --no-print-directory image BOARD=qemu-x86_64 && $(MAKE) --no-print-directory image BOARD=pc-x86_64" \
	  "lint=$(MAKE) --no-print-directory lint" \
	  "unit=$(MAKE) --no-print-directory unit" "build=$(MAKE) --no-print-directory e2e-build" \
	  "e2e=tests/run-e2e.sh"

# Every benchmark (tests/bench/lib.sh is their shared library, not one).
bench: deps release
	@for b in tests/bench/*.sh; do [ $$b = tests/bench/lib.sh ] && continue; echo "== $$b"; $$b || exit 1; done

clean:
	$(CARGO) clean
	rm -rf $(STATE) tests/out
