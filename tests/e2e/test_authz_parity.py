"""Authorization leftovers of issue 13, end to end with boto3: policy
variables (${aws:username}), kms:GrantConstraintType, aws:RequestTag and
aws:TagKeys, kms:ViaService (never set here), AWS's grant quota per grantee,
and STS GetCallerIdentity for a credential acting as a role."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT1, _NODES, Credential, Node, random_access_key, random_secret

ERIN_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*",
     "Condition": {"StringEquals": {"kms:EncryptionContext:owner": "${aws:username}"}}},
    {"Effect": "Allow", "Action": "kms:CreateGrant", "Resource": "*",
     "Condition": {"StringEquals": {"kms:GrantConstraintType": "EncryptionContextEquals"}}},
    {"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*",
     "Condition": {"StringEquals": {"aws:RequestTag/team": "blue"}}},
    {"Effect": "Allow", "Action": "kms:TagResource", "Resource": "*",
     "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}},
    {"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": "*",
     "Condition": {"StringEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}}},
]})


class People:
    def __init__(self):
        self.erin = Credential(random_access_key(), random_secret(), ACCOUNT1, "erin", ERIN_POLICY)
        self.carol = Credential(random_access_key(), random_secret(), ACCOUNT1, "carol")


@pytest.fixture(scope="module")
def people():
    return People()


@pytest.fixture(scope="module")
def parity_node(tmp_path_factory, people, second_credential):
    n = Node(tmp_path_factory.mktemp("keyfence-authz-parity"),
             extra_credentials=[second_credential, people.erin, people.carol])
    # carol acts as a role (the Credential helper knows only users).
    text = n.config_path.read_text()
    n.config_path.write_text(text.replace('user_name = "carol"',
                                          'user_name = "carol"\nrole_name = "ops/Deployer"'))
    try:
        n.start()
    except Exception:
        n.stop()
        raise
    _NODES.append(n)
    yield n
    _NODES.remove(n)
    n.stop()


def code(fn, **kwargs) -> str:
    with pytest.raises(ClientError) as ei:
        fn(**kwargs)
    return ei.value.response["Error"]["Code"]


def test_policy_variable_username(parity_node, people):
    admin = parity_node.boto3_client(1)
    erin = parity_node.boto3_client(credential=people.erin)
    key = admin.create_key()["KeyMetadata"]["KeyId"]
    erin.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"owner": "erin"})
    assert code(erin.encrypt, KeyId=key, Plaintext=b"x",
                EncryptionContext={"owner": "carol"}) == "AccessDeniedException"
    # The literal text of the variable is no match either.
    assert code(erin.encrypt, KeyId=key, Plaintext=b"x",
                EncryptionContext={"owner": "${aws:username}"}) == "AccessDeniedException"


def test_grant_constraint_type(parity_node, people):
    admin = parity_node.boto3_client(1)
    erin = parity_node.boto3_client(credential=people.erin)
    key = admin.create_key()["KeyMetadata"]["KeyId"]
    grantee = f"arn:aws:iam::{ACCOUNT1}:user/carol"
    erin.create_grant(KeyId=key, GranteePrincipal=grantee, Operations=["Decrypt"],
                      Constraints={"EncryptionContextEquals": {"a": "b"}})
    assert code(erin.create_grant, KeyId=key, GranteePrincipal=grantee,
                Operations=["Decrypt"]) == "AccessDeniedException"
    assert code(erin.create_grant, KeyId=key, GranteePrincipal=grantee, Operations=["Decrypt"],
                Constraints={"EncryptionContextSubset": {"a": "b"}}) == "AccessDeniedException"


def test_request_tags_and_tag_keys(parity_node, people):
    erin = parity_node.boto3_client(credential=people.erin)
    key = erin.create_key(Tags=[{"TagKey": "team", "TagValue": "blue"}])["KeyMetadata"]["KeyId"]
    assert code(erin.create_key, Tags=[{"TagKey": "team", "TagValue": "red"}]) == \
        "AccessDeniedException"
    assert code(erin.create_key) == "AccessDeniedException"
    erin.tag_resource(KeyId=key, Tags=[{"TagKey": "team", "TagValue": "green"}])
    assert code(erin.tag_resource, KeyId=key,
                Tags=[{"TagKey": "cost", "TagValue": "1"}]) == "AccessDeniedException"


def test_via_service_is_never_set(parity_node, people):
    admin = parity_node.boto3_client(1)
    erin = parity_node.boto3_client(credential=people.erin)
    key = admin.create_key()["KeyMetadata"]["KeyId"]
    assert code(erin.describe_key, KeyId=key) == "AccessDeniedException"


def test_grants_per_grantee_stop_at_500(parity_node):
    admin = parity_node.boto3_client(1)
    key = admin.create_key()["KeyMetadata"]["KeyId"]
    grantee = f"arn:aws:iam::{ACCOUNT1}:user/many"
    for _ in range(500):
        admin.create_grant(KeyId=key, GranteePrincipal=grantee, Operations=["Encrypt"])
    assert code(admin.create_grant, KeyId=key, GranteePrincipal=grantee,
                Operations=["Encrypt"]) == "LimitExceededException"
    # Another grantee still gets one.
    admin.create_grant(KeyId=key, GranteePrincipal=f"arn:aws:iam::{ACCOUNT1}:user/other",
                       Operations=["Encrypt"])


def test_sts_reports_the_assumed_role(parity_node, people):
    sts = parity_node.boto3_client(service="sts", credential=people.carol)
    me = sts.get_caller_identity()
    assert me["Arn"] == f"arn:aws:sts::{ACCOUNT1}:assumed-role/Deployer/carol"
    assert me["UserId"].startswith("AROA") and me["UserId"].endswith(":carol")
    assert me["Account"] == ACCOUNT1
    # A user stays a user.
    erin = parity_node.boto3_client(service="sts", credential=people.erin)
    assert erin.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT1}:user/erin"
    # The role uses keys under the default identity policy.
    kms = parity_node.boto3_client(credential=people.carol)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key, Plaintext=b"x")
