"""A geo-fencing cluster from `keyfence dev --nodes 3`, driven with boto3 and
the keyfence CLI exactly as the README shows: a key fenced to
`region: EU and not country: RU` made at fra, used at par, and at iad (outside
the fence) forwarded to a satisfying node."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import REGION, keyfence_bin

POLICY = "region: EU and not country: RU"
NAMES = ("fra", "par", "iad")


def free_base_port() -> int:
    """A port p with p, p+1, p+2 free right now (the dev command binds them)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 2 > 65535:
            continue
        try:
            socks = []
            for p in range(base, base + 3):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no three consecutive free ports")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    data = tmp_path_factory.mktemp("dev") / "data"
    base = free_base_port()
    log = open(data.parent / "dev.log", "w")
    proc = subprocess.Popen(
        [str(keyfence_bin()), "dev", "--nodes", "3", "--data-dir", str(data), "--base-port", str(base)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    addrs = {}
    deadline = time.time() + 30
    while len(addrs) < 3 and time.time() < deadline:
        for name in NAMES:
            f = data / f"node-{name}.addr.json"
            if f.exists():
                addrs[name] = json.loads(f.read_text())
        time.sleep(0.1)
    assert len(addrs) == 3, (data.parent / "dev.log").read_text()
    # The banner comes after every node is approved.
    banner = []
    while not any("fence a key" in line for line in banner):
        line = proc.stdout.readline()
        assert line, (data.parent / "dev.log").read_text()
        banner.append(line)
    cred = tomllib.loads((data / "credentials.toml").read_text())["credentials"][0]
    yield {"data": data, "addrs": addrs, "cred": cred, "banner": "".join(banner), "base": base}
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def client(cluster, name):
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=cluster["cred"]["access_key_id"],
        aws_secret_access_key=cluster["cred"]["secret_access_key"],
        region_name=REGION,
    )
    return session.client(
        "kms",
        endpoint_url=f"https://{cluster['addrs'][name]['api']}",
        verify=str(cluster["data"] / "ca.pem"),
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=30),
    )


def metrics(cluster, name) -> str:
    with urllib.request.urlopen(f"http://{cluster['addrs'][name]['metrics']}/metrics", timeout=5) as r:
        return r.read().decode()


def keyfence(cluster, *args) -> str:
    p = subprocess.run(
        [str(keyfence_bin()), *args, "--endpoint", f"https://{cluster['addrs']['fra']['api']}",
         "--data-dir", str(cluster["data"])],
        capture_output=True, text=True, timeout=30,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def wait_known(kms, key_id, timeout=10.0):
    """Nodes learn of keys made elsewhere by polling the store every 2 s."""
    deadline = time.time() + timeout
    while True:
        try:
            return kms.describe_key(KeyId=key_id)
        except ClientError as e:
            if e.response["Error"]["Code"] != "NotFoundException" or time.time() > deadline:
                raise
            time.sleep(0.2)


def test_banner_and_node_list(cluster):
    base = cluster["base"]
    for i, name in enumerate(NAMES):
        assert f"{name}  https://127.0.0.1:{base + i}" in cluster["banner"]
    listed = keyfence(cluster, "node", "list")
    for name in NAMES:
        line = next(l for l in listed.splitlines() if l.startswith(name))
        assert "APPROVED" in line, listed
    assert "security: high" in listed


def test_fenced_key_from_boto3_across_the_cluster(cluster):
    fra, par, iad = (client(cluster, n) for n in NAMES)
    key = fra.create_key(Tags=[{"TagKey": "keyfence:fence", "TagValue": "(region: EU) and not (country: RU)"}])
    key_id = key["KeyMetadata"]["KeyId"]
    tags = fra.list_resource_tags(KeyId=key_id)["Tags"]
    assert tags == [{"TagKey": "keyfence:fence", "TagValue": POLICY}]
    with pytest.raises(ClientError) as e:
        fra.untag_resource(KeyId=key_id, TagKeys=["keyfence:fence"])
    assert e.value.response["Error"]["Code"] == "TagException"

    ct = fra.encrypt(KeyId=key_id, Plaintext=b"fenced", EncryptionContext={"app": "geo"})["CiphertextBlob"]
    wait_known(par, key_id)
    assert par.decrypt(CiphertextBlob=ct, EncryptionContext={"app": "geo"})["Plaintext"] == b"fenced"

    # iad does not satisfy the fence: it forwards the signed request.
    wait_known(iad, key_id)
    assert iad.decrypt(CiphertextBlob=ct, EncryptionContext={"app": "geo"})["Plaintext"] == b"fenced"
    ct2 = iad.encrypt(KeyId=key_id, Plaintext=b"from iad")["CiphertextBlob"]
    assert par.decrypt(CiphertextBlob=ct2)["Plaintext"] == b"from iad"
    dk = iad.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert fra.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
    ok = [l for l in metrics(cluster, "iad").splitlines()
          if l.startswith("keyfence_forwarded_requests_total{") and 'outcome="ok"' in l]
    assert sum(float(l.rsplit(" ", 1)[1]) for l in ok) >= 3, ok

    fences = keyfence(cluster, "fence", "list")
    line = next(l for l in fences.splitlines() if l.endswith(POLICY))
    assert "fra,par" in line, fences
