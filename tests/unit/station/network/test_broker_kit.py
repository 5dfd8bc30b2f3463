"""`qgs network brokers`: the files a site administrator gets, and what they must not hold."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from drivers.errors import ConfigError
from station.network.brokers import write_broker_kit


def test_kit_files_acls_and_secrets(tmp_path: Path) -> None:
    kit = write_broker_kit(["delingha", "nanshan"], tmp_path, central_port=18883)
    for broker in ("central", "delingha", "nanshan"):
        conf = kit.conf(broker).read_text()
        assert "$" not in conf  # every placeholder filled
        assert (tmp_path / broker / "acl").exists()
    site = kit.conf("delingha").read_text()
    assert "address 127.0.0.1:18883" in site
    assert "bridge_cafile" in site
    assert "topic qgs/v1/delingha/cmd/# in 1" in site
    assert "topic qgs/v1/nanshan" not in site  # a site bridges only its own station
    # the bridge password sits in the site's conf (Mosquitto reads it there): owner only
    assert stat.S_IMODE(kit.conf("delingha").stat().st_mode) == 0o600
    bridge_pw = kit.password_file("central", "bridge-delingha").read_text().strip()
    assert bridge_pw in site
    assert bridge_pw not in kit.conf("nanshan").read_text()
    # brokers hold hashes only; clients' password files are owner-only
    for broker, user in (("central", "coordinator"), ("delingha", "station")):
        pw = kit.password_file(broker, user)
        assert stat.S_IMODE(pw.stat().st_mode) == 0o600
        passwd = (tmp_path / broker / "passwd").read_text()
        assert f"{user}:$" in passwd
        assert pw.read_text().strip() not in passwd
    acl = (tmp_path / "central" / "acl").read_text()
    delingha_block = acl.split("user bridge-delingha\n", 1)[1].split("\n\n", 1)[0]
    assert "qgs/v1/nanshan" not in delingha_block
    assert "topic read qgs/v1/delingha/cmd/#" in delingha_block
    assert "user monitor\ntopic read qgs/v1/#\n" in acl
    # the server certificate is signed by the kit's CA and names the central host
    assert (tmp_path / "central" / "server.crt").read_text().startswith("-----BEGIN CERTIFICATE")


def test_bad_input_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="distinct"):
        write_broker_kit(["a", "a"], tmp_path)
    with pytest.raises(ConfigError, match="no site port"):
        write_broker_kit(["a", "b"], tmp_path, site_ports={"a": 1})
