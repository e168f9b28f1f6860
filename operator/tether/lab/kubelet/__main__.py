"""Entry point of the loopback kubelet process (started by `tether lab up`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from tether.lab.kubelet.agent import Kubelet
from tether.lab.kubelet.api import Api, load_kubeconfig
from tether.lab.layout import LabPaths


def main(argv: list[str] | None = None) -> int:
    """Run the kubelet until SIGTERM/SIGINT; pod processes are left running (re-adoptable)."""
    parser = argparse.ArgumentParser(prog="python -m tether.lab.kubelet")
    parser.add_argument("--state", required=True, type=Path, help="the lab's state directory")
    parser.add_argument("--nodes", type=int, default=1, help="how many nodes to register")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    paths = LabPaths(args.state.name, args.state)
    server, token, ca = load_kubeconfig(paths.component_kubeconfig("kubelet"))

    async def run() -> None:
        api = Api(server, token, ca)
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await Kubelet(api, paths, args.nodes).run()
        finally:
            await api.close()

    try:
        import uvloop

        uvloop.run(run())
    except asyncio.CancelledError:
        logging.info("kubelet stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
