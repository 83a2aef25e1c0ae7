"""What a newcomer's mistakes leave in the node's log: one line, without secrets,
and without terminal colour codes in a log file."""
from __future__ import annotations

import socket
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Credential, random_access_key, random_secret


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def wait_for(node, needle: str, count: int, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = lines_with(node.log_text(), needle)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_refused_credential_leaves_one_line_without_secrets(fresh_node):
    node = fresh_node
    good = node.creds[1]
    wrong_secret = random_secret()
    bad = Credential(good.access_key_id, wrong_secret, good.account_id, good.user_name)
    for _ in range(3):
        with pytest.raises(ClientError) as ei:
            node.boto3_client(credential=bad).list_keys()
        assert ei.value.response["Error"]["Code"] == "InvalidSignatureException"
    found = wait_for(node, "signature does not match", 1)
    assert len(found) == 1, f"one line for three retries: {found}"
    assert good.access_key_id in found[0], found
    assert wrong_secret not in node.log_text()
    assert good.secret_access_key not in node.log_text()

    unknown = Credential(random_access_key(), random_secret(), good.account_id, "x")
    with pytest.raises(ClientError) as ei:
        node.boto3_client(credential=unknown).list_keys()
    assert ei.value.response["Error"]["Code"] == "UnrecognizedClientException"
    # The same client address within the minute: no second line.
    assert not lines_with(node.log_text(), unknown.access_key_id)


def test_plain_http_to_the_tls_port_leaves_a_hint(fresh_node):
    node = fresh_node
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            s.recv(100)
        except OSError:
            pass
    found = wait_for(node, "plain HTTP on the TLS port", 1)
    assert len(found) == 1 and "https://" in found[0], found


def test_the_log_file_has_no_colour_codes(fresh_node):
    fresh_node.boto3_client().list_keys()
    assert "\x1b[" not in fresh_node.log_text()
