"""Watch the service tor for onion descriptor uploads, from the moment it starts."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from stem import SocketError
from stem.connection import AuthenticationFailure
from stem.control import Controller, EventType
from stem.response.events import HSDescEvent

from tests.tornet.process import TorNetError

log = logging.getLogger(__name__)


def onion_id(address: str) -> str:
    """Return the service id of an onion address (no scheme, no `.onion`, lower case)."""
    host = address.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    return host.removesuffix(".onion")


def connect(port: int, cookie_path: Path, timeout: float = 10.0) -> Controller:
    """Return an authenticated stem Controller on 127.0.0.1:`port`, retrying while tor starts."""
    deadline = time.monotonic() + timeout
    while True:
        controller = None
        if not cookie_path.exists():
            # tor writes the cookie once its ControlPort listens; connecting earlier only fails.
            if time.monotonic() > deadline:
                raise TorNetError(f"tor wrote no control cookie at {cookie_path}: see its notice.log")
            time.sleep(0.1)
            continue
        try:
            controller = Controller.from_port(address="127.0.0.1", port=port)
            # PROTOCOLINFO names this same cookie file; stem's own authenticate() also arms events.
            controller.authenticate()
            return controller
        except (SocketError, OSError, AuthenticationFailure) as exc:
            if controller is not None:
                controller.close()
            if time.monotonic() > deadline:
                raise TorNetError(f"cannot reach tor's ControlPort 127.0.0.1:{port}: {exc}") from exc
            time.sleep(0.2)


class DescriptorWatcher:
    """Record every HS_DESC UPLOADED event of one tor, so no upload is missed by a late waiter."""

    def __init__(self, controller: Controller) -> None:
        self._controller = controller
        self._uploads: dict[str, list[float]] = {}
        self._changed = threading.Condition()
        controller.add_event_listener(self._on_event, EventType.HS_DESC)

    def _on_event(self, event: HSDescEvent) -> None:
        if event.action != "UPLOADED":
            return
        with self._changed:
            self._uploads.setdefault(onion_id(event.address), []).append(time.monotonic())
            self._changed.notify_all()

    def uploads(self, address: str) -> int:
        """Return how many HSDirs have confirmed a descriptor of `address` so far."""
        with self._changed:
            return len(self._uploads.get(onion_id(address), []))

    def wait(self, address: str, timeout: float, uploads: int = 1) -> float:
        """Wait until `uploads` HSDirs hold a descriptor of `address`; return the seconds waited."""
        start = time.monotonic()
        service = onion_id(address)
        with self._changed:
            ok = self._changed.wait_for(lambda: len(self._uploads.get(service, [])) >= uploads, timeout)
        if not ok:
            raise TorNetError(
                f"no HS_DESC UPLOADED for {service}.onion within {timeout:.0f} s "
                f"({self.uploads(service)} of {uploads} uploads): is the service added to the "
                "harness's service tor, and did the network bootstrap?"
            )
        return time.monotonic() - start

    def close(self) -> None:
        """Stop listening and close the control connection."""
        self._controller.close()


def addresses_of(controller: Controller) -> list[str]:
    """Return the onion addresses a controller's tor serves as ephemeral services."""
    found = controller.list_ephemeral_hidden_services(default=[], detached=False)
    found += controller.list_ephemeral_hidden_services(default=[], detached=True)
    if not found:
        raise TorNetError("this controller has no ephemeral onion service: call ADD_ONION first")
    return sorted(set(found))
