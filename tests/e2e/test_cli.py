"""The real AWS CLI (v1) against keyfence via --endpoint-url."""

import base64
import json
import os
import re
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT1, REGION, unique

ARN_RE = re.compile(
    rf"^arn:aws:kms:{REGION}:{ACCOUNT1}:key/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)


@pytest.fixture
def cli_key(kms):
    """A fresh key (created with boto3 to keep the CLI tests fast: each `aws`
    run costs about a second of Python start-up; create-key through the CLI is
    covered by test_create_and_describe_key)."""
    return kms.create_key(Description="cli test key")["KeyMetadata"]


def write(tmp_path, name, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return f"fileb://{p}"


def cli_encrypt(node, tmp_path, key_id, plaintext: bytes, context=None) -> bytes:
    args = ["kms", "encrypt", "--key-id", key_id, "--plaintext", write(tmp_path, "pt-" + uuid.uuid4().hex, plaintext)]
    if context is not None:
        args += ["--encryption-context", json.dumps(context)]
    out = node.aws(*args)
    return base64.b64decode(out["CiphertextBlob"])


def cli_decrypt(node, tmp_path, blob: bytes, context=None, key_id=None) -> bytes:
    args = ["kms", "decrypt", "--ciphertext-blob", write(tmp_path, "ct-" + uuid.uuid4().hex, blob),
            "--query", "Plaintext"]
    if context is not None:
        args += ["--encryption-context", json.dumps(context)]
    if key_id is not None:
        args += ["--key-id", key_id]
    text = node.aws(*args, output="text")
    return base64.b64decode(text.strip())


def test_sts_get_caller_identity(node):
    out = node.aws("sts", "get-caller-identity")
    assert out["Account"] == ACCOUNT1
    assert out["Arn"] == f"arn:aws:iam::{ACCOUNT1}:user/admin"
    # AWS's form for an IAM user's unique id, stable across calls, not the access key.
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", out["UserId"]), out
    assert node.aws("sts", "get-caller-identity")["UserId"] == out["UserId"]


def test_sts_second_account(node):
    out = node.aws("sts", "get-caller-identity", account=2)
    assert out["Account"] == "444455556666"
    assert out["Arn"] == "arn:aws:iam::444455556666:user/bob"


def test_create_and_describe_key(node):
    out = node.aws(
        "kms", "create-key",
        "--description", "created by the CLI",
        "--tags", "TagKey=team,TagValue=crypto", "TagKey=env,TagValue=test",
    )
    md = out["KeyMetadata"]
    key_id, arn = md["KeyId"], md["Arn"]
    assert ARN_RE.match(arn), arn
    assert arn.endswith("/" + key_id)
    assert md["AWSAccountId"] == ACCOUNT1
    assert md["Description"] == "created by the CLI"
    assert md["Enabled"] is True
    assert md["KeyState"] == "Enabled"
    assert md["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert md["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert md["Origin"] == "AWS_KMS"
    assert md["KeyManager"] == "CUSTOMER"
    assert "SYMMETRIC_DEFAULT" in md["EncryptionAlgorithms"]

    tags = node.aws("kms", "list-resource-tags", "--key-id", key_id)["Tags"]
    assert {t["TagKey"]: t["TagValue"] for t in tags} == {"team": "crypto", "env": "test"}

    alias = f"alias/{unique('cli-describe')}"
    node.aws("kms", "create-alias", "--alias-name", alias, "--target-key-id", key_id)
    alias_arn = f"arn:aws:kms:{REGION}:{ACCOUNT1}:{alias}"
    for ident in (key_id, arn, alias, alias_arn):
        d = node.aws("kms", "describe-key", "--key-id", ident)["KeyMetadata"]
        assert d["KeyId"] == key_id, ident
        assert d["Arn"] == arn, ident
        assert d["Description"] == "created by the CLI"


def test_describe_unknown_key_fails(node):
    err = node.aws_fail("kms", "describe-key", "--key-id", str(uuid.uuid4()))
    assert "NotFoundException" in err


def test_alias_lifecycle(node, kms, cli_key):
    other = kms.create_key(Description="alias target 2")["KeyMetadata"]
    name = f"alias/{unique('cli-alias')}"
    node.aws("kms", "create-alias", "--alias-name", name, "--target-key-id", cli_key["KeyId"])

    aliases = node.aws("kms", "list-aliases")["Aliases"]
    mine = [a for a in aliases if a["AliasName"] == name]
    assert len(mine) == 1
    assert mine[0]["TargetKeyId"] == cli_key["KeyId"]
    assert mine[0]["AliasArn"] == f"arn:aws:kms:{REGION}:{ACCOUNT1}:{name}"

    by_key = node.aws("kms", "list-aliases", "--key-id", cli_key["KeyId"])["Aliases"]
    assert [a["AliasName"] for a in by_key] == [name]

    node.aws("kms", "update-alias", "--alias-name", name, "--target-key-id", other["KeyId"])
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == other["KeyId"]
    assert kms.list_aliases(KeyId=cli_key["KeyId"])["Aliases"] == []

    node.aws("kms", "delete-alias", "--alias-name", name)
    names = [a["AliasName"] for p in kms.get_paginator("list_aliases").paginate() for a in p["Aliases"]]
    assert name not in names
    err = node.aws_fail("kms", "describe-key", "--key-id", name)
    assert "NotFoundException" in err


def test_encrypt_decrypt_with_context(node, cli_key, tmp_path):
    plaintext = os.urandom(1000) + b"\x00\xff binary \n"
    ctx = {"purpose": "e2e", "user": "alice"}
    out = node.aws(
        "kms", "encrypt", "--key-id", cli_key["Arn"],
        "--plaintext", write(tmp_path, "pt.bin", plaintext),
        "--encryption-context", json.dumps(ctx),
    )
    assert out["KeyId"] == cli_key["Arn"]
    assert out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = base64.b64decode(out["CiphertextBlob"])
    assert plaintext not in blob

    assert cli_decrypt(node, tmp_path, blob, context=ctx) == plaintext
    # Full decrypt output too.
    full = node.aws(
        "kms", "decrypt", "--ciphertext-blob", write(tmp_path, "ct.bin", blob),
        "--encryption-context", json.dumps(ctx),
    )
    assert full["KeyId"] == cli_key["Arn"]
    assert full["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"

    err = node.aws_fail(
        "kms", "decrypt", "--ciphertext-blob", write(tmp_path, "ct2.bin", blob),
        "--encryption-context", json.dumps({"purpose": "e2e", "user": "mallory"}),
    )
    assert "InvalidCiphertextException" in err
    err = node.aws_fail("kms", "decrypt", "--ciphertext-blob", write(tmp_path, "ct3.bin", blob))
    assert "InvalidCiphertextException" in err


def test_encrypt_decrypt_via_alias(node, cli_key, tmp_path):
    name = f"alias/{unique('cli-enc')}"
    node.aws("kms", "create-alias", "--alias-name", name, "--target-key-id", cli_key["KeyId"])
    blob = cli_encrypt(node, tmp_path, name, b"via alias")
    assert cli_decrypt(node, tmp_path, blob) == b"via alias"
    assert cli_decrypt(node, tmp_path, blob, key_id=name) == b"via alias"


def test_re_encrypt(node, kms, cli_key, tmp_path):
    dest = kms.create_key(Description="re-encrypt dest")["KeyMetadata"]
    src_ctx = {"stage": "one"}
    dst_ctx = {"stage": "two"}
    blob = cli_encrypt(node, tmp_path, cli_key["KeyId"], b"re-encrypt me", context=src_ctx)
    out = node.aws(
        "kms", "re-encrypt",
        "--ciphertext-blob", write(tmp_path, "src.bin", blob),
        "--source-encryption-context", json.dumps(src_ctx),
        "--destination-key-id", dest["KeyId"],
        "--destination-encryption-context", json.dumps(dst_ctx),
    )
    assert out["SourceKeyId"] == cli_key["Arn"]
    assert out["KeyId"] == dest["Arn"]
    new_blob = base64.b64decode(out["CiphertextBlob"])
    assert new_blob != blob
    assert cli_decrypt(node, tmp_path, new_blob, context=dst_ctx) == b"re-encrypt me"
    full = kms.decrypt(CiphertextBlob=new_blob, EncryptionContext=dst_ctx)
    assert full["KeyId"] == dest["Arn"]


def test_generate_data_key(node, cli_key, tmp_path):
    out = node.aws("kms", "generate-data-key", "--key-id", cli_key["KeyId"], "--key-spec", "AES_256")
    assert out["KeyId"] == cli_key["Arn"]
    dk = base64.b64decode(out["Plaintext"])
    assert len(dk) == 32
    assert cli_decrypt(node, tmp_path, base64.b64decode(out["CiphertextBlob"])) == dk

    out = node.aws(
        "kms", "generate-data-key", "--key-id", cli_key["KeyId"], "--number-of-bytes", "64",
        "--encryption-context", json.dumps({"k": "v"}),
    )
    dk64 = base64.b64decode(out["Plaintext"])
    assert len(dk64) == 64
    blob = base64.b64decode(out["CiphertextBlob"])
    assert cli_decrypt(node, tmp_path, blob, context={"k": "v"}) == dk64

    out = node.aws(
        "kms", "generate-data-key-without-plaintext", "--key-id", cli_key["KeyId"],
        "--key-spec", "AES_256",
    )
    assert "Plaintext" not in out
    assert out["KeyId"] == cli_key["Arn"]
    dk2 = cli_decrypt(node, tmp_path, base64.b64decode(out["CiphertextBlob"]))
    assert len(dk2) == 32
    assert dk2 != dk


def test_generate_random(node):
    a = base64.b64decode(node.aws("kms", "generate-random", "--number-of-bytes", "32")["Plaintext"])
    big = base64.b64decode(node.aws("kms", "generate-random", "--number-of-bytes", "1024")["Plaintext"])
    assert len(a) == 32 and len(big) == 1024
    assert a not in big and a != bytes(32)


def test_key_rotation(node, kms, cli_key, tmp_path):
    kid = cli_key["KeyId"]
    assert kms.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"] is False

    before = kms.encrypt(KeyId=kid, Plaintext=b"before rotation")["CiphertextBlob"]

    node.aws("kms", "enable-key-rotation", "--key-id", kid, "--rotation-period-in-days", "90")
    st = node.aws("kms", "get-key-rotation-status", "--key-id", kid)
    assert st["KeyRotationEnabled"] is True
    assert st["RotationPeriodInDays"] == 90
    assert st.get("NextRotationDate")

    out = node.aws("kms", "rotate-key-on-demand", "--key-id", kid)
    assert out["KeyId"] in (kid, cli_key["Arn"])

    rot = node.aws("kms", "list-key-rotations", "--key-id", kid)["Rotations"]
    assert len(rot) == 1
    assert rot[0]["RotationType"] == "ON_DEMAND"
    assert rot[0]["KeyId"] in (kid, cli_key["Arn"])
    assert rot[0].get("RotationDate")

    after = kms.encrypt(KeyId=kid, Plaintext=b"after rotation")["CiphertextBlob"]
    assert after != before
    # Ciphertext from before the rotation still decrypts (through the CLI).
    assert cli_decrypt(node, tmp_path, before) == b"before rotation"
    assert kms.decrypt(CiphertextBlob=after)["Plaintext"] == b"after rotation"

    node.aws("kms", "disable-key-rotation", "--key-id", kid)
    assert kms.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"] is False
    # Rotation history survives disabling automatic rotation.
    assert len(kms.list_key_rotations(KeyId=kid)["Rotations"]) == 1


def test_disable_enable_key(node, kms, cli_key, tmp_path):
    kid = cli_key["KeyId"]
    blob = kms.encrypt(KeyId=kid, Plaintext=b"x")["CiphertextBlob"]
    node.aws("kms", "disable-key", "--key-id", kid)
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert md["KeyState"] == "Disabled" and md["Enabled"] is False
    err = node.aws_fail("kms", "encrypt", "--key-id", kid, "--plaintext", write(tmp_path, "p", b"y"))
    assert "DisabledException" in err

    node.aws("kms", "enable-key", "--key-id", kid)
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["Enabled"] is True
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_schedule_and_cancel_deletion(node, kms, cli_key, tmp_path):
    kid = cli_key["KeyId"]
    out = node.aws("kms", "schedule-key-deletion", "--key-id", kid, "--pending-window-in-days", "7")
    assert out["KeyId"] in (kid, cli_key["Arn"])
    assert out.get("DeletionDate")
    if "KeyState" in out:
        assert out["KeyState"] == "PendingDeletion"
    if "PendingWindowInDays" in out:
        assert out["PendingWindowInDays"] == 7
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert md["KeyState"] == "PendingDeletion"
    assert md["Enabled"] is False
    assert md.get("DeletionDate")

    err = node.aws_fail("kms", "encrypt", "--key-id", kid, "--plaintext", write(tmp_path, "p", b"y"))
    assert "KMSInvalidStateException" in err

    out = node.aws("kms", "cancel-key-deletion", "--key-id", kid)
    assert out["KeyId"] in (kid, cli_key["Arn"])
    md = node.aws("kms", "describe-key", "--key-id", kid)["KeyMetadata"]
    assert md["KeyState"] == "Disabled"
    assert md.get("DeletionDate") is None
    with pytest.raises(ClientError) as ei:
        kms.encrypt(KeyId=kid, Plaintext=b"y")
    assert ei.value.response["Error"]["Code"] == "DisabledException"


def test_list_keys_paging(fresh_node):
    """On a node of its own: three keys, listed one per page."""
    node = fresh_node
    kms = node.boto3_client(1)
    created = {kms.create_key(Description=f"page {i}")["KeyMetadata"]["KeyId"] for i in range(3)}
    limit = 1
    # Manual paging with --limit (which turns off the CLI's auto-pagination).
    seen, marker, pages = [], None, 0
    while True:
        args = ["kms", "list-keys", "--limit", str(limit)]
        if marker:
            args += ["--marker", marker]
        out = node.aws(*args)
        pages += 1
        assert len(out["Keys"]) <= limit
        seen += [k["KeyId"] for k in out["Keys"]]
        for k in out["Keys"]:
            assert k["KeyArn"] == f"arn:aws:kms:{REGION}:{ACCOUNT1}:key/{k['KeyId']}"
        if not out.get("Truncated"):
            assert not out.get("NextMarker")
            break
        assert out["NextMarker"]
        marker = out["NextMarker"]
        assert pages < 10
    assert pages == 3
    assert len(seen) == len(set(seen)), "a key was listed twice across pages"
    assert set(seen) == created

    # The CLI's own auto-pagination (--page-size) gives the same set.
    auto = node.aws("kms", "list-keys", "--page-size", str(limit))["Keys"]
    assert {k["KeyId"] for k in auto} == set(seen)


def test_tags(node, kms, cli_key):
    kid = cli_key["KeyId"]
    assert kms.list_resource_tags(KeyId=kid)["Tags"] == []
    node.aws("kms", "tag-resource", "--key-id", kid,
             "--tags", "TagKey=a,TagValue=1", "TagKey=b,TagValue=2")
    tags = node.aws("kms", "list-resource-tags", "--key-id", kid)["Tags"]
    assert {t["TagKey"]: t["TagValue"] for t in tags} == {"a": "1", "b": "2"}
    # Re-tagging an existing key overwrites its value.
    kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "a", "TagValue": "3"}])
    node.aws("kms", "untag-resource", "--key-id", kid, "--tag-keys", "b")
    tags = node.aws("kms", "list-resource-tags", "--key-id", kid)["Tags"]
    assert tags == [{"TagKey": "a", "TagValue": "3"}]


def test_update_key_description(node, kms, cli_key):
    kid = cli_key["KeyId"]
    node.aws("kms", "update-key-description", "--key-id", kid, "--description", "new words")
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["Description"] == "new words"
