"""A private Tor network on 127.0.0.1 for tests: `TorNet`, its fixture, `python -m tests.tornet up`."""

from tests.tornet.network import TorNet
from tests.tornet.process import TorNetError
from tests.tornet.torrc import Voting

__all__ = ["TorNet", "TorNetError", "Voting"]
