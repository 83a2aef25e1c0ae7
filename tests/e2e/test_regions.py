"""One node serving several regions: the SigV4 credential scope picks the
region of each request, and keys, aliases and listings belong to one region."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT1, REGION, unique
from regions_fixtures import NOT_SERVED, SOUTH, WEST, cli, client, error_code, regional_node  # noqa: F401


def test_a_key_belongs_to_its_region_and_its_arn_says_which(regional_node):
    east, west = client(regional_node, REGION), client(regional_node, WEST)
    meta = west.create_key(Description="made in eu-west-1")["KeyMetadata"]
    assert meta["Arn"] == f"arn:aws:kms:{WEST}:{ACCOUNT1}:key/{meta['KeyId']}"
    assert meta["MultiRegion"] is False
    assert west.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]["Arn"] == meta["Arn"]
    # Asked for in another region, by id or by ARN: not found, named by the
    # ARN the id would have in the asking region.
    with pytest.raises(ClientError) as e:
        east.describe_key(KeyId=meta["KeyId"])
    assert error_code(e) == "NotFoundException"
    assert f"arn:aws:kms:{REGION}:{ACCOUNT1}:key/{meta['KeyId']}" in str(e.value)
    with pytest.raises(ClientError) as e:
        east.encrypt(KeyId=meta["Arn"], Plaintext=b"x")
    assert error_code(e) == "NotFoundException"
    # A ciphertext of a eu-west-1 key is no ciphertext in us-east-1.
    blob = west.encrypt(KeyId=meta["KeyId"], Plaintext=b"regional")["CiphertextBlob"]
    assert west.decrypt(CiphertextBlob=blob)["Plaintext"] == b"regional"
    with pytest.raises(ClientError) as e:
        east.decrypt(CiphertextBlob=blob)
    assert error_code(e) == "InvalidCiphertextException"


def test_a_region_mismatch_with_the_aws_cli(regional_node):
    p = cli(regional_node, SOUTH, "kms", "create-key", "--description", "south")
    assert p.returncode == 0, p.stderr
    key = json.loads(p.stdout)["KeyMetadata"]
    assert key["Arn"].startswith(f"arn:aws:kms:{SOUTH}:")
    p = cli(regional_node, WEST, "kms", "describe-key", "--key-id", key["KeyId"])
    assert p.returncode != 0
    assert "NotFoundException" in p.stderr, p.stderr
    p = cli(regional_node, SOUTH, "kms", "describe-key", "--key-id", key["Arn"])
    assert p.returncode == 0, p.stderr


def test_a_region_the_node_does_not_serve_is_refused(regional_node):
    elsewhere = client(regional_node, NOT_SERVED)
    with pytest.raises(ClientError) as e:
        elsewhere.list_keys()
    assert error_code(e) == "InvalidSignatureException"
    assert NOT_SERVED in e.value.response["Error"]["Message"]
    p = cli(regional_node, NOT_SERVED, "kms", "list-keys")
    assert p.returncode != 0
    assert "InvalidSignatureException" in p.stderr, p.stderr


def test_listings_and_aliases_are_per_region(regional_node):
    made = {}
    for region in (REGION, WEST, SOUTH):
        kms = client(regional_node, region)
        made[region] = {kms.create_key(Description=region)["KeyMetadata"]["KeyId"] for _ in range(2)}
    for region in (REGION, WEST, SOUTH):
        kms = client(regional_node, region)
        listed = {k["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"]}
        arns = {k["KeyArn"] for k in kms.list_keys(Limit=1000)["Keys"]}
        assert made[region] <= listed
        for other in set(made) - {region}:
            assert not (made[other] & listed), (region, other)
        assert all(a.startswith(f"arn:aws:kms:{region}:") for a in arns), arns

    alias = f"alias/{unique('regional')}"
    west, east = client(regional_node, WEST), client(regional_node, REGION)
    west_key = sorted(made[WEST])[0]
    west.create_alias(AliasName=alias, TargetKeyId=west_key)
    names = {a["AliasName"]: a for a in west.list_aliases()["Aliases"]}
    assert names[alias]["AliasArn"] == f"arn:aws:kms:{WEST}:{ACCOUNT1}:{alias}"
    assert names[alias]["TargetKeyId"] == west_key
    assert alias not in {a["AliasName"] for a in east.list_aliases()["Aliases"]}
    with pytest.raises(ClientError) as e:
        east.describe_key(KeyId=alias)
    assert error_code(e) == "NotFoundException"
    assert west.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == west_key
    # An alias's target must be a key of the request's region.
    with pytest.raises(ClientError) as e:
        east.create_alias(AliasName=f"alias/{unique('cross')}", TargetKeyId=west_key)
    assert error_code(e) == "NotFoundException"


def test_the_same_alias_name_in_two_regions(regional_node):
    """As AWS, an alias is named per account and region: a multi-Region key's
    users give it the same alias in each region."""
    west, east = client(regional_node, WEST), client(regional_node, REGION)
    east_key = east.create_key(Description="east")["KeyMetadata"]["KeyId"]
    west_key = west.create_key(Description="west")["KeyMetadata"]["KeyId"]
    alias = f"alias/{unique('both')}"
    east.create_alias(AliasName=alias, TargetKeyId=east_key)
    west.create_alias(AliasName=alias, TargetKeyId=west_key)
    for kms, region, key in ((east, REGION, east_key), (west, WEST, west_key)):
        listed = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == alias]
        assert len(listed) == 1, listed
        assert listed[0]["AliasArn"] == f"arn:aws:kms:{region}:{ACCOUNT1}:{alias}"
        assert listed[0]["TargetKeyId"] == key
        assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == key
        by_arn = f"arn:aws:kms:{region}:{ACCOUNT1}:{alias}"
        assert kms.describe_key(KeyId=by_arn)["KeyMetadata"]["KeyId"] == key
        blob = kms.encrypt(KeyId=alias, Plaintext=b"hello")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["KeyId"].endswith(key)
    # The name is taken per region.
    with pytest.raises(ClientError) as e:
        west.create_alias(AliasName=alias, TargetKeyId=west_key)
    assert error_code(e) == "AlreadyExistsException"
    # UpdateAlias and DeleteAlias act in the request's region only.
    west_two = west.create_key(Description="west two")["KeyMetadata"]["KeyId"]
    west.update_alias(AliasName=alias, TargetKeyId=west_two)
    assert west.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == west_two
    assert east.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == east_key
    west.delete_alias(AliasName=alias)
    with pytest.raises(ClientError) as e:
        west.describe_key(KeyId=alias)
    assert error_code(e) == "NotFoundException"
    assert east.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == east_key
    east.delete_alias(AliasName=alias)
