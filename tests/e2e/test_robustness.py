"""Robustness: crashes, concurrency, malformed input, identifier confusion."""

import json
import os
import socket
import ssl
import threading
import uuid

import pytest
import urllib3
from botocore.exceptions import ClientError

from conftest import ACCOUNT1, ACCOUNT2, REGION, unique
from test_boto3 import expect_error, raw_request


def test_acknowledged_writes_survive_sigkill(fresh_node):
    """A KMS must not lose a key it has acknowledged: ciphertexts made with it
    would become undecryptable forever."""
    node = fresh_node
    kms = node.boto3_client(1)
    key = kms.create_key(Description="crash survivor")["KeyMetadata"]
    alias = f"alias/{unique('crash')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    blob = kms.encrypt(KeyId=alias, Plaintext=b"acked before the crash")["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    blob2 = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"after rotation")["CiphertextBlob"]
    kms.disable_key(KeyId=key["KeyId"])

    node.crash()

    kms = node.boto3_client(1)
    md = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert md["KeyId"] == key["KeyId"]
    assert md["KeyState"] == "Disabled"
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"acked before the crash"
    assert kms.decrypt(CiphertextBlob=blob2)["Plaintext"] == b"after rotation"


def test_concurrent_clients(node):
    """Eight clients in parallel, bounded: 8 x 20 encrypt/decrypt round trips."""
    kms = node.boto3_client(1)
    key = kms.create_key(Description="concurrency")["KeyMetadata"]
    errors, created = [], []
    lock = threading.Lock()

    def worker(n):
        try:
            c = node.boto3_client(1)
            k = c.create_key(Description=f"concurrent {n}")["KeyMetadata"]["KeyId"]
            with lock:
                created.append(k)
            for i in range(20):
                pt = f"worker {n} message {i}".encode()
                ctx = {"worker": str(n)}
                target = key["KeyId"] if i % 2 else k
                b = c.encrypt(KeyId=target, Plaintext=pt, EncryptionContext=ctx)["CiphertextBlob"]
                assert c.decrypt(CiphertextBlob=b, EncryptionContext=ctx)["Plaintext"] == pt
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(set(created)) == 8


def test_cross_account_identifier_confusion(kms, kms2):
    k1 = kms.create_key(Description="acct1")["KeyMetadata"]
    # Account 2 naming account 1's key UUID inside an account-2 ARN.
    forged = f"arn:aws:kms:{REGION}:{ACCOUNT2}:key/{k1['KeyId']}"
    expect_error("NotFoundException", kms2.describe_key, KeyId=forged)
    expect_error("NotFoundException", kms2.encrypt, KeyId=forged, Plaintext=b"x")
    # Account 1 naming its own key through an account-2 ARN.
    expect_error("NotFoundException", kms.describe_key, KeyId=forged)
    # Alias ARN of account 1 used by account 2.
    alias = f"alias/{unique('conf')}"
    kms.create_alias(AliasName=alias, TargetKeyId=k1["KeyId"])
    expect_error("NotFoundException", kms2.describe_key, KeyId=f"arn:aws:kms:{REGION}:{ACCOUNT1}:{alias}")
    expect_error("NotFoundException", kms2.encrypt, KeyId=f"arn:aws:kms:{REGION}:{ACCOUNT1}:{alias}",
                 Plaintext=b"x")
    # Account 2 cannot delete or repoint account 1's alias.
    expect_error("NotFoundException", kms2.delete_alias, AliasName=alias)
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == k1["KeyId"]


def test_wrong_region_arn(kms):
    k = kms.create_key()["KeyMetadata"]
    other_region = f"arn:aws:kms:us-west-2:{ACCOUNT1}:key/{k['KeyId']}"
    with pytest.raises(ClientError) as ei:
        kms.describe_key(KeyId=other_region)
    assert ei.value.response["Error"]["Code"] in ("NotFoundException", "ValidationException"), ei.value
    with pytest.raises(ClientError):
        kms.encrypt(KeyId=other_region, Plaintext=b"x")


