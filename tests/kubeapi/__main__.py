"""``python -m tests.kubeapi --port PORT --kubeconfig FILE``: serve the double until stopped.

Writes a kubeconfig pointing at ``http://127.0.0.1:PORT`` (a token user), prints
``ready <url>`` on stdout once serving, and exits cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import KubeAPIDouble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kubeapi",
                                     description="Serve a Kubernetes API double on loopback.")
    parser.add_argument("--port", type=int, default=0, help="port (0 = any free port)")
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    parser.add_argument("--ready-delay", type=float, default=0.2,
                        help="seconds until workloads report ready")
    parser.add_argument("--job-delay", type=float, default=0.3,
                        help="seconds until Jobs complete")
    parser.add_argument("--never-ready", action="store_true",
                        help="workloads never become ready")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    api = KubeAPIDouble(port=args.port, kubeconfig_path=args.kubeconfig,
                        ready_delay=args.ready_delay, job_delay=args.job_delay,
                        never_ready=args.never_ready)
    api.start()
    print(f"ready {api.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        api.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
