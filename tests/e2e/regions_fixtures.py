"""A node that serves three regions, and clients scoped to each."""

from __future__ import annotations

import pytest

from conftest import _NODES, REGION, Node

WEST = "eu-west-1"
SOUTH = "ap-southeast-2"
NOT_SERVED = "ca-central-1"
# us-east-1 stays the default region (where keys made before multi-region
# serving live); the others are added by `serve_regions`.
CONFIG = f'region = "{REGION}"\nserve_regions = ["{WEST}", "{SOUTH}", "{WEST}"]\n'


@pytest.fixture(scope="module")
def regional_node(tmp_path_factory, second_credential):
    """The module's node, serving us-east-1, eu-west-1 and ap-southeast-2."""
    n = Node(tmp_path_factory.mktemp("keyfence-regions"), extra_credentials=[second_credential])
    n.config_path.write_text(CONFIG + n.config_path.read_text())
    try:
        n.start()
    except Exception:
        n.stop()
        raise
    _NODES.append(n)
    yield n
    _NODES.remove(n)
    n.stop()


def client(node, region: str, account: int = 1):
    """A boto3 KMS client whose requests are signed for `region`."""
    import boto3
    from botocore.config import Config

    cred = node.creds[account]
    session = boto3.session.Session(
        aws_access_key_id=cred.access_key_id,
        aws_secret_access_key=cred.secret_access_key,
        region_name=region,
    )
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)
    return session.client("kms", endpoint_url=node.endpoint, verify=str(node.ca_path), config=cfg)


def cli(node, region: str, *args, account: int = 1):
    """The AWS CLI as a caller in `region`: the CompletedProcess."""
    env = node.aws_env(account, AWS_DEFAULT_REGION=region, AWS_REGION=region)
    return node.aws_run(*args, account=account, env=env)


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]