def test_default_pending_window_is_30_days(kms):
    k = kms.create_key()["KeyMetadata"]
    out = kms.schedule_key_deletion(KeyId=k["KeyId"])
    assert out["PendingWindowInDays"] == 30
    kms.cancel_key_deletion(KeyId=k["KeyId"])


@pytest.mark.parametrize("call", [
    ("list-keys-limit-0", lambda c, k: c.list_keys(Limit=0)),
    ("list-keys-limit-1001", lambda c, k: c.list_keys(Limit=1001)),
    ("list-aliases-limit-0", lambda c, k: c.list_aliases(Limit=0)),
    ("gdk-keyspec-aes512", lambda c, k: c.generate_data_key(KeyId=k, KeySpec="AES_512")),
    ("description-8193", lambda c, k: c.update_key_description(KeyId=k, Description="d" * 8193)),
], ids=lambda p: p[0])
def test_more_validation_errors(kms_raw, key_for_validation, call):
    _, fn = call
    with pytest.raises(ClientError) as ei:
        fn(kms_raw, key_for_validation)
    code = ei.value.response["Error"]["Code"]
    assert code in ("ValidationException", "SerializationException"), ei.value


@pytest.fixture(scope="module")
def key_for_validation(node):
    return node.boto3_client(1).create_key(Description="validation target")["KeyMetadata"]["KeyId"]


def test_reserved_tag_prefix(kms):
    k = kms.create_key()["KeyMetadata"]
    expect_error("TagException", kms.tag_resource, KeyId=k["KeyId"],
                 Tags=[{"TagKey": "aws:reserved", "TagValue": "x"}])
    assert kms.list_resource_tags(KeyId=k["KeyId"])["Tags"] == []


def test_malformed_json_body(node):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    cred = node.creds[1]
    http = urllib3.PoolManager(ca_certs=str(node.ca_path), cert_reqs="CERT_REQUIRED")
    for body in (b"{not json", b"[]", b'{"KeyId": 42, "Plaintext": "eA=="}'):
        req = AWSRequest(method="POST", url=node.endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.1",
                                  "X-Amz-Target": "TrentService.Encrypt"})
        SigV4Auth(Credentials(cred.access_key_id, cred.secret_access_key), "kms", REGION).add_auth(req)
        p = req.prepare()
        r = http.request("POST", p.url, body=p.body, headers=dict(p.headers), retries=False, timeout=10)
        assert r.status == 400, (body, r.status, r.data)
        code = json.loads(r.data).get("__type", "").split("#")[-1]
        assert code in ("SerializationException", "ValidationException"), (body, r.data)


def test_oversized_body_rejected(node):
    """Request bodies far beyond any KMS request are refused (an HTTP 4xx, or
    the connection cut while the client is still sending), and the node keeps
    serving."""
    for size in (150 * 1024, 8 << 20):
        try:
            status, code, doc = raw_request(node, "Encrypt", {"KeyId": "alias/x", "Plaintext": "A" * size})
            assert 400 <= status < 500, (size, status, doc)
        except urllib3.exceptions.HTTPError:
            pass
    status, _, _ = raw_request(node, "ListKeys", {"Limit": 1})
    assert status == 200
    assert node.proc.poll() is None


def test_garbage_on_tls_port_does_not_hurt(node):
    # Plain HTTP and random bytes to the TLS listener, and a handshake abandoned midway.
    for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096), b"\x16\x03\x01\x00\x05hello"):
        with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
            s.sendall(payload)
            s.settimeout(5)
            try:
                s.recv(1024)
            except (socket.timeout, ConnectionError):
                pass
    # TLS without any request, then closed.
    ctx = ssl.create_default_context(cafile=str(node.ca_path))
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost"):
            pass
    assert node.proc.poll() is None, "keyfence died"
    status, _, doc = raw_request(node, "ListKeys", {"Limit": 1})
    assert status == 200, doc


