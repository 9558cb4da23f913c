#!/usr/bin/env python3
"""Browse mDNS for Mnemo servers with python-zeroconf and print what answered as JSON.

An independent reader of the server's packets: the tests compare its view with the
bridge's (mdns-sd), so a record that only one implementation accepts shows up.

    python3 scripts/mdns_browse.py --seconds 3
    {"instances": [{"name": "MCP Memory Service (nas)", "port": 8443,
                    "addresses": ["192.168.1.20"], "txt": {"https": "True", ...}}]}

Needs python-zeroconf: the tests run it from the venv of `make test-python`. It multicasts on every interface of the network namespace
it runs in: the tests run it only inside namespaces they create.
"""

import argparse
import json
import sys
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

SERVICE_TYPE = "_mcp-memory._tcp.local."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to browse")
    parser.add_argument("--type", default=SERVICE_TYPE, help="the DNS-SD service type")
    args = parser.parse_args()

    zc = Zeroconf(ip_version=IPVersion.All)
    names: set[str] = set()

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Removed:
            names.discard(name)
        else:
            names.add(name)

    browser = ServiceBrowser(zc, args.type, handlers=[on_change])
    try:
        # The browser's own thread collects answers; this one only waits out the window.
        time.sleep(args.seconds)
        instances = []
        for name in sorted(names):
            # Normally answered from the cache the browse filled; otherwise asks again.
            info = zc.get_service_info(args.type, name, timeout=2000)
            if info is None:
                print(f"{name}: found but not resolved", file=sys.stderr)
                continue
            instances.append(
                {
                    "name": name[: -len("." + args.type)] if name.endswith("." + args.type) else name,
                    "server": info.server,
                    "port": info.port,
                    "addresses": info.parsed_addresses(),
                    "txt": {
                        key.decode("utf-8", "replace"): (value or b"").decode("utf-8", "replace")
                        for key, value in info.properties.items()
                    },
                }
            )
    finally:
        browser.cancel()
        zc.close()
    print(json.dumps({"instances": instances}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
