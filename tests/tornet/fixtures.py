"""Pytest plugin with session-scoped private Tor network fixtures: `tornet`, `tornet_onionbalance`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.tornet.network import TorNet
from tests.tornet.torrc import Voting


def require_tor() -> None:
    """Fail when tor is missing under CI=true; skip otherwise."""
    if shutil.which("tor") and shutil.which("tor-gencert"):
        return
    message = "tor and tor-gencert are needed for the private Tor network: apt-get install tor"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a network fixture `tornet`, so `-m "not tornet"` leaves it out."""
    for item in items:
        if {"tornet", "tornet_onionbalance"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.tornet)


@pytest.fixture(scope="session")
def tornet() -> Iterator[TorNet]:
    """Yield a running private Tor network (10 s voting), torn down at the end of the session."""
    require_tor()
    with TorNet() as net:
        yield net


@pytest.fixture(scope="session")
def tornet_onionbalance() -> Iterator[TorNet]:
    """Yield a running private Tor network with the 20 s voting onionbalance `--is-testnet` expects."""
    require_tor()
    with TorNet(voting=Voting.for_onionbalance()) as net:
        yield net