def test_tls_certificate_names(node):
    """The development certificate is valid for localhost and 127.0.0.1."""
    ctx = ssl.create_default_context(cafile=str(node.ca_path))
    for host in ("localhost", "127.0.0.1"):
        with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=host) as t:
                assert t.version() == "TLSv1.3", t.version()


def test_invalid_marker(kms, key_for_validation):
    """A Marker the service never issued is rejected (AWS: InvalidMarkerException),
    not treated as an arbitrary cursor."""
    wrong = []
    for op in ("list_keys", "list_aliases", "list_resource_tags", "list_key_rotations"):
        kw = {"Limit": 1, "Marker": "definitely-not-a-marker"}
        if op in ("list_resource_tags", "list_key_rotations"):
            kw["KeyId"] = key_for_validation
        try:
            out = getattr(kms, op)(**kw)
            out.pop("ResponseMetadata", None)
            wrong.append(f"{op} accepted the marker: {out}")
        except ClientError as e:
            if e.response["Error"]["Code"] != "InvalidMarkerException":
                wrong.append(f"{op}: {e.response['Error']['Code']}")
    assert not wrong, "\n".join(wrong)


def test_empty_and_unicode_encryption_context(kms):
    k = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=k, Plaintext=b"e", EncryptionContext={})["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"e"
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={})["Plaintext"] == b"e"

    ctx = {"ключ": "значение ✓", "emoji 🔑": "", "z": "=,&\"'{}"}
    blob = kms.encrypt(KeyId=k, Plaintext=b"u", EncryptionContext=ctx)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=dict(reversed(list(ctx.items()))))["Plaintext"] == b"u"
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob,
                 EncryptionContext={**ctx, "z": "=,&\"'{} "})


def test_alias_to_key_pending_deletion(kms):
    k = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=k, PendingWindowInDays=7)
    expect_error("KMSInvalidStateException", kms.create_alias, AliasName=f"alias/{unique('pd')}", TargetKeyId=k)
    kms.cancel_key_deletion(KeyId=k)


def test_re_encrypt_to_disabled_destination(kms):
    src = kms.create_key()["KeyMetadata"]["KeyId"]
    dst = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=src, Plaintext=b"r")["CiphertextBlob"]
    kms.disable_key(KeyId=dst)
    expect_error("DisabledException", kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=dst)
    kms.disable_key(KeyId=src)
    kms.enable_key(KeyId=dst)
    expect_error("DisabledException", kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=dst)


@pytest.mark.parametrize("region,service", [("us-west-2", "kms"), ("us-east-1", "s3")])
def test_wrong_credential_scope(node, region, service):
    from unittest import mock

    import botocore.auth

    real_init = botocore.auth.SigV4Auth.__init__

    def scoped_init(self, credentials, service_name, region_name, **kw):
        real_init(self, credentials, service, region, **kw)

    with mock.patch.object(botocore.auth.SigV4Auth, "__init__", scoped_init):
        status, code, doc = raw_request(node, "ListKeys", {})
    assert status == 400, doc
    assert code in ("InvalidSignatureException", "IncompleteSignature"), doc


# AWS KMS "Key states" table for the operations keyfence serves (symmetric keys):
# operation -> (result when Disabled, result when PendingDeletion); "OK" = allowed.
KEY_STATE_TABLE = {
    "Encrypt": ("DisabledException", "KMSInvalidStateException"),
    "GenerateDataKey": ("DisabledException", "KMSInvalidStateException"),
    "GenerateDataKeyWithoutPlaintext": ("DisabledException", "KMSInvalidStateException"),
    "Decrypt": ("DisabledException", "KMSInvalidStateException"),
    "DescribeKey": ("OK", "OK"),
    "ListResourceTags": ("OK", "OK"),
    "TagResource": ("OK", "KMSInvalidStateException"),
    "UntagResource": ("OK", "KMSInvalidStateException"),
    "UpdateKeyDescription": ("OK", "KMSInvalidStateException"),
    "EnableKeyRotation": ("DisabledException", "KMSInvalidStateException"),
    "DisableKeyRotation": ("DisabledException", "KMSInvalidStateException"),
    "RotateKeyOnDemand": ("DisabledException", "KMSInvalidStateException"),
    "GetKeyRotationStatus": ("OK", "KMSInvalidStateException"),
    "CreateAlias": ("OK", "KMSInvalidStateException"),
    "UpdateAlias": ("OK", "KMSInvalidStateException"),
    "DisableKey": ("OK", "KMSInvalidStateException"),
}


