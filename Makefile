# The everyday commands. `make run` serves the demo on http://127.0.0.1:8000 with
# the embedded defaults; `make test` runs every test against real SQLite, PostgreSQL
# and headless Chromium.

.PHONY: run test lint fmt sample services start stop status bench runfeed streams

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

# Polling against SSE on one live feed, measured (about two minutes; see
# docs/results.md). Flags go in ARGS, e.g. make runfeed ARGS="--users 1000".
runfeed:
	cargo build --release -p switchyard -p loadtests --bin switchyard --bin runfeed
	target/release/runfeed $(ARGS)

# How many SSE streams one server holds: starts a release server on a free loopback
# port with a fresh SQLite database, opens the streams, prints the figures (also in
# target/streams/summary.md) and stops the server. Flags go in ARGS, e.g.
# make streams ARGS="--streams 10000 --replay-rate 1"; see `streams --help`.
streams:
	cargo build --release -p switchyard -p loadtests --bin switchyard --bin streams
	target/release/streams --spawn-server $(ARGS)
