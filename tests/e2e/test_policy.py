"""Key policies with boto3 and the AWS CLI: the default key policy and its
delegation to identity policies, PutKeyPolicy/GetKeyPolicy/ListKeyPolicies,
CreateKey with a policy and the lockout safety check, explicit denies, and
cross-account use by key ARN."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from authz_fixtures import admin_statement, authz_node, policy, principals, root  # noqa: F401
from conftest import ACCOUNT1, ACCOUNT2, REGION


def expect(code, fn, **kwargs) -> str:
    with pytest.raises(ClientError) as ei:
        fn(**kwargs)
    err = ei.value.response["Error"]
    assert err["Code"] == code, ei.value
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return err.get("Message", "")


@pytest.fixture(scope="module")
def admin(authz_node):
    return authz_node.boto3_client(1)


def test_default_key_policy_as_aws_has_it(authz_node, admin):
    key = admin.create_key(Description="default policy")["KeyMetadata"]
    got = admin.get_key_policy(KeyId=key["KeyId"], PolicyName="default")
    doc = json.loads(got["Policy"])
    assert doc["Statement"] == [admin_statement()]
    assert doc["Id"] == "key-default-1"
    assert admin.list_key_policies(KeyId=key["KeyId"])["PolicyNames"] == ["default"]
    cli = authz_node.aws("kms", "get-key-policy", "--key-id", key["KeyId"], "--policy-name", "default",
                         "--query", "Policy", output="text")
    assert json.loads(cli) == doc


def test_user_denied_by_policy_and_allowed_by_key_policy(authz_node, admin, principals):
    alice = authz_node.boto3_client(credential=principals.alice)
    key = admin.create_key()["KeyMetadata"]
    message = expect("AccessDeniedException", alice.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    assert message == (
        f"User: {principals.alice.arn} is not authorized to perform: kms:Encrypt on resource: "
        f"{key['Arn']} because no resource-based policy allows the kms:Encrypt action"
    )
    # The AWS CLI sees the same refusal.
    err = authz_node.aws_fail("kms", "encrypt", "--key-id", key["KeyId"], "--plaintext", "eA==",
                              account=principals.alice)
    assert "AccessDeniedException" in err and principals.alice.arn in err
    doc = policy(admin_statement(), {"Sid": "alice uses the key", "Effect": "Allow",
                                     "Principal": {"AWS": principals.alice.arn},
                                     "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"})
    authz_node.aws("kms", "put-key-policy", "--key-id", key["KeyId"], "--policy-name", "default",
                   "--policy", doc)
    assert admin.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"] == doc
    blob = alice.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert alice.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    expect("AccessDeniedException", alice.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256")
    expect("AccessDeniedException", alice.create_key)


def test_explicit_deny_beats_an_allow(authz_node, admin):
    key = admin.create_key()["KeyMetadata"]
    doc = policy(admin_statement(),
                 {"Sid": "no decrypt with this context", "Effect": "Deny", "Principal": "*",
                  "Action": "kms:Decrypt", "Resource": "*",
                  "Condition": {"StringEquals": {"kms:EncryptionContext:stage": "prod"}}})
    admin.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=doc)
    for stage in ("prod", "test"):
        blob = admin.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"stage": stage})["CiphertextBlob"]
        if stage == "prod":
            message = expect("AccessDeniedException", admin.decrypt, CiphertextBlob=blob,
                             EncryptionContext={"stage": stage})
            assert message.endswith("with an explicit deny"), message
        else:
            assert admin.decrypt(CiphertextBlob=blob, EncryptionContext={"stage": stage})["Plaintext"] == b"x"


def test_cross_account_by_arn(authz_node, admin, principals):
    dave = authz_node.boto3_client(credential=principals.dave)
    bob = authz_node.boto3_client(credential=principals.bob)
    key = admin.create_key()["KeyMetadata"]
    admin.create_alias(AliasName="alias/shared-e2e", TargetKeyId=key["KeyId"])
    expect("AccessDeniedException", dave.encrypt, KeyId=key["Arn"], Plaintext=b"x")
    doc = policy(admin_statement(),
                 {"Sid": "Allow account 2", "Effect": "Allow", "Principal": {"AWS": root(ACCOUNT2)},
                  "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], "Resource": "*"})
    admin.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=doc)
    out = dave.encrypt(KeyId=key["Arn"], Plaintext=b"from account 2")
    assert out["KeyId"] == key["Arn"]
    assert dave.decrypt(CiphertextBlob=out["CiphertextBlob"])["Plaintext"] == b"from account 2"
    assert admin.decrypt(CiphertextBlob=out["CiphertextBlob"])["Plaintext"] == b"from account 2"
    assert dave.describe_key(KeyId=key["Arn"])["KeyMetadata"]["AWSAccountId"] == ACCOUNT1
    # Never by key id or alias: those name keys of the caller's own account.
    expect("NotFoundException", dave.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    expect("NotFoundException", dave.encrypt, KeyId="alias/shared-e2e", Plaintext=b"x")
    # Not an operation the policy allows, and not one AWS allows across accounts.
    expect("AccessDeniedException", dave.generate_data_key, KeyId=key["Arn"], KeySpec="AES_256")
    expect("NotFoundException", dave.disable_key, KeyId=key["Arn"])
    # bob's identity policy covers only account 2's keys: the key policy alone is not enough.
    expect("AccessDeniedException", bob.encrypt, KeyId=key["Arn"], Plaintext=b"x")
    err = authz_node.aws_fail("kms", "encrypt", "--key-id", key["Arn"], "--plaintext", "eA==",
                              account=principals.bob)
    assert "AccessDeniedException" in err


def test_create_key_with_policy_and_lockout_check(authz_node, admin, principals):
    locking = policy({"Effect": "Allow", "Principal": {"AWS": principals.dave.arn}, "Action": "kms:*", "Resource": "*"})
    message = expect("MalformedPolicyDocumentException", admin.create_key, Policy=locking)
    assert "will not allow you to update the key policy" in message
    key = admin.create_key(Policy=locking, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    expect("AccessDeniedException", admin.describe_key, KeyId=key["KeyId"])
    dave = authz_node.boto3_client(credential=principals.dave)
    assert dave.describe_key(KeyId=key["Arn"])["KeyMetadata"]["KeyId"] == key["KeyId"]
    own = admin.create_key(Policy=policy(admin_statement()))["KeyMetadata"]
    assert json.loads(admin.get_key_policy(KeyId=own["KeyId"], PolicyName="default")["Policy"])["Statement"] == [admin_statement()]
    for bad in ("not json", json.dumps({"Statement": {"Effect": "Allow", "Action": "kms:*"}}),
                json.dumps({"Statement": {"Effect": "Maybe", "Principal": "*", "Action": "kms:*"}})):
        expect("MalformedPolicyDocumentException", admin.put_key_policy, KeyId=own["KeyId"],
               PolicyName="default", Policy=bad)


def test_denials_are_counted_by_outcome(authz_node, principals):
    alice = authz_node.boto3_client(credential=principals.alice)
    with pytest.raises(ClientError):
        alice.list_keys()
    metrics = authz_node.metrics()
    assert any('operation="ListKeys"' in line and 'outcome="AccessDeniedException"' in line
               for line in metrics.splitlines()), metrics
