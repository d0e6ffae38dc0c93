# The everyday commands. `make run` serves the demo on http://127.0.0.1:8000 with
# the embedded defaults; `make test` runs every test against real SQLite, PostgreSQL
# and headless Chromium.

.PHONY: run test lint fmt sample services start stop status bench streams

run:
	cargo run --release

test: services
	cargo test --workspace --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt --all

# Regenerates the bundled Mastodon recording (deterministic).
sample:
	python3 scripts/gen_replay.py

services:
	scripts/services.sh

# The production layout on this machine: PostgreSQL, Redis, two instances, one
# ingester and nginx on http://127.0.0.1:8000 (see README, "Several instances").
start:
	scripts/stack.sh start

stop:
	scripts/stack.sh stop

status:
	scripts/stack.sh status

# Criterion benches of the hot paths; HTML reports in target/criterion.
bench:
	cargo bench --bench hot_paths

# How many SSE streams one server holds: starts a release server on a free loopback
# port with a fresh SQLite database, opens the streams, prints the figures (also in
# target/streams/summary.md) and stops the server. Flags: see `streams --help`.
streams:
	cargo build --release --bin switchyard
	cargo run --release -p loadtests --bin streams -- --spawn-server $(STREAMS_ARGS)
