# The two commands a newcomer needs are `make run` and `make test`; both provision the
# model and ONNX Runtime first (a no-op once the cache is verified).

PYTHON ?= python3
CARGO  ?= cargo

.PHONY: run test provision lint bench-embed mcp-client

## Provision everything, then start a server on 127.0.0.1:8000.
run: provision
	$(CARGO) run --release --locked -p mnemo-server

## Provision everything, then run the whole test suite.
test: provision mcp-client
	$(CARGO) test --workspace --all-targets --locked

## Fetch, verify and cache the model and ONNX Runtime (scripts/provision.py).
provision:
	$(PYTHON) scripts/provision.py --quiet >/dev/null

## What CI checks before the tests.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Embedding latency and batch throughput on this machine.
bench-embed: provision
	$(CARGO) run --release --locked -p mnemo-bench --bin embed-bench

## The official MCP SDK (PyPI `mcp`) in a venv, for the MCP end-to-end tests.
MCP_VENV = $${MNEMO_CACHE_DIR:-$$HOME/.cache/mnemo}/tools/mcp-client
mcp-client:
	@test -x "$(MCP_VENV)/bin/python" && "$(MCP_VENV)/bin/python" -c "import mcp" 2>/dev/null || \
		{ $(PYTHON) -m venv "$(MCP_VENV)" && "$(MCP_VENV)/bin/pip" install --quiet "mcp==2.3.0"; }
