"""The AWS Encryption SDK (library and aws-encryption-cli) using keyfence as KMS."""

import os
import subprocess

import botocore.session
import pytest

import aws_encryption_sdk
from aws_encryption_sdk import CommitmentPolicy
from aws_encryption_sdk.exceptions import AWSEncryptionSDKClientError, DecryptKeyError
from aws_encryption_sdk.key_providers.kms import (
    DiscoveryAwsKmsMasterKeyProvider,
    DiscoveryFilter,
    StrictAwsKmsMasterKeyProvider,
)

from conftest import ACCOUNT1, REGION, unique, venv_bin_dir


class KmsCallLog:
    """Records every KMS call made through a botocore session."""

    def __init__(self):
        self.calls = []  # (operation, status, parsed)

    def __call__(self, http_response, parsed, model, **kwargs):
        self.calls.append((model.name, http_response.status_code, parsed))

    def errors(self, op):
        return [p.get("Error", {}).get("Code") for (o, s, p) in self.calls if o == op and s >= 400]

    def ok(self, op):
        return [p for (o, s, p) in self.calls if o == op and s < 400]


@pytest.fixture
def sdk_env(node, monkeypatch):
    """Point botocore (in this process) at keyfence the way a user would."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", node.endpoint)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(node.ca_path))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
    return node


def make_session(node, log=None, account=1):
    session = botocore.session.Session()
    cred = node.creds[account]
    session.set_credentials(cred.access_key_id, cred.secret_access_key)
    if log is not None:
        session.register("after-call.kms", log)
    return session


@pytest.fixture
def sdk_key(kms):
    return kms.create_key(Description="encryption sdk key")["KeyMetadata"]


def sdk_client():
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )


def test_sdk_round_trip(sdk_env, sdk_key):
    node = sdk_env
    log = KmsCallLog()
    provider = StrictAwsKmsMasterKeyProvider(key_ids=[sdk_key["Arn"]], botocore_session=make_session(node, log))
    client = sdk_client()
    plaintext = os.urandom(100 * 1024)
    ctx = {"app": "e2e", "purpose": "sdk-round-trip"}

    ciphertext, enc_header = client.encrypt(source=plaintext, key_provider=provider, encryption_context=ctx,
                                            frame_length=4096)
    assert plaintext not in ciphertext
    assert len(log.ok("GenerateDataKey")) == 1, log.calls
    assert log.ok("GenerateDataKey")[0]["KeyId"] == sdk_key["Arn"]
    assert enc_header.encryption_context["app"] == "e2e"

    out, dec_header = client.decrypt(source=ciphertext, key_provider=provider)
    assert out == plaintext
    assert dec_header.encryption_context["purpose"] == "sdk-round-trip"
    assert len(log.ok("Decrypt")) == 1
    assert log.ok("Decrypt")[0]["KeyId"] == sdk_key["Arn"]

    # A fresh provider (no cached material) in discovery mode limited to our account.
    discovery = DiscoveryAwsKmsMasterKeyProvider(
        discovery_filter=DiscoveryFilter(account_ids=[ACCOUNT1], partition="aws"),
        botocore_session=make_session(node),
    )
    out, _ = client.decrypt(source=ciphertext, key_provider=discovery)
    assert out == plaintext


def test_sdk_tampered_message_fails(sdk_env, sdk_key):
    node = sdk_env
    provider = StrictAwsKmsMasterKeyProvider(key_ids=[sdk_key["Arn"]], botocore_session=make_session(node))
    client = sdk_client()
    plaintext = os.urandom(100 * 1024)
    ciphertext, _ = client.encrypt(source=plaintext, key_provider=provider, encryption_context={"k": "v"})
    for pos in (len(ciphertext) // 2, len(ciphertext) - 200):
        bad = bytearray(ciphertext)
        bad[pos] ^= 0x40
        with pytest.raises(Exception):
            client.decrypt(source=bytes(bad), key_provider=provider)
    out, _ = client.decrypt(source=ciphertext, key_provider=provider)
    assert out == plaintext


def test_sdk_tampered_data_key_rejected_by_kms(sdk_env, sdk_key):
    """Corrupt the KMS ciphertext (the encrypted data key) inside the message:
    keyfence must answer Decrypt with InvalidCiphertextException."""
    node = sdk_env
    log = KmsCallLog()
    provider = StrictAwsKmsMasterKeyProvider(key_ids=[sdk_key["Arn"]], botocore_session=make_session(node, log))
    client = sdk_client()
    ciphertext, _ = client.encrypt(source=b"a" * 1000, key_provider=provider, encryption_context={"k": "v"})
    edk = log.ok("GenerateDataKey")[0]["CiphertextBlob"]
    at = ciphertext.find(edk)
    assert at > 0, "encrypted data key not found in message"
    bad = bytearray(ciphertext)
    bad[at + len(edk) - 1] ^= 0x01

    log2 = KmsCallLog()
    provider2 = StrictAwsKmsMasterKeyProvider(key_ids=[sdk_key["Arn"]], botocore_session=make_session(node, log2))
    with pytest.raises(DecryptKeyError):
        client.decrypt(source=bytes(bad), key_provider=provider2)
    assert log2.errors("Decrypt") == ["InvalidCiphertextException"], log2.calls


def test_sdk_other_account_cannot_decrypt(sdk_env, sdk_key):
    node = sdk_env
    provider = StrictAwsKmsMasterKeyProvider(key_ids=[sdk_key["Arn"]], botocore_session=make_session(node))
    client = sdk_client()
    ciphertext, _ = client.encrypt(source=b"private", key_provider=provider)
    log = KmsCallLog()
    provider2 = StrictAwsKmsMasterKeyProvider(key_ids=[sdk_key["Arn"]],
                                              botocore_session=make_session(node, log, account=2))
    with pytest.raises(AWSEncryptionSDKClientError):
        client.decrypt(source=ciphertext, key_provider=provider2)
    # The key ARN names another account's key whose policy does not let account 2 in.
    assert log.errors("Decrypt") == ["AccessDeniedException"], log.calls


# ----------------------------------------------------------- aws-encryption-cli
def esdk_cli(node, *args, account=1):
    env = node.aws_env(account, AWS_ENDPOINT_URL_KMS=node.endpoint)
    cmd = [str(venv_bin_dir() / "aws-encryption-cli"), *map(str, args)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    return p


def test_encryption_cli_round_trip(node, sdk_key, tmp_path):
    src = tmp_path / "plain.bin"
    data = os.urandom(200 * 1024) + b"tail"
    src.write_bytes(data)
    enc = tmp_path / "plain.bin.encrypted"
    dec = tmp_path / "plain.bin.decrypted"
    meta = tmp_path / "metadata.json"
    arn = sdk_key["Arn"]

    p = esdk_cli(node, "--encrypt", "--input", src, "--output", enc,
                 "--wrapping-keys", f"key={arn}",
                 "--commitment-policy", "require-encrypt-require-decrypt",
                 "--encryption-context", "purpose=e2e", "stage=cli",
                 "--metadata-output", meta)
    assert p.returncode == 0, p.stderr
    blob = enc.read_bytes()
    assert blob and data not in blob
    assert arn.encode() in blob  # the wrapping key ARN is recorded in the header

    p = esdk_cli(node, "--decrypt", "--input", enc, "--output", dec,
                 "--wrapping-keys", f"key={arn}",
                 "--commitment-policy", "require-encrypt-require-decrypt",
                 "--encryption-context", "purpose=e2e",
                 "--buffer", "-S")
    assert p.returncode == 0, p.stderr
    assert dec.read_bytes() == data

    # Discovery decrypt (no key named) works too.
    dec2 = tmp_path / "plain.bin.decrypted2"
    p = esdk_cli(node, "--decrypt", "--input", enc, "--output", dec2,
                 "--wrapping-keys", "discovery=true", f"discovery-account={ACCOUNT1}",
                 "discovery-partition=aws",
                 "--commitment-policy", "require-encrypt-require-decrypt",
                 "--buffer", "-S")
    assert p.returncode == 0, p.stderr
    assert dec2.read_bytes() == data

    # Required context that the message does not carry: refused.
    dec3 = tmp_path / "plain.bin.decrypted3"
    p = esdk_cli(node, "--decrypt", "--input", enc, "--output", dec3,
                 "--wrapping-keys", f"key={arn}",
                 "--commitment-policy", "require-encrypt-require-decrypt",
                 "--encryption-context", "purpose=other",
                 "--buffer", "-S")
    # (the CLI reports a failed context check on stderr but exits 0)
    assert not dec3.exists()
    assert "failed" in p.stderr.lower(), p.stderr


def test_encryption_cli_disabled_key_fails(node, kms, sdk_key, tmp_path):
    src = tmp_path / "p.txt"
    src.write_bytes(b"hello")
    kms.disable_key(KeyId=sdk_key["KeyId"])
    p = esdk_cli(node, "--encrypt", "--input", src, "--output", tmp_path / "p.enc",
                 "--wrapping-keys", f"key={sdk_key['Arn']}",
                 "--commitment-policy", "require-encrypt-require-decrypt", "-S")
    assert p.returncode != 0, p.stderr
    assert not (tmp_path / "p.enc").exists()
    kms.enable_key(KeyId=sdk_key["KeyId"])
