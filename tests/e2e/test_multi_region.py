"""Multi-Region keys: a primary and its replicas in other regions of the same
node share id and material, so one region decrypts what another encrypted."""

import json
import os

import botocore.session
import pytest
from botocore.exceptions import ClientError

import aws_encryption_sdk
from aws_encryption_sdk import CommitmentPolicy
from aws_encryption_sdk.exceptions import DecryptKeyError
from aws_encryption_sdk.key_providers.kms import (
    MRKAwareDiscoveryAwsKmsMasterKeyProvider,
    MRKAwareStrictAwsKmsMasterKeyProvider,
    StrictAwsKmsMasterKeyProvider,
)

from conftest import ACCOUNT1, REGION
from regions_fixtures import NOT_SERVED, SOUTH, WEST, cli, client, error_code, regional_node  # noqa: F401


def primary_key(node, description="mrk primary"):
    return client(node, REGION).create_key(Description=description, MultiRegion=True)["KeyMetadata"]


def test_create_a_multi_region_key(regional_node):
    meta = primary_key(regional_node)
    assert meta["KeyId"].startswith("mrk-") and len(meta["KeyId"]) == 36, meta["KeyId"]
    assert meta["Arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT1}:key/{meta['KeyId']}"
    assert meta["MultiRegion"] is True
    config = meta["MultiRegionConfiguration"]
    assert config["MultiRegionKeyType"] == "PRIMARY"
    assert config["PrimaryKey"] == {"Arn": meta["Arn"], "Region": REGION}
    assert config["ReplicaKeys"] == []
    # The AWS CLI too.
    p = cli(regional_node, WEST, "kms", "create-key", "--multi-region")
    assert p.returncode == 0, p.stderr
    made = json.loads(p.stdout)["KeyMetadata"]
    assert made["KeyId"].startswith("mrk-") and made["Arn"].startswith(f"arn:aws:kms:{WEST}:")


def test_a_replica_decrypts_the_primarys_ciphertext(regional_node):
    east, west = client(regional_node, REGION), client(regional_node, WEST)
    meta = primary_key(regional_node)
    blob = east.encrypt(KeyId=meta["KeyId"], Plaintext=b"made in us-east-1",
                        EncryptionContext={"app": "mrk"})["CiphertextBlob"]

    reply = east.replicate_key(KeyId=meta["Arn"], ReplicaRegion=WEST, Description="west replica",
                               Tags=[{"TagKey": "team", "TagValue": "west"}])
    replica = reply["ReplicaKeyMetadata"]
    west_arn = f"arn:aws:kms:{WEST}:{ACCOUNT1}:key/{meta['KeyId']}"
    assert replica["KeyId"] == meta["KeyId"]
    assert replica["Arn"] == west_arn
    assert replica["Description"] == "west replica"
    assert replica["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert replica["MultiRegionConfiguration"]["PrimaryKey"] == {"Arn": meta["Arn"], "Region": REGION}
    assert reply["ReplicaTags"] == [{"TagKey": "team", "TagValue": "west"}]
    assert json.loads(reply["ReplicaPolicy"])["Statement"]

    out = west.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "mrk"})
    assert out["Plaintext"] == b"made in us-east-1"
    assert out["KeyId"] == west_arn
    # Named by id in the replica's region.
    out = west.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "mrk"}, KeyId=meta["KeyId"])
    assert out["Plaintext"] == b"made in us-east-1"
    # And the other way round.
    back = west.encrypt(KeyId=west_arn, Plaintext=b"made in eu-west-1")["CiphertextBlob"]
    assert east.decrypt(CiphertextBlob=back)["Plaintext"] == b"made in eu-west-1"

    # Each member has its own description and tags.
    assert east.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]["Description"] == "mrk primary"
    assert west.list_resource_tags(KeyId=meta["KeyId"])["Tags"] == [{"TagKey": "team", "TagValue": "west"}]
    assert east.list_resource_tags(KeyId=meta["KeyId"])["Tags"] == []
    primary_config = east.describe_key(KeyId=meta["Arn"])["KeyMetadata"]["MultiRegionConfiguration"]
    assert primary_config["ReplicaKeys"] == [{"Arn": west_arn, "Region": WEST}]

    # Refusals as AWS gives them.
    with pytest.raises(ClientError) as e:
        east.replicate_key(KeyId=meta["Arn"], ReplicaRegion=WEST)
    assert error_code(e) == "AlreadyExistsException"
    with pytest.raises(ClientError) as e:
        west.replicate_key(KeyId=west_arn, ReplicaRegion=SOUTH)
    assert error_code(e) == "UnsupportedOperationException"
    with pytest.raises(ClientError) as e:
        east.replicate_key(KeyId=meta["Arn"], ReplicaRegion=NOT_SERVED)
    assert error_code(e) == "UnsupportedOperationException"
    single = east.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as e:
        east.replicate_key(KeyId=single["Arn"], ReplicaRegion=WEST)
    assert error_code(e) == "UnsupportedOperationException"


