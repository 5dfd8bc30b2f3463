"""Connection settings shared by the station's bus and command clients.

TCP_NODELAY is set on every TCP connection: without it each command→ack hop costs ~40 ms of
Nagle + delayed-ACK (reference/mqtt.md §2.5). The broker needs ``set_tcp_nodelay true`` too.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import aiomqtt

from drivers.errors import ConfigError

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def read_secret(
    path: str | Path,
    what: str = "password file",
    *,
    source: str | None = None,
    key: str | None = None,
) -> str:
    """A credential file's content (stripped): passwords never go on a command line, where
    every user sees them in ``/proc/<pid>/cmdline``. Unreadable: a ConfigError naming it."""
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the {what} {path}: {exc.strerror or exc}",
            source=source or str(path),
            key=key,
        ) from None


@dataclass(frozen=True)
class BrokerConfig:
    """Where the broker is and how to log in.

    ``url`` forms: ``mqtt://host:1883``, ``mqtts://host:8883`` (TLS, verified against
    ``ca_file`` or the system store), ``unix:///run/qgs/mqtt.sock``; credentials may be given
    in the URL (``mqtt://user:pass@host``) or as fields.
    """

    host: str = "127.0.0.1"
    port: int = 1883
    unix_socket: str | None = None
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    protocol: Literal["v5", "v311"] = "v5"
    keepalive_s: int = 30
    timeout_s: float = 5.0  #: bound on connect, subscribe and each publish

    @classmethod
    def from_url(cls, url: str, **fields: object) -> BrokerConfig:
        """Parse a broker URL; ``fields`` override or add settings (None values are ignored)."""
        fields = {k: v for k, v in fields.items() if v is not None}
        parts = urlsplit(url)
        if parts.scheme == "unix":
            if not parts.path:
                raise ConfigError(f"{url!r}: expected unix:///path/to/socket", key="mqtt.broker")
            return cls(unix_socket=parts.path, **fields)  # type: ignore[arg-type]
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ConfigError(
                f"{url!r}: unknown broker scheme {parts.scheme!r}; expected mqtt://host:port, "
                "mqtts://host:port or unix:///path",
                key="mqtt.broker",
            )
        if not parts.hostname:
            raise ConfigError(f"{url!r}: missing broker host", key="mqtt.broker")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise ConfigError(f"{url!r}: port must be 1..65535", key="mqtt.broker") from None
        creds: dict[str, object] = {}
        if parts.username:
            creds["username"] = unquote(parts.username)
        if parts.password:
            creds["password"] = unquote(parts.password)
        return cls(
            host=parts.hostname,
            port=port,
            tls=parts.scheme == "mqtts",
            **{**creds, **fields},  # type: ignore[arg-type]
        )

    def for_connection(self, role: str) -> BrokerConfig:
        """The same login as user ``<username>-<role>`` (same password), for one more
        simultaneous connection of one client.

        The shipped brokers run with ``use_username_as_clientid true`` (configs/mosquitto/
        README.md): the broker replaces every client id by the user name, so a second
        connection of one user takes the first one over. A client that holds several
        connections at once (the coordinator: its node, a watcher, its bookings) logs each
        one in as its own user; the broker kit creates ``<coordinator>-watch`` and
        ``<coordinator>-cmd`` with the coordinator's password. Without a user name (an open
        broker) this is the same config.
        """
        if self.username is None:
            return self
        return dataclasses.replace(self, username=f"{self.username}-{role}")

    def inbox_owner(self, client_id: str) -> str:
        """The requester level of this login's reply inbox ``qgs/reply/<owner>/…``.

        The user name when there is one (the ACL grants ``qgs/reply/%u/#``, and the broker
        makes it the client id); the client id on an open broker.
        """
        return self.username or client_id

    def client(
        self, identifier: str, *, will: aiomqtt.Will | None = None, clean_session: bool = True
    ) -> aiomqtt.Client:
        """A fresh aiomqtt client (aiomqtt clients are reusable but not reentrant).

        ``identifier`` is the MQTT client id; a broker with ``use_username_as_clientid``
        replaces it by the user name.
        """
        protocol = (
            aiomqtt.ProtocolVersion.V5 if self.protocol == "v5" else aiomqtt.ProtocolVersion.V311
        )
        tls_context = ssl.create_default_context(cafile=self.ca_file) if self.tls else None
        common = {
            "identifier": identifier,
            "username": self.username,
            "password": self.password,
            "protocol": protocol,
            "will": will,
            "keepalive": self.keepalive_s,
            "timeout": self.timeout_s,
            "tls_context": tls_context,
            "clean_session": clean_session if protocol is aiomqtt.ProtocolVersion.V311 else None,
        }
        if self.unix_socket is not None:
            return aiomqtt.Client(self.unix_socket, transport="unix", **common)  # type: ignore[arg-type]
        return aiomqtt.Client(self.host, self.port, socket_options=NODELAY, **common)  # type: ignore[arg-type]
