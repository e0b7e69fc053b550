"""Run the private Tor network by hand: `python -m tests.tornet up [--onionbalance] [--keep]`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from tests.tornet.network import TorNet
from tests.tornet.process import TorNetError
from tests.tornet.torrc import Voting


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.tornet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build and start the network; Ctrl-C tears it down")
    up.add_argument("--onionbalance", action="store_true",
                    help="vote every 20 s (delays 4/4), as onionbalance 0.2.4 --is-testnet expects")
    up.add_argument("--keep", action="store_true", help="keep the network's directory after teardown")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for bootstrap")
    return parser


def up(onionbalance: bool, keep: bool, timeout: float) -> int:
    """Start the network, print how to reach it, and run until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    net = TorNet(voting=Voting.for_onionbalance() if onionbalance else None, keep=keep)
    try:
        net.start(timeout)
        print(f"directory             {net.base}")
        print(f"bootstrapped in       {net.timings['bootstrap_s']:.1f} s")
        print(f"client SOCKS port     127.0.0.1:{net.socks_port}   (proxy {net.proxy_url})")
        print(f"client ControlPort    127.0.0.1:{net.client_control_port}   cookie {net.client.cookie_path}")
        print(f"service ControlPort   127.0.0.1:{net.service_control_port}   cookie {net.service_cookie_path}")
        print(f"voting interval       {net.voting.interval} s")
        print("running; Ctrl-C to tear down", flush=True)
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    except TorNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("tearing down", flush=True)
        net.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # stem sets its own logger to DEBUG; its chatter about closed control sockets is not news here.
    logging.getLogger("stem").setLevel(logging.WARNING)
    args = _parser().parse_args(argv)
    return up(args.onionbalance, args.keep, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
