# ALPHA-REN node firmware. The two commands: `make run` and `make test`.
SHELL := /bin/bash
STATE ?= $(CURDIR)/state
CARGO ?= cargo

BOARD ?= qemu-x86_64

.PHONY: all deps build release image run dev test lint unit e2e bench clean

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

unit:
	$(CARGO) test --workspace

e2e: build
	$(CARGO) build -p alpharen-mail --example mail-dev
	tests/run-e2e.sh

test: deps lint unit e2e

bench: deps release
	@for b in tests/bench/*.sh; do echo "== $$b"; ALPHAREN_BIN=$(CURDIR)/target/release/alpharen $$b || exit 1; done

clean:
	$(CARGO) clean
	rm -rf $(STATE) tests/out
