"""`qgs network brokers`: one Mosquitto per site, bridged over TLS to a central broker.

Writes, for a network config's stations, a directory a site administrator copies into place::

    <out>/ca.crt, ca.key             the network's test CA (replace by your own CA in production)
    <out>/central/mosquitto.conf     from configs/mosquitto/central.conf, with passwd, acl,
                                     server.crt/.key (signed by the CA, SAN = the central host)
    <out>/<station>/mosquitto.conf   from configs/mosquitto/site.conf (the bridge), passwd, acl
    <out>/credentials/<broker>/<user>.pw   every client's password, mode 0600

Users: at each site ``station`` (the daemon: its own station's topics only), ``operator``
(commands to that station), ``monitor`` (read only); at the central broker one
``bridge-<station>`` per site (it may publish only its station's topics and read only its
commands), ``operator``, ``coordinator`` and ``monitor`` with the roles of
configs/mosquitto/qgs.acl. Passwords are random, hashed into the ``passwd`` files with
``mosquitto_passwd -U`` (never on a command line); the bridge's own password must sit in the
site's mosquitto.conf (Mosquitto reads it from there), which is therefore written 0600.
"""

from __future__ import annotations

import os
import secrets
import shutil
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from drivers.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "configs" / "mosquitto"
SITE_USERS = ("station", "operator", "monitor")
CENTRAL_USERS = ("operator", "coordinator", "monitor")
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


def _passwords(out: Path, broker: str, users: list[str]) -> dict[str, str]:
    """Random passwords: the client files, and the broker's hashed ``passwd``."""
    creds = out / "credentials" / broker
    creds.mkdir(parents=True, exist_ok=True)
    chosen = {u: secrets.token_urlsafe(24) for u in users}
    for user, password in chosen.items():
        _private(creds / f"{user}.pw", password + "\n")
    passwd = out / broker / "passwd"
    _private(passwd, "".join(f"{u}:{p}\n" for u, p in chosen.items()))
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise ConfigError("mosquitto_passwd is not installed (apt-get install mosquitto)")
    _run([tool, "-U", str(passwd)], out)  # hashes the file in place
    return chosen


def _site_acl(station: str) -> str:
    return (
        "# written by `qgs network brokers` (station/network/brokers.py)\n"
        f"user station\ntopic readwrite qgs/v1/{station}/#\ntopic write qgs/reply/#\n\n"
        f"user operator\ntopic write qgs/v1/{station}/cmd/#\ntopic read qgs/v1/#\n\n"
        "user monitor\ntopic read qgs/v1/#\n\n"
        "pattern read qgs/reply/%c/#\n"
    )


def _central_acl(stations: list[str]) -> str:
    parts = ["# written by `qgs network brokers` (station/network/brokers.py)\n"]
    for s in stations:
        # a site's bridge publishes only its own station's topics and reads only its commands
        parts.append(
            f"user bridge-{s}\n"
            + "".join(
                f"topic write qgs/v1/{s}/{t}\n"
                for t in ("status", "state/#", "event/#", "telemetry/#", "live/#", "bridge")
            )
            + f"topic read qgs/v1/{s}/cmd/#\ntopic write qgs/reply/#\n\n"
        )
    parts.append(
        "user operator\ntopic write qgs/v1/+/cmd/#\ntopic read qgs/v1/#\n\n"
        "user coordinator\ntopic write qgs/v1/+/cmd/#\ntopic read qgs/v1/#\n"
        "topic readwrite qgs/v1/coordinator/#\ntopic write qgs/reply/#\n\n"
        "user monitor\ntopic read qgs/v1/#\n\n"
        "pattern read qgs/reply/%c/#\n"
    )
    return "".join(parts)


def write_broker_kit(
    stations: list[str],
    out: Path,
    *,
    central_host: str = "127.0.0.1",
    central_port: int = 8883,
    central_local_port: int = 1883,
    site_ports: dict[str, int] | None = None,
    central_bind: str = "127.0.0.1",
) -> BrokerKit:
    """Write the CA, the central broker's and every site's config, ACL and passwords."""
    if len(set(stations)) != len(stations) or not stations:
        raise ConfigError(f"expected distinct station names, got {stations}")
    ports = site_ports or {s: 1884 + i for i, s in enumerate(stations)}
    missing = [s for s in stations if s not in ports]
    if missing:
        raise ConfigError(f"no site port for {missing}")
    out.mkdir(parents=True, exist_ok=True)
    for broker in ("central", *stations):
        (out / broker).mkdir(exist_ok=True)
    _certificates(out, central_host)
    shutil.copy(out / "ca.crt", out / "central" / "ca.crt")
    # tests run as root in 0700 temporary directories, which Mosquitto's own user cannot enter
    user_line = "user root" if os.geteuid() == 0 else ""
    central = out / "central"
    _passwords(out, "central", [*(f"bridge-{s}" for s in stations), *CENTRAL_USERS])
    bridge_passwords = {
        s: (out / "credentials" / "central" / f"bridge-{s}.pw").read_text().strip()
        for s in stations
    }
    (central / "acl").write_text(_central_acl(stations))
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
        _passwords(out, s, list(SITE_USERS))
        (site / "acl").write_text(_site_acl(s))
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