def test_key_state_table(kms):
    mismatches = []
    for col, state in enumerate(("Disabled", "PendingDeletion")):
        k = kms.create_key(Description=f"state {state}")["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=k, Plaintext=b"s")["CiphertextBlob"]
        spare = kms.create_key()["KeyMetadata"]["KeyId"]
        alias = f"alias/{unique('state')}"
        kms.create_alias(AliasName=alias, TargetKeyId=spare)
        if state == "Disabled":
            kms.disable_key(KeyId=k)
        else:
            kms.schedule_key_deletion(KeyId=k, PendingWindowInDays=7)
        calls = {
            "Encrypt": lambda: kms.encrypt(KeyId=k, Plaintext=b"x"),
            "GenerateDataKey": lambda: kms.generate_data_key(KeyId=k, KeySpec="AES_256"),
            "GenerateDataKeyWithoutPlaintext": lambda: kms.generate_data_key_without_plaintext(KeyId=k, NumberOfBytes=16),
            "Decrypt": lambda: kms.decrypt(CiphertextBlob=blob),
            "DescribeKey": lambda: kms.describe_key(KeyId=k),
            "ListResourceTags": lambda: kms.list_resource_tags(KeyId=k),
            "TagResource": lambda: kms.tag_resource(KeyId=k, Tags=[{"TagKey": "t", "TagValue": "v"}]),
            "UntagResource": lambda: kms.untag_resource(KeyId=k, TagKeys=["t"]),
            "UpdateKeyDescription": lambda: kms.update_key_description(KeyId=k, Description="x"),
            "EnableKeyRotation": lambda: kms.enable_key_rotation(KeyId=k),
            "DisableKeyRotation": lambda: kms.disable_key_rotation(KeyId=k),
            "RotateKeyOnDemand": lambda: kms.rotate_key_on_demand(KeyId=k),
            "GetKeyRotationStatus": lambda: kms.get_key_rotation_status(KeyId=k),
            "CreateAlias": lambda: kms.create_alias(AliasName=f"alias/{unique('st')}", TargetKeyId=k),
            "UpdateAlias": lambda: kms.update_alias(AliasName=alias, TargetKeyId=k),
            "DisableKey": lambda: kms.disable_key(KeyId=k),
        }
        for op, expected in KEY_STATE_TABLE.items():
            want = expected[col]
            try:
                calls[op]()
                got = "OK"
            except ClientError as e:
                got = e.response["Error"]["Code"]
            if got != want:
                mismatches.append(f"{op} on {state} key: expected {want}, got {got}")
        if state == "PendingDeletion":
            kms.cancel_key_deletion(KeyId=k)
    assert not mismatches, "\n".join(mismatches)


def test_no_secrets_in_log(node, kms):
    import base64
    import secrets as pysecrets

    marker = f"TOPSECRET-{pysecrets.token_hex(8)}".encode()
    k = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=k, Plaintext=marker, EncryptionContext={"ctx": "v"})["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"ctx": "v"})["Plaintext"] == marker
    dk = kms.generate_data_key(KeyId=k, KeySpec="AES_256")["Plaintext"]
    rnd = kms.generate_random(NumberOfBytes=32)["Plaintext"]
    # Failing requests too (they may log request details).
    with pytest.raises(ClientError):
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"ctx": marker.decode()})
    log = node.log_text()
    for label, secret in (
        ("plaintext", marker.decode()),
        ("plaintext (base64)", base64.b64encode(marker).decode()),
        ("data key (base64)", base64.b64encode(dk).decode()),
        ("data key (hex)", dk.hex()),
        ("random (base64)", base64.b64encode(rnd).decode()),
        ("config file's secret access key", node.creds[2].secret_access_key),
    ):
        assert secret not in log, f"{label} appears in the keyfence log"
    # The development secret is shown once, in the first-start banner that
    # hands it to the operator; never again (requests, restarts).
    assert log.count(node.creds[1].secret_access_key) <= 1, "development secret logged repeatedly"


