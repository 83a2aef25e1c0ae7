"""Key material ids (issue 13), end to end with boto3 and the AWS CLI:
CurrentKeyMaterialId, KeyMaterialId through import, on-demand rotation of
imported material (ImportType NEW_KEY_MATERIAL, then RotateKeyOnDemand),
ListKeyRotations' material entries, the on-demand rotation limit,
ImportKeyMaterial without an expiration, and GetKeyLastUsage across a restart."""

from __future__ import annotations

import datetime
import os

import pytest
from botocore.exceptions import ClientError

from test_import import external_key, params, wrap


def fail(fn, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as ei:
        fn(**kwargs)
    return ei.value


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def do_import(kms, key_id, material, **extra):
    p = params(kms, key_id)
    extra.setdefault("ExpirationModel", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    return kms.import_key_material(KeyId=key_id, ImportToken=p["ImportToken"],
                                   EncryptedKeyMaterial=wrap(p["PublicKey"], "RSAES_OAEP_SHA_256",
                                                             material), **extra)


def current_id(kms, key_id):
    return kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]


def test_generated_keys_name_their_material_and_rotation_changes_it(kms, new_key):
    key = new_key()
    first = key["CurrentKeyMaterialId"]
    assert len(first) == 64 and all(c in "0123456789abcdef" for c in first)
    assert current_id(kms, key["KeyId"]) == first
    assert kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")["KeyMaterialId"] == first
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    second = current_id(kms, key["KeyId"])
    assert second != first
    rotations = kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"], r["RotationType"]) for r in rotations] == \
        [(second, "CURRENT", "ON_DEMAND")]
    assert "ImportState" not in rotations[0]
    everything = kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")
    assert [(r["KeyMaterialId"], r["KeyMaterialState"]) for r in everything["Rotations"]] == \
        [(first, "NON_CURRENT"), (second, "CURRENT")]
    # Asymmetric keys have no CurrentKeyMaterialId.
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert "CurrentKeyMaterialId" not in signer


def test_imported_material_rotates_on_demand(kms):
    kid = external_key(kms)["KeyId"]
    out = do_import(kms, kid, os.urandom(32))
    first = out["KeyMaterialId"]
    assert current_id(kms, kid) == first
    e = fail(kms.rotate_key_on_demand, KeyId=kid)
    assert code(e) == "KMSInvalidStateException", e
    old = kms.encrypt(KeyId=kid, Plaintext=b"under the first")["CiphertextBlob"]

    # Other bytes without ImportType are EXISTING_KEY_MATERIAL: refused.
    e = fail(do_import, kms=kms, key_id=kid, material=os.urandom(32))
    assert code(e) == "IncorrectKeyMaterialException", e
    # NEW_KEY_MATERIAL with a KeyMaterialId: refused.
    e = fail(do_import, kms=kms, key_id=kid, material=os.urandom(32),
             ImportType="NEW_KEY_MATERIAL", KeyMaterialId=first)
    assert code(e) == "ValidationException", e

    new = do_import(kms, kid, os.urandom(32), ImportType="NEW_KEY_MATERIAL")["KeyMaterialId"]
    assert new != first and current_id(kms, kid) == first
    listed = kms.list_key_rotations(KeyId=kid, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"], r["ImportState"]) for r in listed] == \
        [(first, "CURRENT", "IMPORTED"), (new, "PENDING_ROTATION", "IMPORTED")]
    assert listed[1]["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert kms.list_key_rotations(KeyId=kid)["Rotations"] == []

    kms.rotate_key_on_demand(KeyId=kid)
    assert current_id(kms, kid) == new
    rotations = kms.list_key_rotations(KeyId=kid)["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"], r["RotationType"], r["ImportState"])
            for r in rotations] == [(new, "CURRENT", "ON_DEMAND", "IMPORTED")]
    out = kms.decrypt(CiphertextBlob=old)
    assert out["Plaintext"] == b"under the first" and out["KeyMaterialId"] == first
    fresh = kms.encrypt(KeyId=kid, Plaintext=b"under the new")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=fresh)["KeyMaterialId"] == new
    e = fail(kms.rotate_key_on_demand, KeyId=kid)
    assert code(e) == "KMSInvalidStateException"

    # Deleting the current material names it; the key waits; old ciphertexts wait too.
    deleted = kms.delete_imported_key_material(KeyId=kid)
    assert deleted["KeyMaterialId"] == new
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_import_without_expiration_is_refused(kms):
    kid = external_key(kms)["KeyId"]
    p = params(kms, kid)
    e = fail(kms.import_key_material, KeyId=kid, ImportToken=p["ImportToken"],
             EncryptedKeyMaterial=wrap(p["PublicKey"], "RSAES_OAEP_SHA_256", os.urandom(32)))
    assert code(e) == "ValidationException"
    assert "ValidTo" in e.response["Error"]["Message"]


