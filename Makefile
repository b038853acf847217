# ALPHA-REN node firmware. The two commands: `make run` and `make test`.
SHELL := /bin/bash
STATE ?= $(CURDIR)/state
CARGO ?= cargo

.PHONY: all deps build release run test lint unit e2e bench clean

all: build

deps:
	@scripts/deps.sh

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# Until the node image lands, `make run` runs the supervisor and services in
# the foreground in development mode (loopback dev ports, state in ./state).
run: deps release
	@echo "state directory: $(STATE)  (Ctrl-C stops the node)"
	@echo "in another terminal: target/release/alpharen ctl --state-dir $(STATE) status"
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