# Operations whose KeyId AWS documents as "key ID or key ARN" only: an alias
# (name or ARN) is refused (AWS: NotFoundException "Invalid keyId ..."), so that
# e.g. `schedule-key-deletion --key-id alias/prod` cannot delete whatever key
# the alias happens to point at.
KEY_ID_OR_ARN_ONLY = {
    "ScheduleKeyDeletion": lambda c, k: c.schedule_key_deletion(KeyId=k, PendingWindowInDays=7),
    "CancelKeyDeletion": lambda c, k: c.cancel_key_deletion(KeyId=k),
    "DisableKey": lambda c, k: c.disable_key(KeyId=k),
    "EnableKey": lambda c, k: c.enable_key(KeyId=k),
    "TagResource": lambda c, k: c.tag_resource(KeyId=k, Tags=[{"TagKey": "t", "TagValue": "v"}]),
    "UntagResource": lambda c, k: c.untag_resource(KeyId=k, TagKeys=["t"]),
    "ListResourceTags": lambda c, k: c.list_resource_tags(KeyId=k),
    "UpdateKeyDescription": lambda c, k: c.update_key_description(KeyId=k, Description="via alias"),
    "EnableKeyRotation": lambda c, k: c.enable_key_rotation(KeyId=k),
    "DisableKeyRotation": lambda c, k: c.disable_key_rotation(KeyId=k),
    "GetKeyRotationStatus": lambda c, k: c.get_key_rotation_status(KeyId=k),
    "RotateKeyOnDemand": lambda c, k: c.rotate_key_on_demand(KeyId=k),
    "ListKeyRotations": lambda c, k: c.list_key_rotations(KeyId=k),
}


def test_management_ops_refuse_aliases(kms):
    accepted = []
    for op, call in sorted(KEY_ID_OR_ARN_ONLY.items()):
        for form in ("alias-name", "alias-arn"):
            k = kms.create_key(Description="aliased")["KeyMetadata"]
            name = f"alias/{unique('mgmt')}"
            kms.create_alias(AliasName=name, TargetKeyId=k["KeyId"])
            ident = name if form == "alias-name" else f"arn:aws:kms:{REGION}:{ACCOUNT1}:{name}"
            try:
                call(kms, ident)
                accepted.append(f"{op} accepted an {form}")
            except ClientError as e:
                code = e.response["Error"]["Code"]
                if code not in ("NotFoundException", "ValidationException"):
                    accepted.append(f"{op} with an {form}: {code}")
            md = kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]
            if md["KeyState"] != "Enabled" or md["Description"] != "aliased":
                accepted.append(f"{op} via {form} changed the key: {md['KeyState']} {md['Description']!r}")
    assert not accepted, "\n".join(accepted)


