# The everyday commands. `make run` serves the demo on http://127.0.0.1:8000 with
# the embedded defaults; `make test` runs every test against real SQLite, PostgreSQL
# and headless Chromium.

.PHONY: run test lint fmt sample services

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