def test_on_demand_rotations_stop_at_25(kms, new_key):
    key = new_key()
    for _ in range(25):
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    e = fail(kms.rotate_key_on_demand, KeyId=key["KeyId"])
    assert code(e) == "LimitExceededException", e


def test_cli_imports_with_new_key_material_and_lists_rotations(node, kms, tmp_path):
    kid = external_key(kms)["KeyId"]
    first = do_import(kms, kid, os.urandom(32))["KeyMaterialId"]
    p = params(kms, kid)
    (tmp_path / "token.bin").write_bytes(p["ImportToken"])
    (tmp_path / "material.bin").write_bytes(wrap(p["PublicKey"], "RSAES_OAEP_SHA_256", os.urandom(32)))
    out = node.aws("kms", "import-key-material", "--key-id", kid,
                   "--import-token", f"fileb://{tmp_path / 'token.bin'}",
                   "--encrypted-key-material", f"fileb://{tmp_path / 'material.bin'}",
                   "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE",
                   "--import-type", "NEW_KEY_MATERIAL")
    new = out["KeyMaterialId"]
    assert new != first
    node.aws("kms", "rotate-key-on-demand", "--key-id", kid)
    listed = node.aws("kms", "list-key-rotations", "--key-id", kid,
                      "--include-key-material", "ALL_KEY_MATERIAL")["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"]) for r in listed] == \
        [(first, "NON_CURRENT"), (new, "CURRENT")]


def test_key_last_usage_is_recorded_and_survives_a_restart(fresh_node):
    kms = fresh_node.boto3_client(1)
    key = kms.create_key()["KeyMetadata"]
    before = kms.get_key_last_usage(KeyId=key["KeyId"])
    assert "KeyLastUsage" not in before
    assert before["KeyCreationDate"] == key["CreationDate"]
    assert before["TrackingStartDate"] <= datetime.datetime.now(datetime.timezone.utc)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert kms.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"]["Operation"] == "Encrypt"
    kms.decrypt(CiphertextBlob=blob)
    used = kms.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"]
    assert used["Operation"] == "Decrypt"
    # DescribeKey is not a cryptographic operation; a DryRun is not a use.
    kms.describe_key(KeyId=key["KeyId"])
    with pytest.raises(ClientError):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", DryRun=True)
    assert kms.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"] == used
    # Aliases are not accepted, as in AWS.
    kms.create_alias(AliasName="alias/last-usage", TargetKeyId=key["KeyId"])
    e = fail(kms.get_key_last_usage, KeyId="alias/last-usage")
    assert code(e) == "NotFoundException"

    assert fresh_node.restart() == 0
    kms = fresh_node.boto3_client(1)
    again = kms.get_key_last_usage(KeyId=key["Arn"])
    assert again["KeyLastUsage"] == used
    out = fresh_node.aws("kms", "get-key-last-usage", "--key-id", key["KeyId"])
    assert out["KeyLastUsage"]["Operation"] == "Decrypt"
