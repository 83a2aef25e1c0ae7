"""Grants with boto3 and the AWS CLI: a user refused by the key policy and
allowed by a grant, encryption-context constraints, grant tokens, Name
idempotency, listing, retire and revoke, and a grant to another account."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from authz_fixtures import authz_node, principals  # noqa: F401
from conftest import ACCOUNT1


def expect(code, fn, **kwargs) -> str:
    with pytest.raises(ClientError) as ei:
        fn(**kwargs)
    assert ei.value.response["Error"]["Code"] == code, ei.value
    return ei.value.response["Error"].get("Message", "")


@pytest.fixture(scope="module")
def admin(authz_node):
    return authz_node.boto3_client(1)


@pytest.fixture(scope="module")
def alice(authz_node, principals):
    return authz_node.boto3_client(credential=principals.alice)


def test_denied_by_policy_allowed_by_grant_within_its_constraint(admin, alice, principals):
    key = admin.create_key()["KeyMetadata"]
    ctx = {"tenant": "t1"}
    expect("AccessDeniedException", alice.encrypt, KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext=ctx)
    grant = admin.create_grant(KeyId=key["KeyId"], GranteePrincipal=principals.alice.arn,
                               Operations=["Encrypt", "Decrypt"],
                               Constraints={"EncryptionContextEquals": ctx})
    assert len(grant["GrantId"]) == 64
    # The token works at once.
    blob = alice.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext=ctx,
                         GrantTokens=[grant["GrantToken"]])["CiphertextBlob"]
    assert alice.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"x"
    expect("AccessDeniedException", alice.encrypt, KeyId=key["KeyId"], Plaintext=b"x",
           EncryptionContext={"tenant": "t2"})
    expect("AccessDeniedException", alice.encrypt, KeyId=key["KeyId"], Plaintext=b"x",
           EncryptionContext={"tenant": "t1", "extra": "y"})
    expect("AccessDeniedException", alice.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256",
           EncryptionContext=ctx)
    subset = admin.create_grant(KeyId=key["KeyId"], GranteePrincipal=principals.alice.arn,
                                Operations=["GenerateDataKey"],
                                Constraints={"EncryptionContextSubset": ctx})
    assert alice.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256",
                                   EncryptionContext={"tenant": "t1", "extra": "y"})["KeyId"] == key["Arn"]
    expect("AccessDeniedException", alice.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256")
    listed = admin.list_grants(KeyId=key["KeyId"])["Grants"]
    assert {g["GrantId"] for g in listed} == {grant["GrantId"], subset["GrantId"]}
    entry = next(g for g in listed if g["GrantId"] == grant["GrantId"])
    assert entry["GranteePrincipal"] == principals.alice.arn
    assert entry["Operations"] == ["Encrypt", "Decrypt"]
    assert entry["Constraints"] == {"EncryptionContextEquals": ctx}
    assert entry["IssuingAccount"] == f"arn:aws:iam::{ACCOUNT1}:root"
    assert entry["KeyId"] == key["Arn"]


def test_name_makes_create_grant_idempotent(admin, principals):
    key = admin.create_key()["KeyMetadata"]
    args = dict(KeyId=key["KeyId"], GranteePrincipal=principals.alice.arn, Operations=["Encrypt"], Name="app-1")
    first, second = admin.create_grant(**args), admin.create_grant(**args)
    assert first["GrantId"] == second["GrantId"]
    other = admin.create_grant(**{**args, "Operations": ["Decrypt"]})
    assert other["GrantId"] != first["GrantId"]
    assert len(admin.list_grants(KeyId=key["KeyId"])["Grants"]) == 2


def test_retire_and_revoke(authz_node, admin, alice, principals):
    key = admin.create_key()["KeyMetadata"]
    retirable = admin.create_grant(KeyId=key["KeyId"], GranteePrincipal=principals.alice.arn,
                                   RetiringPrincipal=principals.alice.arn, Operations=["Encrypt"])
    alice.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    listed = admin.list_retirable_grants(RetiringPrincipal=principals.alice.arn)["Grants"]
    assert retirable["GrantId"] in {g["GrantId"] for g in listed}
    # With the AWS CLI, by its token.
    authz_node.aws("kms", "retire-grant", "--grant-token", retirable["GrantToken"], account=principals.alice)
    expect("AccessDeniedException", alice.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    expect("NotFoundException", admin.revoke_grant, KeyId=key["KeyId"], GrantId=retirable["GrantId"])

    revocable = admin.create_grant(KeyId=key["KeyId"], GranteePrincipal=principals.alice.arn, Operations=["Encrypt"])
    alice.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    # Neither retiring principal nor allowed RetireGrant: she cannot retire it.
    expect("AccessDeniedException", alice.retire_grant, KeyId=key["KeyId"], GrantId=revocable["GrantId"])
    authz_node.aws("kms", "revoke-grant", "--key-id", key["KeyId"], "--grant-id", revocable["GrantId"])
    expect("AccessDeniedException", alice.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    assert admin.list_grants(KeyId=key["KeyId"])["Grants"] == []
    expect("InvalidGrantTokenException", admin.retire_grant, GrantToken="not-a-token")


def test_grant_to_another_account(authz_node, admin, principals):
    bob = authz_node.boto3_client(credential=principals.bob)
    key = admin.create_key()["KeyMetadata"]
    expect("AccessDeniedException", bob.encrypt, KeyId=key["Arn"], Plaintext=b"x")
    grant = admin.create_grant(KeyId=key["KeyId"], GranteePrincipal=principals.bob.arn,
                               Operations=["Encrypt", "Decrypt", "RetireGrant"])
    blob = bob.encrypt(KeyId=key["Arn"], Plaintext=b"shared")["CiphertextBlob"]
    assert bob.decrypt(CiphertextBlob=blob)["Plaintext"] == b"shared"
    expect("NotFoundException", bob.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    bob.retire_grant(KeyId=key["Arn"], GrantId=grant["GrantId"])
    expect("AccessDeniedException", bob.encrypt, KeyId=key["Arn"], Plaintext=b"x")


def test_grant_validation(admin, principals):
    key = admin.create_key()["KeyMetadata"]
    expect("ValidationException", admin.create_grant, KeyId=key["KeyId"], GranteePrincipal="bob",
           Operations=["Encrypt"])
    expect("ValidationException", admin.create_grant, KeyId=key["KeyId"], GranteePrincipal=principals.alice.arn,
           Operations=["Sign"], Constraints={"EncryptionContextEquals": {"a": "b"}})