def test_sigv4_canonicalization_variants(node):
    """Requests other SDKs produce: extra signed headers (values with runs of
    spaces, x-amz-content-sha256), charset in Content-Type, query strings,
    another path, and the localhost host name."""
    import hashlib

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    cred = node.creds[1]
    http = urllib3.PoolManager(ca_certs=str(node.ca_path), cert_reqs="CERT_REQUIRED")
    body = b'{"Limit":1}'
    variants = {
        "charset": (node.endpoint + "/", {"Content-Type": "application/x-amz-json-1.1; charset=utf-8"}),
        "spaces in signed header": (node.endpoint + "/", {"X-Custom": "  a   b  c "}),
        "x-amz-content-sha256": (node.endpoint + "/", {"X-Amz-Content-Sha256": hashlib.sha256(body).hexdigest()}),
        "query string": (node.endpoint + "/?foo=bar&a=%20b&a=c", {}),
        "localhost": (f"https://localhost:{node.port}/", {}),
    }
    bad = []
    for label, (url, extra) in variants.items():
        h = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys"}
        h.update(extra)
        req = AWSRequest(method="POST", url=url, data=body, headers=h)
        SigV4Auth(Credentials(cred.access_key_id, cred.secret_access_key), "kms", REGION).add_auth(req)
        p = req.prepare()
        r = http.request("POST", p.url, body=p.body, headers=dict(p.headers), retries=False, timeout=10)
        if r.status != 200 or "Keys" not in json.loads(r.data):
            bad.append(f"{label}: {r.status} {r.data[:200]!r}")
    assert not bad, "\n".join(bad)


def test_unicode_description_and_tags(kms):
    k = kms.create_key(Description="ключ ✓ 🔑", Tags=[{"TagKey": "名前", "TagValue": "値 ✓"}])["KeyMetadata"]
    assert kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["Description"] == "ключ ✓ 🔑"
    assert kms.list_resource_tags(KeyId=k["KeyId"])["Tags"] == [{"TagKey": "名前", "TagValue": "値 ✓"}]


def test_concurrent_create_alias_same_name(node, kms):
    """Eight clients race to create one alias: exactly one wins."""
    name = f"alias/{unique('race')}"
    keys = [kms.create_key(Description=f"race {i}")["KeyMetadata"]["KeyId"] for i in range(8)]
    results = [None] * 8
    barrier = threading.Barrier(8)

    def worker(i):
        c = node.boto3_client(1)
        barrier.wait(timeout=30)
        try:
            c.create_alias(AliasName=name, TargetKeyId=keys[i])
            results[i] = "OK"
        except ClientError as e:
            results[i] = e.response["Error"]["Code"]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results.count("OK") == 1, results
    assert all(r in ("OK", "AlreadyExistsException") for r in results), results
    winner = keys[results.index("OK")]
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == winner
    listed = [a for p in kms.get_paginator("list_aliases").paginate() for a in p["Aliases"] if a["AliasName"] == name]
    assert len(listed) == 1 and listed[0]["TargetKeyId"] == winner


