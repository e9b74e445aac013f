"""Browse _openclaw-gw._tcp.local. with python-zeroconf and print one JSON object per resolved
instance once the wanted address family is present (or at the deadline).

Usage: zc_browse.py --timeout SECONDS [--want-v4] [--interface IP] [--settle SECONDS]
Output (stdout, one JSON document): {"zeroconf": version, "services": [ {name, server, port,
addresses, properties} ... ], "seen": [names], "removed": [names], "first_added_unix": float}.
Used by tests/discovery_*.rs as an independent mDNS oracle (spec peers.md §3).
"""
import argparse
import json
import sys
import time

import zeroconf
from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

TYPE = "_openclaw-gw._tcp.local."


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--want-v4", action="store_true")
    ap.add_argument("--interface", action="append", default=[])
    ap.add_argument("--settle", type=float, default=0.0,
                    help="keep browsing this long after the first complete result")
    ap.add_argument("--watch-removal", action="store_true",
                    help="after resolving, keep running until --timeout and record removals")
    args = ap.parse_args()
    kwargs = {"ip_version": IPVersion.V4Only if args.want_v4 else IPVersion.All}
    if args.interface:
        kwargs["interfaces"] = args.interface
    zc = Zeroconf(**kwargs)
    names, removed = set(), []
    first_added = []

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Removed:
            removed.append(name)
        else:
            if not first_added:
                first_added.append(time.time())
            names.add(name)

    ServiceBrowser(zc, TYPE, handlers=[on_change])
    deadline = time.monotonic() + args.timeout
    services = {}
    complete_at = None
    while time.monotonic() < deadline:
        for n in sorted(names):
            info = zc.get_service_info(TYPE, n, timeout=500)
            if info is None:
                continue
            addrs = info.parsed_scoped_addresses()
            if args.want_v4 and not any(":" not in a for a in addrs):
                continue
            services[n] = {
                "name": n,
                "server": info.server,
                "port": info.port,
                "addresses": addrs,
                "properties": {k.decode(): (v.decode() if v is not None else None)
                               for k, v in info.properties.items()},
            }
        if services and complete_at is None:
            complete_at = time.monotonic()
        if complete_at is not None and not args.watch_removal and \
                time.monotonic() - complete_at >= args.settle:
            break
        if args.watch_removal and removed:
            break
        time.sleep(0.1)
    json.dump({"zeroconf": zeroconf.__version__, "services": list(services.values()),
               "seen": sorted(names), "removed": removed,
               "first_added_unix": first_added[0] if first_added else None}, sys.stdout)
    zc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
