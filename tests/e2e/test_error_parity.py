"""Errors as AWS orders its checks and words them (issue 13), through boto3 and
the AWS CLI: IncorrectKeyException before key-usage checks, the alias prefix
as ValidationException, DryRun as HTTP 400, NotFoundException naming the key
ARN, the three exceptions AWS sends without a message, and the RSA plaintext
limit worded as AWS words it."""

from __future__ import annotations

import re
import uuid

import pytest
from botocore.exceptions import ClientError


def fail(fn, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as ei:
        fn(**kwargs)
    return ei.value


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def status(e: ClientError) -> int:
    return e.response["ResponseMetadata"]["HTTPStatusCode"]


def test_decrypt_with_another_key_is_incorrect_key_before_usage(kms, new_key):
    sym = new_key()
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    blob = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    # A signing key named for a symmetric ciphertext of another key.
    e = fail(kms.decrypt, CiphertextBlob=blob, KeyId=signer["KeyId"])
    assert code(e) == "IncorrectKeyException", e
    other = new_key()
    e = fail(kms.decrypt, CiphertextBlob=blob, KeyId=other["KeyId"])
    assert code(e) == "IncorrectKeyException", e
    # ReEncrypt: the wrong source wins over a destination that cannot encrypt.
    e = fail(kms.re_encrypt, CiphertextBlob=blob, SourceKeyId=signer["KeyId"],
             DestinationKeyId=signer["KeyId"])
    assert code(e) == "IncorrectKeyException", e
    # Named rightly, it decrypts.
    assert kms.decrypt(CiphertextBlob=blob, KeyId=sym["Arn"])["Plaintext"] == b"x"


def test_alias_without_prefix_is_validation_exception(kms_raw, new_key, node):
    key = new_key()
    e = fail(kms_raw.create_alias, AliasName="no-prefix", TargetKeyId=key["KeyId"])
    assert code(e) == "ValidationException"
    assert e.response["Error"]["Message"].startswith('Alias must start with the prefix "alias/".')
    err = node.aws_fail("kms", "create-alias", "--alias-name", "no-prefix",
                        "--target-key-id", key["KeyId"])
    assert "ValidationException" in err and "alias/" in err


def test_dry_run_answers_400(kms, new_key):
    key = new_key()
    e = fail(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x", DryRun=True)
    assert (code(e), status(e)) == ("DryRunOperationException", 400)


def test_not_found_names_the_full_key_arn(kms):
    missing = str(uuid.uuid4())
    e = fail(kms.describe_key, KeyId=missing)
    assert code(e) == "NotFoundException"
    msg = e.response["Error"]["Message"]
    assert re.fullmatch(rf"Key 'arn:aws:kms:[a-z0-9-]+:\d{{12}}:key/{missing}' does not exist", msg), msg


def test_bare_exceptions_carry_no_message(kms, new_key):
    key = new_key()
    blob = bytearray(kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"])
    blob[-1] ^= 1
    e = fail(kms.decrypt, CiphertextBlob=bytes(blob))
    assert code(e) == "InvalidCiphertextException"
    assert e.response["Error"].get("Message", "") == "", e.response["Error"]

    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    sig = kms.sign(KeyId=signer["KeyId"], Message=b"m",
                   SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    e = fail(kms.verify, KeyId=signer["KeyId"], Message=b"other", Signature=sig,
             SigningAlgorithm="ECDSA_SHA_256")
    assert code(e) == "KMSInvalidSignatureException"
    assert e.response["Error"].get("Message", "") == ""

    mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    mac = kms.generate_mac(KeyId=mac_key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    e = fail(kms.verify_mac, KeyId=mac_key["KeyId"], Message=b"other", Mac=mac,
             MacAlgorithm="HMAC_SHA_256")
    assert code(e) == "KMSInvalidMacException"
    assert e.response["Error"].get("Message", "") == ""


@pytest.mark.parametrize("algorithm,limit", [("RSAES_OAEP_SHA_1", 214), ("RSAES_OAEP_SHA_256", 190)])
def test_rsa_plaintext_limit_is_worded_as_aws(kms, algorithm, limit):
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    ct = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"a" * limit,
                     EncryptionAlgorithm=algorithm)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=ct, KeyId=key["KeyId"],
                       EncryptionAlgorithm=algorithm)["Plaintext"] == b"a" * limit
    e = fail(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"a" * (limit + 1),
             EncryptionAlgorithm=algorithm)
    assert code(e) == "ValidationException"
    assert e.response["Error"]["Message"] == (
        f"Algorithm {algorithm} and key spec RSA_2048 cannot encrypt data larger than {limit} bytes.")


def test_cli_sees_incorrect_key_and_bare_invalid_ciphertext(node, kms, new_key, tmp_path):
    a, b = new_key(), new_key()
    blob = kms.encrypt(KeyId=a["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    path = tmp_path / "ct.bin"
    path.write_bytes(blob)
    err = node.aws_fail("kms", "decrypt", "--ciphertext-blob", f"fileb://{path}",
                        "--key-id", b["KeyId"])
    assert "IncorrectKeyException" in err
    path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    err = node.aws_fail("kms", "decrypt", "--ciphertext-blob", f"fileb://{path}")
    assert "InvalidCiphertextException" in err
