"""Render the torrc of each node of the private Tor network."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path


class Role(enum.Enum):
    """What a node does in the network."""

    AUTHORITY = "authority"
    RELAY = "relay"
    EXIT = "exit"
    CLIENT = "client"
    SERVICE = "service"

    @property
    def is_server(self) -> bool:
        """Say whether nodes of this role relay traffic (and so have an ORPort)."""
        return self in (Role.AUTHORITY, Role.RELAY, Role.EXIT)


@dataclass(frozen=True)
class Voting:
    """Consensus timing of the authorities, in seconds."""

    interval: int = 10
    vote_delay: int = 2
    dist_delay: int = 2

    @classmethod
    def for_onionbalance(cls) -> Voting:
        """Return the timing onionbalance 0.2.4 `--is-testnet` expects (it hard-codes 20 s)."""
        return cls(interval=20, vote_delay=4, dist_delay=4)


@dataclass
class Node:
    """One tor process of the network: its role, directory and ports."""

    name: str
    role: Role
    directory: Path
    or_port: int = 0
    dir_port: int = 0
    socks_port: int = 0
    control_port: int = 0
    fingerprint: str = ""
    v3ident: str = ""

    @property
    def torrc_path(self) -> Path:
        """Return where this node's torrc lives."""
        return self.directory / "torrc"

    @property
    def log_path(self) -> Path:
        """Return this node's notice log."""
        return self.directory / "notice.log"

    @property
    def cookie_path(self) -> Path:
        """Return this node's control cookie file."""
        return self.directory / "control_auth_cookie"

    def dir_authority_line(self) -> str:
        """Return the DirAuthority line every node uses to find this authority."""
        return (
            f"DirAuthority {self.name} orport={self.or_port} no-v2 v3ident={self.v3ident} "
            f"127.0.0.1:{self.dir_port} {self.fingerprint}"
        )


def _common(node: Node, authorities: list[Node], resolv_conf: Path) -> list[str]:
    lines = [
        "TestingTorNetwork 1",
        f"Nickname {node.name}",
        f"DataDirectory {node.directory}",
        f"PidFile {node.directory / 'pid'}",
        f"Log notice file {node.log_path}",
        "RunAsDaemon 0",
        "SafeLogging 0",
        "ShutdownWaitLength 0",
        'GeoIPFile ""',
        'GeoIPv6File ""',
        # Our own pid: tor exits by itself when this Python process dies, even by SIGKILL.
        f"__OwningControllerProcess {os.getpid()}",
        f"ServerDNSResolvConfFile {resolv_conf}",
        "AddressDisableIPv6 1",
        "ClientUseIPv6 0",
        "SocksPort 0",
    ]
    lines += [a.dir_authority_line() for a in authorities]
    if node.control_port:
        lines += [f"ControlPort 127.0.0.1:{node.control_port}", "CookieAuthentication 1",
                  f"CookieAuthFile {node.cookie_path}"]
    return lines


def _server(node: Node) -> list[str]:
    return [
        f"ORPort 127.0.0.1:{node.or_port}",
        "Address 127.0.0.1",
        "OutboundBindAddress 127.0.0.1",
        "AssumeReachable 1",
        "ContactInfo tornet@localhost",
    ]


def _authority(node: Node, voting: Voting, exit_fingerprint: str) -> list[str]:
    v = voting
    return [
        f"DirPort 127.0.0.1:{node.dir_port}",
        "AuthoritativeDirectory 1",
        "V3AuthoritativeDirectory 1",
        f"V3AuthVotingInterval {v.interval}",
        f"V3AuthVoteDelay {v.vote_delay}",
        f"V3AuthDistDelay {v.dist_delay}",
        f"TestingV3AuthInitialVotingInterval {v.interval}",
        f"TestingV3AuthInitialVoteDelay {v.vote_delay}",
        f"TestingV3AuthInitialDistDelay {v.dist_delay}",
        "TestingV3AuthVotingStartOffset 0",
        "V3AuthNIntervalsValid 2",
        # A fresh network has no history: hand out the flags that would otherwise take hours.
        "TestingDirAuthVoteGuard *",
        "TestingDirAuthVoteHSDir *",
        f"TestingDirAuthVoteExit {exit_fingerprint}",
        "ExitRelay 0",
        "ExitPolicy reject *:*",
    ]


def render(node: Node, authorities: list[Node], voting: Voting, exit_fingerprint: str,
           resolv_conf: Path) -> str:
    """Return the torrc text of `node`."""
    lines = _common(node, authorities, resolv_conf)
    if node.role.is_server:
        lines += _server(node)
    if node.role is Role.AUTHORITY:
        lines += _authority(node, voting, exit_fingerprint)
    elif node.role is Role.RELAY:
        lines += ["ExitRelay 0", "ExitPolicy reject *:*"]
    elif node.role is Role.EXIT:
        # Loopback only: the exit reaches the tests' HTTP servers and nothing else.
        lines += ["ExitRelay 1", "ExitPolicyRejectPrivate 0", "ExitPolicyRejectLocalInterfaces 0",
                  "ExitPolicy accept 127.0.0.0/8:*", "ExitPolicy reject *:*"]
    elif node.role is Role.CLIENT:
        lines = [line for line in lines if line != "SocksPort 0"]
        # Microdescriptors summarise a loopback-only policy as "reject all"; full ones keep it.
        lines += [f"SocksPort 127.0.0.1:{node.socks_port}", "UseMicrodescriptors 0"]
    return "\n".join(lines) + "\n"
