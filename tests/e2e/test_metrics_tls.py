"""TLS key-exchange groups: metrics of the default node, and a --post-quantum
node that refuses clients without ML-KEM."""

import re
import socket
import ssl

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from conftest import Node

HANDSHAKE_RE = re.compile(r'^keyfence_tls_handshakes_total\{([^}]*)\}\s+([0-9.eE+-]+)\s*$', re.M)


def python_openssl_version() -> tuple:
    return ssl.OPENSSL_VERSION_INFO[:3]


def python_supports_mlkem() -> bool:
    """Can Python's ssl module offer X25519MLKEM768 (OpenSSL >= 3.5)?"""
    if python_openssl_version() < (3, 5, 0):
        return False
    ctx = ssl.create_default_context()
    set_groups = getattr(ctx, "set_groups", None)
    if set_groups is None:
        return True  # OpenSSL 3.5 offers it by default
    try:
        set_groups("X25519MLKEM768")
        return True
    except (ssl.SSLError, ValueError):
        return False


def handshake_counts(text: str) -> dict[str, float]:
    out = {}
    for labels, value in HANDSHAKE_RE.findall(text):
        m = re.search(r'group="([^"]*)"', labels)
        assert m, f"keyfence_tls_handshakes_total without a group label: {{{labels}}}"
        out[m.group(1)] = out.get(m.group(1), 0.0) + float(value)
    return out


def test_metrics_count_handshakes(fresh_node):
    """On a node of its own, every TLS connection is counted exactly once."""
    node = fresh_node
    assert sum(handshake_counts(node.metrics()).values()) == 0
    node.aws("kms", "list-keys")
    node.boto3_client(1).list_keys()
    text = node.metrics()
    assert "# TYPE keyfence_tls_handshakes_total counter" in text or \
        "# TYPE keyfence_tls_handshakes counter" in text, text[:2000]
    counts = handshake_counts(text)
    assert counts, f"no keyfence_tls_handshakes_total samples:\n{text[:2000]}"
    total = sum(counts.values())
    assert total == 2, counts

    # Each new TLS connection is counted.
    for _ in range(3):
        node.boto3_client(1).list_keys()
    counts2 = handshake_counts(node.metrics())
    assert sum(counts2.values()) == total + 3, (counts, counts2)

    if not python_supports_mlkem():
        # Python's OpenSSL offers X25519 first and has no ML-KEM hybrid, so
        # the increase must be in the X25519 group.
        grew = {g for g in counts2 if counts2[g] > counts.get(g, 0.0)}
        assert grew, (counts, counts2)
        assert all(re.fullmatch(r"(?i)x25519", g) for g in grew), (
            f"Python ({ssl.OPENSSL_VERSION}) negotiated {grew}, expected X25519"
        )


@pytest.fixture(scope="module")
def pq_node(tmp_path_factory):
    from conftest import _NODES

    n = Node(tmp_path_factory.mktemp("keyfence-pq"), name="pq", extra_args=["--post-quantum"])
    n.start()
    _NODES.append(n)
    yield n
    _NODES.remove(n)
    n.stop()


def test_post_quantum_node_refuses_classical_clients(pq_node):
    if python_supports_mlkem():
        pytest.skip(f"Python's {ssl.OPENSSL_VERSION} can negotiate X25519MLKEM768")

    # Raw TLS handshake from Python's ssl module.
    ctx = ssl.create_default_context(cafile=str(pq_node.ca_path))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with socket.create_connection(("127.0.0.1", pq_node.port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                t.recv(1)

    # The AWS CLI.
    p = pq_node.aws_run("sts", "get-caller-identity", timeout=60)
    assert p.returncode != 0, p.stdout
    assert re.search(r"(?i)ssl|handshake|connection|tls", p.stderr), p.stderr
    assert "111122223333" not in p.stdout

    # boto3.
    client = pq_node.boto3_client(1)
    with pytest.raises((BotoCoreError, ssl.SSLError)) as ei:
        client.list_keys()
    assert not isinstance(ei.value, ClientError)

    # The server log names the groups the client offered (classical ones).
    log = pq_node.log_text()
    assert re.search(r"(?i)x25519(?!\s*mlkem)|secp256r1|secp384r1", log), pq_node.log_tail()


def test_post_quantum_node_metrics(pq_node):
    text = pq_node.metrics()
    assert "keyfence_tls_handshakes_total" in text or "keyfence_tls" in text
    # No classical handshake was completed by the refusing node.
    counts = handshake_counts(text)
    if not python_supports_mlkem():
        assert all(not re.fullmatch(r"(?i)x25519|secp\d+r1", g) or v == 0 for g, v in counts.items()), counts