def test_concurrent_rotation_and_use(node, kms):
    """Rotations interleaved with encrypt/decrypt: every ciphertext decrypts."""
    k = kms.create_key(Description="rotating under load")["KeyMetadata"]["KeyId"]
    blobs, errors = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def user(n):
        c = node.boto3_client(1)
        i = 0
        while not stop.is_set() and i < 200:
            pt = f"{n}-{i}".encode()
            try:
                b = c.encrypt(KeyId=k, Plaintext=pt)["CiphertextBlob"]
                assert c.decrypt(CiphertextBlob=b)["Plaintext"] == pt
                with lock:
                    blobs.append((b, pt))
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(repr(e))
            i += 1

    threads = [threading.Thread(target=user, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        rot = node.boto3_client(1)
        for _ in range(5):
            stop.wait(0.1)
            rot.rotate_key_on_demand(KeyId=k)
        stop.wait(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[:5]
    assert len(blobs) >= 20
    assert len(kms.list_key_rotations(KeyId=k)["Rotations"]) == 5
    for b, pt in blobs:
        assert kms.decrypt(CiphertextBlob=b)["Plaintext"] == pt


# ------------------------------------------------------------ malformed corpus
def _signed_raw(node, target, data, *, token=None, unsigned_headers=None):
    """POST raw body bytes signed by botocore; `unsigned_headers` are added
    after signing (present on the wire, absent from the signature)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    cred = node.creds[1]
    req = AWSRequest(method="POST", url=node.endpoint + "/", data=data,
                     headers={"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": f"TrentService.{target}"})
    SigV4Auth(Credentials(cred.access_key_id, cred.secret_access_key, token), "kms", REGION).add_auth(req)
    prepared = req.prepare()
    headers = dict(prepared.headers)
    headers.update(unsigned_headers or {})
    http = urllib3.PoolManager(ca_certs=str(node.ca_path), cert_reqs="CERT_REQUIRED")
    r = http.request("POST", prepared.url, body=prepared.body, headers=headers, retries=False, timeout=10)
    try:
        doc = json.loads(r.data) if r.data else {}
    except ValueError:
        doc = {"raw": r.data.decode(errors="replace")}
    return r.status, doc.get("__type", "").split("#")[-1], doc


def _state(kms):
    """Everything a malformed request must not change: keys, states, descriptions, aliases."""
    keys = sorted((k["KeyId"], kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"],
                   kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["Description"])
                  for p in kms.get_paginator("list_keys").paginate() for k in p["Keys"])
    aliases = sorted((a["AliasName"], a.get("TargetKeyId"))
                     for p in kms.get_paginator("list_aliases").paginate() for a in p["Aliases"])
    return keys, aliases


def test_malformed_request_corpus(fresh_node):
    """Every case: the AWS error code, a 4xx (never a 5xx), and no state change."""
    node = fresh_node
    kms = node.boto3_client(1)
    sym = kms.create_key(Description="corpus symmetric")["KeyMetadata"]["KeyId"]
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    alias = f"alias/{unique('corpus')}"
    kms.create_alias(AliasName=alias, TargetKeyId=sym)
    blob = bytearray(kms.encrypt(KeyId=sym, Plaintext=b"corpus")["CiphertextBlob"])
    blob[9] ^= 0x01  # a byte of the key id
    import base64
    altered = base64.b64encode(bytes(blob)).decode()
    long = "k" * 3000
    recipient = {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": "AAAA"}
    j = lambda d: json.dumps(d).encode()  # noqa: E731
    cases = [
        ("Encrypt", j({"KeyId": None, "Plaintext": "eA=="}), {}, "ValidationException"),
        ("DescribeKey", j({"KeyId": ""}), {}, "ValidationException"),
        ("DescribeKey", j({"KeyId": long}), {}, "ValidationException"),
        ("DisableKey", j({"KeyId": long}), {}, "ValidationException"),
        ("ListKeys", j({"Marker": ""}), {}, "ValidationException"),
        ("ListAliases", j({"Marker": long}), {}, "ValidationException"),
        ("Encrypt", j({"KeyId": sym, "Plaintext": "eA==", "EncryptionAlgorithm": "ROT13"}), {},
         "ValidationException"),
        ("CreateAlias", j({"AliasName": "alias/" + "a" * 300, "TargetKeyId": sym}), {}, "ValidationException"),
        ("UpdateAlias", j({"AliasName": alias, "TargetKeyId": rsa}), {}, "ValidationException"),
        ("UpdateKeyDescription", b'{"KeyId": "' + sym.encode() + b'", "Description": "\xc3\x28"}', {},
         "SerializationException"),
        ("DisableKey", j({"KeyId": sym}) + b" trailing", {}, "SerializationException"),
        ("Decrypt", j({"CiphertextBlob": altered}), {}, "InvalidCiphertextException"),
        ("Decrypt", j({"CiphertextBlob": altered, "Recipient": recipient}), {}, "UnsupportedOperationException"),
        ("GenerateDataKey", j({"KeyId": sym, "KeySpec": "AES_256", "Recipient": recipient}), {},
         "UnsupportedOperationException"),
        ("GenerateRandom", j({"NumberOfBytes": 8, "Recipient": recipient}), {}, "UnsupportedOperationException"),
        ("DisableKey", j({"KeyId": sym}), {"token": "FwoGZXIvYXdzEBYaD"}, "UnrecognizedClientException"),
        # A DescribeKey whose target was left unsigned, replayed as DisableKey.
        ("DescribeKey", j({"KeyId": sym}), {"unsigned_headers": {"X-Amz-Target": "TrentService.DisableKey"}},
         "IncompleteSignatureException"),
        ("DisableKey", j({"KeyId": sym}), {"unsigned_headers": {"X-Amz-Meta": "x"}},
         "IncompleteSignatureException"),
        ("MadeUp" + "X" * 2000, b"{}", {}, "UnknownOperationException"),
    ]
    before = _state(kms)
    for target, data, opts, expected in cases:
        if "unsigned_headers" in opts and "X-Amz-Target" in opts["unsigned_headers"]:
            # Signed without the target header, which is added afterwards.
            status, code, doc = _signed_raw_without_target(node, data, opts["unsigned_headers"])
        else:
            status, code, doc = _signed_raw(node, target, data, **opts)
        label = (target[:40], data[:60])
        assert 400 <= status < 500, (label, status, doc)
        assert code == expected, (label, code, doc)
        assert len(doc.get("message", "")) <= 643, (label, len(doc["message"]))
    assert _state(kms) == before
    assert kms.encrypt(KeyId=alias, Plaintext=b"still")["KeyId"].endswith(sym)


def _signed_raw_without_target(node, data, extra):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    cred = node.creds[1]
    req = AWSRequest(method="POST", url=node.endpoint + "/", data=data,
                     headers={"Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(cred.access_key_id, cred.secret_access_key), "kms", REGION).add_auth(req)
    prepared = req.prepare()
    headers = dict(prepared.headers)
    headers.update(extra)
    http = urllib3.PoolManager(ca_certs=str(node.ca_path), cert_reqs="CERT_REQUIRED")
    r = http.request("POST", prepared.url, body=prepared.body, headers=headers, retries=False, timeout=10)
    doc = json.loads(r.data) if r.data else {}
    return r.status, doc.get("__type", "").split("#")[-1], doc


def test_malformed_chunked_framing_is_400(node):
    ctx = ssl.create_default_context(cafile=str(node.ca_path))
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
            reply = t.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400"), reply
    assert b"SerializationException" in reply, reply
    status, _, _ = raw_request(node, "ListKeys", {"Limit": 1})
    assert status == 200


def _metric(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {series} in metrics")


def test_throttling_is_aws_shaped_and_the_sdk_retries_it(tmp_path, second_credential):
    """With [throttle] on, a burst beyond an account's quota gets AWS's
    ThrottlingException (HTTP 400); boto3 with its standard retries still
    succeeds on every call; another account is not held back."""
    import boto3
    from botocore.config import Config

    from conftest import Node

    node = Node(tmp_path, extra_credentials=[second_credential])
    node.config_path.write_text(
        node.config_path.read_text()
        + "\n[throttle]\nenabled = true\n[throttle.rates]\nListKeys = 1\n"
    )
    node.start()
    try:
        once = node.boto3_client(1)  # max_attempts 1: no retry
        once.list_keys()
        err = expect_error("ThrottlingException", once.list_keys)
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "exceeded the rate" in err.response["Error"]["Message"]
        # Another account has its own quota.
        node.boto3_client(2).list_keys()

        cred = node.creds[1]
        retrying = boto3.session.Session(
            aws_access_key_id=cred.access_key_id,
            aws_secret_access_key=cred.secret_access_key,
            region_name=REGION,
        ).client(
            "kms",
            endpoint_url=node.endpoint,
            verify=str(node.ca_path),
            config=Config(retries={"max_attempts": 10, "mode": "standard"}),
        )
        before = _metric(node.metrics(), 'keyfence_throttled_requests_total{quota="ListKeys"}')
        for _ in range(4):
            assert "Keys" in retrying.list_keys()
        after = _metric(node.metrics(), 'keyfence_throttled_requests_total{quota="ListKeys"}')
        assert after > before, "the burst was throttled, and the SDK's retries got through"
    finally:
        node.stop()
