"""The keyfence binary itself: init, data dir layout, config credentials."""

import stat
import subprocess
import tomllib

from conftest import ACCOUNT1, ACCOUNT2, Credential, Node, keyfence_bin, random_access_key, random_secret


def run(*args, timeout=60):
    return subprocess.run([str(keyfence_bin()), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_init_creates_and_refuses_existing(tmp_path):
    d = tmp_path / "fresh"
    p = run("init", "--data-dir", d)
    assert p.returncode == 0, p.stderr
    assert (d / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    with open(d / "credentials.toml", "rb") as f:
        creds = tomllib.load(f)["credentials"]
    admin = [c for c in creds if c["account_id"] == ACCOUNT1 and c["user_name"] == "admin"]
    assert len(admin) == 1
    assert admin[0]["access_key_id"].startswith("AKIA") and len(admin[0]["access_key_id"]) == 20
    assert len(admin[0]["secret_access_key"]) >= 30

    # Nothing secret is readable by group or others (private keys, root key, credentials).
    assert not d.stat().st_mode & stat.S_IRWXO, oct(d.stat().st_mode)
    for f in d.iterdir():
        if f.suffix == ".key" or f.name == "credentials.toml" or "root" in f.name:
            assert not f.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO), (f.name, oct(f.stat().st_mode))

    before = {x.name: x.read_bytes() for x in d.iterdir() if x.is_file()}
    p = run("init", "--data-dir", d)
    assert p.returncode != 0, "init over an existing data dir must fail"
    after = {x.name: x.read_bytes() for x in d.iterdir() if x.is_file()}
    assert before == after, "a refused init must not touch the existing data dir"


def test_init_refuses_existing_empty_dir(tmp_path):
    d = tmp_path / "exists"
    d.mkdir()
    p = run("init", "--data-dir", d)
    assert p.returncode != 0


def test_node_data_dir_and_credentials(node):
    assert node.ca_path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert node.creds[1].account_id == ACCOUNT1
    assert node.creds[1].user_name == "admin"
    # The second account comes from --config and is live.
    assert node.aws("sts", "get-caller-identity", account=2)["Account"] == "444455556666"


def make_unrelated_ca(path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unrelated test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_cli_refuses_server_without_dev_ca(node, tmp_path):
    """The server certificate chains to the development CA and nothing else."""
    bundle = tmp_path / "unrelated-ca.pem"
    make_unrelated_ca(bundle)
    env = node.aws_env(1, AWS_CA_BUNDLE=str(bundle))
    p = node.aws_run("sts", "get-caller-identity", env=env)
    assert p.returncode != 0
    assert "SSL" in p.stderr or "certificate" in p.stderr.lower(), p.stderr
    # With the development CA it works.
    assert node.aws("sts", "get-caller-identity")["Account"] == ACCOUNT1


class ConfigOnlyNode(Node):
    """A node configured only through --config (listen, metrics_listen,
    data_dir, region and credentials all in the TOML file; port 0, read back
    from the published addresses)."""

    def __init__(self, workdir, region):
        self.region = region
        super().__init__(workdir, name="cfg", extra_credentials=[
            Credential(random_access_key(), random_secret(), ACCOUNT2, "bob")])

    def _write_config(self):
        super()._write_config()
        extra = self.config_path.read_text()
        self.config_path.write_text(
            f'listen = "127.0.0.1:{self.port}"\n'
            f'metrics_listen = "127.0.0.1:{self.metrics_port}"\n'
            f'data_dir = "{self.data_dir}"\n'
            f'region = "{self.region}"\n\n' + extra
        )

    def command(self):
        return [str(keyfence_bin()), "server", "--config", str(self.config_path)]


def test_config_file_only_with_region(tmp_path):
    import boto3
    from botocore.config import Config

    n = ConfigOnlyNode(tmp_path, "eu-west-1")
    n.start()
    try:
        def client(account):
            cred = n.creds[account]
            return boto3.session.Session(
                aws_access_key_id=cred.access_key_id, aws_secret_access_key=cred.secret_access_key,
                region_name="eu-west-1",
            ).client("kms", endpoint_url=n.endpoint, verify=str(n.ca_path),
                     config=Config(retries={"max_attempts": 1}))

        kms = client(1)
        md = kms.create_key()["KeyMetadata"]
        assert md["Arn"] == f"arn:aws:kms:eu-west-1:{ACCOUNT1}:key/{md['KeyId']}"
        assert kms.encrypt(KeyId=md["KeyId"], Plaintext=b"r")["KeyId"] == md["Arn"]
        md2 = client(2).create_key()["KeyMetadata"]
        assert md2["Arn"].startswith(f"arn:aws:kms:eu-west-1:{ACCOUNT2}:key/")
        assert n.metrics()
    finally:
        assert n.stop() == 0


def run_server_expecting_exit(node, timeout=15):
    """Start node's server command; it must exit (nonzero) by itself."""
    p = subprocess.Popen(node.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.terminate()
        out, _ = p.communicate()
        raise AssertionError(f"keyfence kept running:\n{out[-2000:]}")
    assert p.returncode != 0, out[-2000:]
    return out


def test_refuses_to_start_without_its_root_key(tmp_path):
    """Losing or damaging the root key must stop the node, never silently
    replace it (that would orphan every key and ciphertext)."""
    n = Node(tmp_path)
    n.start()
    kms = n.boto3_client(1)
    k = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=k, Plaintext=b"precious")["CiphertextBlob"]
    assert n.stop() == 0

    secret_files = [f for f in n.data_dir.iterdir() if "root" in f.name]
    assert secret_files, f"no root key file in {sorted(x.name for x in n.data_dir.iterdir())}"
    rk = secret_files[0]
    original = rk.read_bytes()

    rk.unlink()
    run_server_expecting_exit(n)
    assert not rk.exists(), "a new root key was generated over existing data"

    rk.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    run_server_expecting_exit(n)

    rk.write_bytes(original)
    n.start()
    try:
        assert n.boto3_client(1).decrypt(CiphertextBlob=blob)["Plaintext"] == b"precious"
    finally:
        n.stop()


def test_exits_when_port_in_use(tmp_path):
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        n = Node(tmp_path, port=taken)
        out = run_server_expecting_exit(n)
    assert str(taken) in out
    assert not n.addr_path.exists(), "a node that failed to start published addresses"


def test_exits_on_bad_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("listen = [unclosed\n")
    p = run("server", "--config", bad, "--data-dir", tmp_path / "d", timeout=15)
    assert p.returncode != 0
    assert "bad.toml" in p.stderr + p.stdout
