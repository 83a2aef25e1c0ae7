"""The keyfence binary itself: init, data dir layout, config credentials."""

import stat
import subprocess
import tomllib

from conftest import ACCOUNT1, keyfence_bin


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
    # Secrets must not be world-readable.
    mode = (d / "credentials.toml").stat().st_mode
    assert not mode & (stat.S_IROTH | stat.S_IWOTH), oct(mode)

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