def test_rotation_is_driven_from_the_primary(regional_node):
    east, west = client(regional_node, REGION), client(regional_node, WEST)
    meta = primary_key(regional_node)
    east.replicate_key(KeyId=meta["Arn"], ReplicaRegion=WEST)
    for call in (lambda: west.rotate_key_on_demand(KeyId=meta["KeyId"]),
                 lambda: west.enable_key_rotation(KeyId=meta["KeyId"])):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "UnsupportedOperationException"
        assert "replica" in e.value.response["Error"]["Message"]
    east.rotate_key_on_demand(KeyId=meta["KeyId"])
    rotations = west.list_key_rotations(KeyId=meta["KeyId"])["Rotations"]
    assert len(rotations) == 1 and rotations[0]["RotationType"] == "ON_DEMAND"
    blob = east.encrypt(KeyId=meta["KeyId"], Plaintext=b"after rotation")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=blob)["Plaintext"] == b"after rotation"
    east.enable_key_rotation(KeyId=meta["KeyId"], RotationPeriodInDays=90)
    status = west.get_key_rotation_status(KeyId=meta["KeyId"])
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 90


def test_update_primary_region(regional_node):
    east, west = client(regional_node, REGION), client(regional_node, WEST)
    meta = primary_key(regional_node)
    east.replicate_key(KeyId=meta["Arn"], ReplicaRegion=WEST)
    with pytest.raises(ClientError) as e:
        east.update_primary_region(KeyId=meta["Arn"], PrimaryRegion=SOUTH)
    assert error_code(e) == "NotFoundException"

    p = cli(regional_node, REGION, "kms", "update-primary-region", "--key-id", meta["Arn"],
            "--primary-region", WEST)
    assert p.returncode == 0, p.stderr
    west_meta = west.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]
    east_meta = east.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]
    assert west_meta["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    assert east_meta["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert east_meta["MultiRegionConfiguration"]["PrimaryKey"]["Region"] == WEST
    assert east_meta["MultiRegionConfiguration"]["ReplicaKeys"] == [{"Arn": meta["Arn"], "Region": REGION}]
    # Now the primary in eu-west-1 replicates and rotates; us-east-1 cannot.
    with pytest.raises(ClientError) as e:
        east.replicate_key(KeyId=meta["Arn"], ReplicaRegion=SOUTH)
    assert error_code(e) == "UnsupportedOperationException"
    west.replicate_key(KeyId=meta["KeyId"], ReplicaRegion=SOUTH)
    south = client(regional_node, SOUTH)
    blob = east.encrypt(KeyId=meta["KeyId"], Plaintext=b"three regions")["CiphertextBlob"]
    assert south.decrypt(CiphertextBlob=blob)["Plaintext"] == b"three regions"


@pytest.fixture
def sdk_endpoint(regional_node, monkeypatch):
    """Point botocore (in this process) at the node for every region."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", regional_node.endpoint)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(regional_node.ca_path))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
    session = botocore.session.Session()
    cred = regional_node.creds[1]
    session.set_credentials(cred.access_key_id, cred.secret_access_key)
    calls = []
    session.register("after-call.kms", lambda http_response, model, **kw: calls.append(
        (model.name, http_response.status_code, kw["context"].get("client_region"))))
    return session, calls


def test_the_encryption_sdk_decrypts_in_one_region_what_it_encrypted_in_another(regional_node, sdk_endpoint):
    session, calls = sdk_endpoint
    meta = primary_key(regional_node, "sdk mrk")
    client(regional_node, REGION).replicate_key(KeyId=meta["Arn"], ReplicaRegion=WEST)
    west_arn = f"arn:aws:kms:{WEST}:{ACCOUNT1}:key/{meta['KeyId']}"
    sdk = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    plaintext = os.urandom(10_000)
    ctx = {"purpose": "mrk"}
    encrypt_with = MRKAwareStrictAwsKmsMasterKeyProvider(key_ids=[meta["Arn"]], botocore_session=session)
    ciphertext, _ = sdk.encrypt(source=plaintext, key_provider=encrypt_with, encryption_context=ctx)

    # Strict, naming the replica in eu-west-1: the SDK matches the data key
    # made under the us-east-1 ARN to it and calls Decrypt in eu-west-1.
    calls.clear()
    decrypt_with = MRKAwareStrictAwsKmsMasterKeyProvider(key_ids=[west_arn], botocore_session=session)
    out, header = sdk.decrypt(source=ciphertext, key_provider=decrypt_with)
    assert out == plaintext and header.encryption_context["purpose"] == "mrk"
    assert [c for c in calls if c[0] == "Decrypt"] == [("Decrypt", 200, WEST)], calls

    # Discovery in eu-west-1.
    calls.clear()
    discovery = MRKAwareDiscoveryAwsKmsMasterKeyProvider(discovery_region=WEST, botocore_session=session)
    out, _ = sdk.decrypt(source=ciphertext, key_provider=discovery)
    assert out == plaintext
    assert [c for c in calls if c[0] == "Decrypt"] == [("Decrypt", 200, WEST)], calls

    # A provider that is not MRK-aware does not treat the replica as the same key.
    plain = StrictAwsKmsMasterKeyProvider(key_ids=[west_arn], botocore_session=session)
    with pytest.raises(DecryptKeyError):
        sdk.decrypt(source=ciphertext, key_provider=plain)
