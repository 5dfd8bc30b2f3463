"""`qgs network brokers`: one Mosquitto per site, bridged over TLS to a central broker.

Writes, for a network config's stations, a directory a site administrator copies into place::

    <out>/ca.crt, ca.key             the network's test CA (replace by your own CA in production)
    <out>/central/mosquitto.conf     from configs/mosquitto/central.conf, with passwd, acl,
                                     server.crt/.key (signed by the CA, SAN = the central host)
    <out>/<station>/mosquitto.conf   from configs/mosquitto/site.conf (the bridge), passwd, acl
    <out>/credentials/<broker>/<user>.pw   every client's password, mode 0600

Users (configs/mosquitto/README.md; every broker runs with ``use_username_as_clientid true``,
so a user name is also the connection's client id and each connection needs its own user):

- at each site: the station daemon as ``<station>`` (it publishes only under
  ``qgs/v1/<station>/#`` and answers only into ``qgs/reply/+/<station>/#``), the site's
  operators (commands to that station only) and monitors (read only);
- at the central broker: one ``bridge-<station>`` per site (it may publish only its station's
  topics and acks, and read only its commands), the operators, the coordinator's three
  connections ``<coordinator>``, ``<coordinator>-watch`` and ``<coordinator>-cmd`` (one
  password, ``credentials/central/<coordinator>.pw``; see BrokerConfig.for_connection) and
  the monitors.

Every user reads its own inbox ``qgs/reply/<user>/#`` only (``pattern read qgs/reply/%u/#``).
Passwords are random, hashed into the ``passwd`` files with ``mosquitto_passwd -U`` (never on
a command line); the bridge's own password must sit in the site's mosquitto.conf (Mosquitto
reads it from there), which is therefore written 0600.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from drivers.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "configs" / "mosquitto"
OPERATORS = ("operator",)  #: default operator users (one per person or program)
MONITORS = ("monitor", "dashboard")  #: default monitor users (one per dashboard / monitor)
COORDINATOR_CONNECTIONS = ("watch", "cmd")  #: BrokerConfig.for_connection roles
READ_ALL = "topic read qgs/v1/#\n"
INBOX_PATTERN = "pattern read qgs/reply/%u/#\n"  #: %u: the user name, never the client id
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  #: an inbox level (envelope.py)
OPENSSL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class BrokerKit:
    """Where everything was written and on which loopback ports the brokers listen."""

    out: Path
    central_port: int  #: TLS listener for the sites' bridges
    central_local_port: int  #: the central host's own clients (coordinator, dashboard)
    site_ports: dict[str, int]

    def conf(self, broker: str) -> Path:
        """``central`` or a station name."""
        return self.out / broker / "mosquitto.conf"

    def password_file(self, broker: str, user: str) -> Path:
        return self.out / "credentials" / broker / f"{user}.pw"


def _run(args: list[str], cwd: Path) -> None:
    try:
        subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=OPENSSL_TIMEOUT_S)
    except FileNotFoundError:
        raise ConfigError(f"{args[0]} is not installed (apt-get install {args[0]})") from None
    except subprocess.CalledProcessError as exc:
        raise ConfigError(f"{' '.join(args[:2])} failed: {exc.stderr.decode()[-300:]}") from None


def _private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _certificates(out: Path, central_host: str) -> None:
    """The network's CA and the central broker's server certificate (openssl)."""
    _run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes"),
            *("-keyout", "ca.key", "-out", "ca.crt", "-days", "3650", "-subj", "/CN=qgs test CA"),
        ],
        out,
    )
    central = out / "central"
    _run(
        [
            *("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "central/server.key"),
            *("-out", "central/server.csr", "-subj", f"/CN={central_host}"),
        ],
        out,
    )
    kind = "IP" if central_host.replace(".", "").isdigit() or ":" in central_host else "DNS"
    (central / "san.ext").write_text(f"subjectAltName={kind}:{central_host},DNS:localhost\n")
    _run(
        [
            *("openssl", "x509", "-req", "-in", "central/server.csr", "-CA", "ca.crt"),
            *("-CAkey", "ca.key", "-CAcreateserial", "-out", "central/server.crt"),
            *("-days", "825", "-extfile", "central/san.ext"),
        ],
        out,
    )
    for name in ("ca.key", "central/server.key"):
        (out / name).chmod(0o600)


def _passwords(
    out: Path, broker: str, users: list[str], same_as: dict[str, str] | None = None
) -> dict[str, str]:
    """Random passwords: the client files, and the broker's hashed ``passwd``.

    ``same_as`` maps extra users to a user of ``users`` whose password they share (one
    client's several connections); they get no password file of their own.
    """
    creds = out / "credentials" / broker
    creds.mkdir(parents=True, exist_ok=True)
    chosen = {u: secrets.token_urlsafe(24) for u in users}
    for user, password in chosen.items():
        _private(creds / f"{user}.pw", password + "\n")
    every = {**chosen, **{alias: chosen[user] for alias, user in (same_as or {}).items()}}
    passwd = out / broker / "passwd"
    _private(passwd, "".join(f"{u}:{p}\n" for u, p in every.items()))
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise ConfigError("mosquitto_passwd is not installed (apt-get install mosquitto)")
    _run([tool, "-U", str(passwd)], out)  # hashes the file in place
    return chosen


def _block(user: str, *rules: str) -> str:
    return f"user {user}\n" + "".join(rules) + "\n"


def _station_rules(station: str) -> tuple[str, str]:
    """A station daemon: its own tree, and acks only into inboxes for this station."""
    return f"topic readwrite qgs/v1/{station}/#\n", f"topic write qgs/reply/+/{station}/#\n"


def _site_acl(station: str, operators: tuple[str, ...], monitors: tuple[str, ...]) -> str:
    return "".join(
        [
            "# written by `qgs network brokers` (station/network/brokers.py)\n",
            _block(station, *_station_rules(station)),
            *(_block(o, f"topic write qgs/v1/{station}/cmd/#\n", READ_ALL) for o in operators),
            *(_block(m, READ_ALL) for m in monitors),
            INBOX_PATTERN,
        ]
    )


def _central_acl(
    stations: list[str], coordinator: str, operators: tuple[str, ...], monitors: tuple[str, ...]
) -> str:
    parts = ["# written by `qgs network brokers` (station/network/brokers.py)\n"]
    for s in stations:
        # a site's bridge publishes only its own station's topics and acks, reads its commands
        topics = ("status", "state/#", "event/#", "telemetry/#", "live/#", "bridge")
        parts.append(
            _block(
                f"bridge-{s}",
                *(f"topic write qgs/v1/{s}/{t}\n" for t in topics),
                f"topic read qgs/v1/{s}/cmd/#\n",
                f"topic write qgs/reply/+/{s}/#\n",
            )
        )
    command = "topic write qgs/v1/+/cmd/#\n"
    parts += [_block(o, command, READ_ALL) for o in operators]
    parts.append(
        _block(
            coordinator,
            *_station_rules(coordinator),
            command,  # until its bookings use the -cmd connection
            READ_ALL,
        )
    )
    parts.append(_block(f"{coordinator}-watch", READ_ALL))
    parts.append(_block(f"{coordinator}-cmd", command, READ_ALL))
    parts += [_block(m, READ_ALL) for m in monitors]
    parts.append(INBOX_PATTERN)
    return "".join(parts)


def _check_users(site_users: list[str], central_users: list[str]) -> None:
    """Every user name usable as an inbox level, and no name twice on one broker."""
    for names in (site_users, central_users):
        bad = [u for u in names if not USER_NAME.fullmatch(u)]
        if bad:
            raise ConfigError(
                f"user names {bad}: expected letters, digits, '.', '_' or '-' (at most 64), "
                "starting with a letter or digit"
            )
        twice = sorted({u for u in names if names.count(u) > 1})
        if twice:
            raise ConfigError(f"user names {twice} given twice for one broker")


def write_broker_kit(
    stations: list[str],
    out: Path,
    *,
    central_host: str = "127.0.0.1",
    central_port: int = 8883,
    central_local_port: int = 1883,
    site_ports: dict[str, int] | None = None,
    central_bind: str = "127.0.0.1",
    coordinator: str = "coordinator",
    operators: tuple[str, ...] = OPERATORS,
    monitors: tuple[str, ...] = MONITORS,
) -> BrokerKit:
    """Write the CA, the central broker's and every site's config, ACL and passwords.

    ``operators`` and ``monitors`` are user names created on every broker (one per person,
    program or dashboard: a user holds one connection at a time); ``coordinator`` is the
    coordinator's node name (``[coordinator] name``).
    """
    if len(set(stations)) != len(stations) or not stations:
        raise ConfigError(f"expected distinct station names, got {stations}")
    ports = site_ports or {s: 1884 + i for i, s in enumerate(stations)}
    missing = [s for s in stations if s not in ports]
    if missing:
        raise ConfigError(f"no site port for {missing}")
    helpers = {f"{coordinator}-{role}": coordinator for role in COORDINATOR_CONNECTIONS}
    central_users = [*(f"bridge-{s}" for s in stations), *operators, coordinator, *monitors]
    _check_users([*stations, *operators, *monitors], [*central_users, *helpers, *stations])
    out.mkdir(parents=True, exist_ok=True)
    for broker in ("central", *stations):
        (out / broker).mkdir(exist_ok=True)
    _certificates(out, central_host)
    shutil.copy(out / "ca.crt", out / "central" / "ca.crt")
    # tests run as root in 0700 temporary directories, which Mosquitto's own user cannot enter
    user_line = "user root" if os.geteuid() == 0 else ""
    central = out / "central"
    _passwords(out, "central", central_users, same_as=helpers)
    bridge_passwords = {
        s: (out / "credentials" / "central" / f"bridge-{s}.pw").read_text().strip()
        for s in stations
    }
    (central / "acl").write_text(_central_acl(stations, coordinator, operators, monitors))
    template = string.Template((TEMPLATES / "central.conf").read_text())
    (central / "mosquitto.conf").write_text(
        template.substitute(
            dir=central,
            user_line=user_line,
            central_port=central_port,
            central_local_port=central_local_port,
            central_bind=central_bind,
        )
    )
    site_template = string.Template((TEMPLATES / "site.conf").read_text())
    for s in stations:
        site = out / s
        shutil.copy(out / "ca.crt", site / "ca.crt")
        _passwords(out, s, [s, *operators, *monitors])
        (site / "acl").write_text(_site_acl(s, operators, monitors))
        _private(
            site / "mosquitto.conf",
            site_template.substitute(
                dir=site,
                user_line=user_line,
                station=s,
                site_port=ports[s],
                central_host=central_host,
                central_port=central_port,
                bridge_password=bridge_passwords[s],
            ),
        )
    return BrokerKit(out, central_port, central_local_port, {s: ports[s] for s in stations})
