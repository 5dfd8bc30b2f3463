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
    for broker, user in (("central", "coordinator"), ("delingha", "delingha")):
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
    # issue 10: per-station users, inboxes by user name, client id = user name everywhere
    for broker in ("central", "delingha", "nanshan"):
        text = (tmp_path / broker / "acl").read_text()
        assert "pattern read qgs/reply/%u/#\n" in text
        assert "%c" not in text
        # a per-listener option: in every listener's section (up to the next listener)
        sections = kit.conf(broker).read_text().split("\nlistener ")[1:]
        assert sections, broker
        for section in sections:
            assert "\nuse_username_as_clientid true\n" in section, (broker, section)
    site_acl = (tmp_path / "delingha" / "acl").read_text()
    assert (
        "user delingha\ntopic readwrite qgs/v1/delingha/#\ntopic write qgs/reply/+/delingha/#\n"
        in site_acl
    )
    assert "user station\n" not in site_acl
    assert "user operator\ntopic write qgs/v1/delingha/cmd/#\n" in site_acl
    assert "topic write qgs/reply/+/delingha/#" in delingha_block
    for helper in ("coordinator-watch", "coordinator-cmd"):  # BrokerConfig.for_connection
        assert f"user {helper}\n" in acl
        assert f"{helper}:$" in (tmp_path / "central" / "passwd").read_text()
        assert not kit.password_file("central", helper).exists()  # the coordinator's own
    # the server certificate is signed by the kit's CA and names the central host
    assert (tmp_path / "central" / "server.crt").read_text().startswith("-----BEGIN CERTIFICATE")


def test_bad_input_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="distinct"):
        write_broker_kit(["a", "a"], tmp_path)
    with pytest.raises(ConfigError, match="no site port"):
        write_broker_kit(["a", "b"], tmp_path, site_ports={"a": 1})
    with pytest.raises(ConfigError, match="twice"):
        write_broker_kit(["monitor"], tmp_path)  # a station named like a monitor user
    with pytest.raises(ConfigError, match="user names"):
        write_broker_kit(["a"], tmp_path, operators=("ops:1",))
