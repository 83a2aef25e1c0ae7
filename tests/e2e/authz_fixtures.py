"""A node with the principals the key-policy and grant tests need:

- the node's own admin of account 1 (default identity policy: kms:* on its
  account's keys);
- alice of account 1, whose identity policy allows no KMS action, so only a
  key policy naming her or a grant lets her use a key;
- bob of account 2 with the default identity policy (kms:* on account 2's
  keys only);
- dave of account 2 whose identity policy allows kms:* on any key, so a key
  policy of account 1 naming account 2 decides for him.
"""

from __future__ import annotations

import json

import pytest

from conftest import (
    ACCOUNT1,
    ACCOUNT2,
    _NODES,
    Credential,
    Node,
    random_access_key,
    random_secret,
)

NO_KMS = json.dumps({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}})
ANY_KEY = json.dumps({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}})


class Principals:
    def __init__(self, second_credential: Credential):
        self.bob = second_credential
        self.alice = Credential(random_access_key(), random_secret(), ACCOUNT1, "alice", NO_KMS)
        self.dave = Credential(random_access_key(), random_secret(), ACCOUNT2, "dave", ANY_KEY)

    def all(self):
        return [self.bob, self.alice, self.dave]


@pytest.fixture(scope="module")
def principals(second_credential) -> Principals:
    return Principals(second_credential)


@pytest.fixture(scope="module")
def authz_node(tmp_path_factory, principals):
    n = Node(tmp_path_factory.mktemp("keyfence-authz"), extra_credentials=principals.all())
    try:
        n.start()
    except Exception:
        n.stop()
        raise
    _NODES.append(n)
    yield n
    _NODES.remove(n)
    n.stop()


def root(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


def admin_statement(account: str = ACCOUNT1) -> dict:
    return {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
            "Principal": {"AWS": root(account)}, "Action": "kms:*", "Resource": "*"}


def policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
