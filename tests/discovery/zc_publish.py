"""Publish a fake `_openclaw-gw._tcp` gateway with python-zeroconf until SIGTERM (or --duration).

Usage: zc_publish.py --name NAME --server HOST.local. --address IP --port P [--txt k=v ...]
Prints "registered <final name>" on stdout once registration (probing) completed, and
"unregistered" after the goodbye. Used by tests/discovery_*.rs (spec peers.md §3).
"""
import argparse
import signal
import socket
import sys
import threading

from zeroconf import IPVersion, ServiceInfo, Zeroconf

TYPE = "_openclaw-gw._tcp.local."


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--address", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--txt", action="append", default=[])
    ap.add_argument("--duration", type=float, default=120.0)
    args = ap.parse_args()
    props = dict(kv.split("=", 1) for kv in args.txt)
    info = ServiceInfo(TYPE, f"{args.name}.{TYPE}", addresses=[socket.inet_aton(args.address)],
                       port=args.port, properties=props, server=args.server)
    zc = Zeroconf(ip_version=IPVersion.V4Only)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    zc.register_service(info, allow_name_change=True)
    print(f"registered {info.name}", flush=True)
    stop.wait(args.duration)
    zc.unregister_service(info)
    zc.close()
    try:
        print("unregistered", flush=True)
    except BrokenPipeError:  # the test stopped reading; nothing to report
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
