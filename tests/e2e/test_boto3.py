"""boto3 against keyfence: happy paths, every error class, accounts, durability."""

import datetime
import json
import os
import uuid
from unittest import mock

import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCOUNT1, ACCOUNT2, REGION, Credential, random_access_key, random_secret, unique


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def expect_error(code, fn, *args, **kwargs):
    with pytest.raises(ClientError) as ei:
        fn(*args, **kwargs)
    got = error_code(ei)
    assert got == code, f"expected {code}, got {got}: {ei.value}"
    status = ei.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert 400 <= status < 500, f"{code} with HTTP {status}"
    return ei.value


@pytest.fixture
def key(new_key):
    return new_key("boto3 test key")


@pytest.fixture
def ciphertext(kms, key):
    ctx = {"purpose": "boto3"}
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"secret data", EncryptionContext=ctx)["CiphertextBlob"]
    return blob, ctx


# ------------------------------------------------------------------ happy paths
def test_sts_get_caller_identity(node):
    sts = node.boto3_client(1, service="sts")
    out = sts.get_caller_identity()
    assert out["Account"] == ACCOUNT1
    assert out["Arn"] == f"arn:aws:iam::{ACCOUNT1}:user/admin"


def test_encrypt_decrypt_responses(kms, key):
    ctx = {"a": "1", "b": "2"}
    out = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"hello keyfence", EncryptionContext=ctx)
    assert out["KeyId"] == key["Arn"]
    assert out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = out["CiphertextBlob"]
    assert b"hello keyfence" not in blob
    dec = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"b": "2", "a": "1"})
    assert dec["Plaintext"] == b"hello keyfence"
    assert dec["KeyId"] == key["Arn"]
    assert dec["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    # Explicit KeyId / algorithm accepted.
    dec = kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx, KeyId=key["Arn"],
                      EncryptionAlgorithm="SYMMETRIC_DEFAULT")
    assert dec["Plaintext"] == b"hello keyfence"
    # Two encryptions of the same plaintext differ (random IV).
    again = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"hello keyfence", EncryptionContext=ctx)
    assert again["CiphertextBlob"] != blob


@pytest.mark.parametrize("size", [1, 4096])
def test_plaintext_size_limits_ok(kms, key, size):
    pt = os.urandom(size)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=pt)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == pt


def test_generate_data_key(kms, key):
    out = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"x": "y"})
    assert out["KeyId"] == key["Arn"]
    assert len(out["Plaintext"]) == 32
    dec = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"x": "y"})
    assert dec["Plaintext"] == out["Plaintext"]
    assert dec["KeyId"] == key["Arn"]

    out = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_128")
    assert len(out["Plaintext"]) == 16
    out = kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=1)
    assert len(out["Plaintext"]) == 1
    out = kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=1024)
    assert len(out["Plaintext"]) == 1024
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"])["Plaintext"] == out["Plaintext"]

    out = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], KeySpec="AES_256")
    assert "Plaintext" not in out
    assert out["KeyId"] == key["Arn"]
    assert len(kms.decrypt(CiphertextBlob=out["CiphertextBlob"])["Plaintext"]) == 32


def test_generate_random(kms):
    assert len(kms.generate_random(NumberOfBytes=1)["Plaintext"]) == 1
    r = kms.generate_random(NumberOfBytes=1024)["Plaintext"]
    assert len(r) == 1024
    assert r != kms.generate_random(NumberOfBytes=1024)["Plaintext"]


def test_re_encrypt(kms, key, new_key, ciphertext):
    blob, ctx = ciphertext
    dest = new_key("re-encrypt destination")
    out = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=ctx,
                         DestinationKeyId=dest["KeyId"])
    assert out["SourceKeyId"] == key["Arn"]
    assert out["KeyId"] == dest["Arn"]
    dec = kms.decrypt(CiphertextBlob=out["CiphertextBlob"])
    assert dec["Plaintext"] == b"secret data"
    assert dec["KeyId"] == dest["Arn"]
    expect_error("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=blob,
                 DestinationKeyId=dest["KeyId"])


def test_describe_key_forms(kms, key):
    alias = f"alias/{unique('b3')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["Arn"])
    for ident in (key["KeyId"], key["Arn"], alias, f"arn:aws:kms:{REGION}:{ACCOUNT1}:{alias}"):
        md = kms.describe_key(KeyId=ident)["KeyMetadata"]
        assert md["KeyId"] == key["KeyId"]
        assert md["Arn"] == key["Arn"]
    assert isinstance(key["CreationDate"], datetime.datetime)
    assert kms.encrypt(KeyId=alias, Plaintext=b"a")["KeyId"] == key["Arn"]


def test_alias_operations(kms, key, new_key):
    other = new_key("other")
    name = f"alias/{unique('b3ops')}"
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    expect_error("AlreadyExistsException", kms.create_alias, AliasName=name, TargetKeyId=other["KeyId"])
    kms.update_alias(AliasName=name, TargetKeyId=other["KeyId"])
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == other["KeyId"]
    listed = kms.list_aliases(KeyId=other["KeyId"])["Aliases"]
    assert [a["AliasName"] for a in listed] == [name]
    kms.delete_alias(AliasName=name)
    expect_error("NotFoundException", kms.describe_key, KeyId=name)
    expect_error("NotFoundException", kms.delete_alias, AliasName=name)
    expect_error("NotFoundException", kms.update_alias, AliasName=name, TargetKeyId=key["KeyId"])


def test_rotation(kms, key):
    kid = key["KeyId"]
    before = kms.encrypt(KeyId=kid, Plaintext=b"v1")["CiphertextBlob"]
    kms.enable_key_rotation(KeyId=kid, RotationPeriodInDays=365)
    st = kms.get_key_rotation_status(KeyId=kid)
    assert st["KeyRotationEnabled"] is True and st["RotationPeriodInDays"] == 365
    assert st["KeyId"] == key["Arn"]
    until_next = st["NextRotationDate"] - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(days=364) < until_next <= datetime.timedelta(days=365, minutes=5), until_next
    kms.enable_key_rotation(KeyId=kid)  # default period
    st = kms.get_key_rotation_status(KeyId=kid)
    assert st["RotationPeriodInDays"] == 365
    kms.rotate_key_on_demand(KeyId=kid)
    kms.rotate_key_on_demand(KeyId=kid)
    rots = kms.list_key_rotations(KeyId=kid)["Rotations"]
    assert len(rots) == 2 and all(r["RotationType"] == "ON_DEMAND" for r in rots)
    page = kms.list_key_rotations(KeyId=kid, Limit=1)
    assert len(page["Rotations"]) == 1 and page["Truncated"] is True
    rest = kms.list_key_rotations(KeyId=kid, Limit=1, Marker=page["NextMarker"])
    assert len(rest["Rotations"]) == 1
    assert not rest.get("Truncated")
    assert rest["Rotations"] != page["Rotations"]
    after = kms.encrypt(KeyId=kid, Plaintext=b"v3")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=before)["Plaintext"] == b"v1"
    assert kms.decrypt(CiphertextBlob=after)["Plaintext"] == b"v3"


def test_tags_and_description(kms, new_key):
    k = new_key("tagged", Tags=[{"TagKey": "owner", "TagValue": "ops"}])
    assert kms.list_resource_tags(KeyId=k["KeyId"])["Tags"] == [{"TagKey": "owner", "TagValue": "ops"}]
    kms.tag_resource(KeyId=k["Arn"], Tags=[{"TagKey": "cost", "TagValue": "42"}])
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=k["KeyId"])["Tags"]}
    assert tags == {"owner": "ops", "cost": "42"}
    kms.untag_resource(KeyId=k["KeyId"], TagKeys=["owner"])
    assert kms.list_resource_tags(KeyId=k["KeyId"])["Tags"] == [{"TagKey": "cost", "TagValue": "42"}]
    kms.update_key_description(KeyId=k["KeyId"], Description="changed")
    assert kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["Description"] == "changed"


def test_list_keys_paging(fresh_node):
    """On a node of its own, the listing is exactly the keys this test made."""
    kms = fresh_node.boto3_client(1)
    made = {kms.create_key(Description=f"p{i}")["KeyMetadata"]["KeyId"] for i in range(3)}
    seen, marker = [], None
    for _ in range(1000):
        kw = {"Limit": 1}
        if marker:
            kw["Marker"] = marker
        out = kms.list_keys(**kw)
        assert len(out["Keys"]) <= 1
        seen += [k["KeyId"] for k in out["Keys"]]
        if not out["Truncated"]:
            break
        marker = out["NextMarker"]
    assert len(seen) == len(set(seen))
    assert set(seen) == made
    paginated = [k["KeyId"] for p in kms.get_paginator("list_keys").paginate() for k in p["Keys"]]
    assert sorted(paginated) == sorted(seen)


def test_key_lifecycle_states(kms, key):
    kid = key["KeyId"]
    blob = kms.encrypt(KeyId=kid, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=kid)
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(KeyId=kid)
    out = kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=30)
    assert out["KeyState"] == "PendingDeletion"
    assert out["PendingWindowInDays"] == 30
    assert out["KeyId"] == key["Arn"]
    now = datetime.datetime.now(datetime.timezone.utc)
    delta = out["DeletionDate"] - now
    assert datetime.timedelta(days=29) < delta <= datetime.timedelta(days=30, minutes=5)
    kms.cancel_key_deletion(KeyId=kid)
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert md["KeyState"] == "Disabled"
    kms.enable_key(KeyId=kid)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


# ---------------------------------------------------------------- error cases
@pytest.mark.parametrize("ident", [
    lambda: str(uuid.uuid4()),
    lambda: f"arn:aws:kms:{REGION}:{ACCOUNT1}:key/{uuid.uuid4()}",
    lambda: f"alias/{unique('missing')}",
    lambda: f"arn:aws:kms:{REGION}:{ACCOUNT1}:alias/{unique('missing')}",
], ids=["key-id", "key-arn", "alias", "alias-arn"])
def test_not_found(kms, ident):
    i = ident()
    expect_error("NotFoundException", kms.describe_key, KeyId=i)
    expect_error("NotFoundException", kms.encrypt, KeyId=i, Plaintext=b"x")
    expect_error("NotFoundException", kms.generate_data_key, KeyId=i, KeySpec="AES_256")


def test_not_found_other_ops(kms):
    kid = str(uuid.uuid4())
    expect_error("NotFoundException", kms.enable_key, KeyId=kid)
    expect_error("NotFoundException", kms.disable_key, KeyId=kid)
    expect_error("NotFoundException", kms.schedule_key_deletion, KeyId=kid, PendingWindowInDays=7)
    expect_error("NotFoundException", kms.list_resource_tags, KeyId=kid)
    expect_error("NotFoundException", kms.get_key_rotation_status, KeyId=kid)
    expect_error("NotFoundException", kms.create_alias, AliasName=f"alias/{unique()}", TargetKeyId=kid)


def test_disabled(kms, key, ciphertext):
    blob, ctx = ciphertext
    kms.disable_key(KeyId=key["KeyId"])
    expect_error("DisabledException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    expect_error("DisabledException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=ctx)
    expect_error("DisabledException", kms.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256")
    expect_error("DisabledException", kms.generate_data_key_without_plaintext,
                 KeyId=key["KeyId"], KeySpec="AES_256")
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"secret data"


def test_pending_deletion_invalid_state(kms, key, ciphertext):
    blob, ctx = ciphertext
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    expect_error("KMSInvalidStateException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    expect_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=ctx)
    expect_error("KMSInvalidStateException", kms.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256")
    expect_error("KMSInvalidStateException", kms.enable_key, KeyId=key["KeyId"])
    expect_error("KMSInvalidStateException", kms.schedule_key_deletion, KeyId=key["KeyId"],
                 PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=key["KeyId"])
    expect_error("KMSInvalidStateException", kms.cancel_key_deletion, KeyId=key["KeyId"])


def test_invalid_ciphertext_garbage(kms, key):
    for garbage in (b"\x00", b"not a ciphertext at all", os.urandom(200), os.urandom(1024)):
        expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=garbage)


def test_invalid_ciphertext_flipped_byte(kms, ciphertext):
    blob, ctx = ciphertext
    positions = sorted({0, 1, len(blob) // 4, len(blob) // 2, 3 * len(blob) // 4,
                        len(blob) - 17, len(blob) - 1})
    for pos in positions:
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(ClientError) as ei:
            kms.decrypt(CiphertextBlob=bytes(bad), EncryptionContext=ctx)
        assert error_code(ei) == "InvalidCiphertextException", f"byte {pos}/{len(blob)}: {ei.value}"
    # Truncated ciphertext.
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob[:-1], EncryptionContext=ctx)
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob + b"\x00", EncryptionContext=ctx)


def test_invalid_ciphertext_context(kms, ciphertext):
    blob, ctx = ciphertext
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob)  # missing
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob,
                 EncryptionContext={"purpose": "other"})  # wrong value
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob,
                 EncryptionContext={"Purpose": "boto3"})  # wrong key (case)
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob,
                 EncryptionContext={**ctx, "extra": "1"})  # superset
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"secret data"


def test_incorrect_key(kms, new_key, ciphertext):
    blob, ctx = ciphertext
    other = new_key("not the right key")
    expect_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=ctx,
                 KeyId=other["KeyId"])
    expect_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=ctx,
                 KeyId=other["Arn"])


@pytest.mark.parametrize("call", [
    ("encrypt-0", lambda c, k: c.encrypt(KeyId=k, Plaintext=b"")),
    ("encrypt-4097", lambda c, k: c.encrypt(KeyId=k, Plaintext=b"a" * 4097)),
    ("random-0", lambda c, k: c.generate_random(NumberOfBytes=0)),
    ("random-1025", lambda c, k: c.generate_random(NumberOfBytes=1025)),
    ("pending-6", lambda c, k: c.schedule_key_deletion(KeyId=k, PendingWindowInDays=6)),
    ("pending-31", lambda c, k: c.schedule_key_deletion(KeyId=k, PendingWindowInDays=31)),
    ("rotation-89", lambda c, k: c.enable_key_rotation(KeyId=k, RotationPeriodInDays=89)),
    ("rotation-2561", lambda c, k: c.enable_key_rotation(KeyId=k, RotationPeriodInDays=2561)),
    ("gdk-both", lambda c, k: c.generate_data_key(KeyId=k, KeySpec="AES_256", NumberOfBytes=32)),
    ("gdk-neither", lambda c, k: c.generate_data_key(KeyId=k)),
    ("gdk-bytes-0", lambda c, k: c.generate_data_key(KeyId=k, NumberOfBytes=0)),
    ("gdk-bytes-1025", lambda c, k: c.generate_data_key(KeyId=k, NumberOfBytes=1025)),
    ("gdkwp-both", lambda c, k: c.generate_data_key_without_plaintext(KeyId=k, KeySpec="AES_256", NumberOfBytes=32)),
    ("decrypt-6145", lambda c, k: c.decrypt(CiphertextBlob=os.urandom(6145))),
    ("decrypt-empty", lambda c, k: c.decrypt(CiphertextBlob=b"")),
], ids=lambda p: p[0])
def test_validation_errors(kms_raw, key, call):
    _, fn = call
    expect_error("ValidationException", fn, kms_raw, key["KeyId"])
    # Rejected requests changed nothing.
    md = kms_raw.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "Enabled"
    assert kms_raw.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False


@pytest.mark.parametrize("name", [
    "alias/bad name!",
    "alias/bad$chars",
    "alias/aws/x",
], ids=["space-bang", "dollar", "aws-reserved"])
def test_invalid_alias_name(kms_raw, key, name):
    expect_error("InvalidAliasNameException", kms_raw.create_alias, AliasName=name, TargetKeyId=key["KeyId"])


def test_alias_name_over_256_fails_validation(kms_raw, key):
    # AWS checks the member's length constraint (1 to 256) before the name's form.
    expect_error("ValidationException", kms_raw.create_alias, AliasName="alias/" + "a" * 251,
                 TargetKeyId=key["KeyId"])


def test_alias_max_length_ok(kms, key):
    name = "alias/" + "a" * 244 + unique("")[:6]  # exactly 256 characters
    name = name[:256]
    assert len(name) == 256
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key["KeyId"]
    kms.delete_alias(AliasName=name)


def test_already_exists(kms, key):
    name = f"alias/{unique('dup')}"
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    expect_error("AlreadyExistsException", kms.create_alias, AliasName=name, TargetKeyId=key["KeyId"])


def test_unrecognized_client(node):
    bogus = Credential(random_access_key(), random_secret(), ACCOUNT1, "nobody")
    c = node.boto3_client(credential=bogus)
    expect_error("UnrecognizedClientException", c.list_keys)
    sts = node.boto3_client(credential=bogus, service="sts")
    with pytest.raises(ClientError):
        sts.get_caller_identity()


def test_invalid_signature(node):
    good = node.creds[1]
    wrong = Credential(good.access_key_id, random_secret(), ACCOUNT1, "admin")
    c = node.boto3_client(credential=wrong)
    expect_error("InvalidSignatureException", c.list_keys)
    expect_error("InvalidSignatureException", c.encrypt, KeyId=f"alias/{unique()}", Plaintext=b"x")


# ---------------------------------------------------- hand-built HTTP requests
def raw_request(node, target, body, cred=None, when=None, sign=True, headers=None):
    """POST a KMS JSON 1.1 request built by hand; returns (status, error_code or None, json body)."""
    h = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"TrentService.{target}",
    }
    h.update(headers or {})
    req = AWSRequest(method="POST", url=node.endpoint + "/", data=json.dumps(body).encode(), headers=h)
    if sign:
        cred = cred or node.creds[1]
        signer = SigV4Auth(Credentials(cred.access_key_id, cred.secret_access_key), "kms", REGION)
        if when is not None:
            with mock.patch("botocore.auth.get_current_datetime", return_value=when):
                signer.add_auth(req)
        else:
            signer.add_auth(req)
    prepared = req.prepare()
    http = urllib3.PoolManager(ca_certs=str(node.ca_path), cert_reqs="CERT_REQUIRED")
    r = http.request("POST", prepared.url, body=prepared.body, headers=dict(prepared.headers),
                     retries=False, timeout=10)
    try:
        doc = json.loads(r.data) if r.data else {}
    except ValueError:
        doc = {"raw": r.data.decode(errors="replace")}
    code = None
    if r.status >= 400:
        code = (doc.get("__type") or r.headers.get("x-amzn-ErrorType") or "").split("#")[-1].split(":")[0]
    return r.status, code, doc


def utcnow_naive():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def test_raw_signed_request_ok(node):
    status, code, doc = raw_request(node, "ListKeys", {"Limit": 1})
    assert status == 200, doc
    assert "Keys" in doc


def test_skewed_clock_rejected(node):
    status, code, doc = raw_request(node, "ListKeys", {}, when=utcnow_naive() - datetime.timedelta(minutes=20))
    assert status == 400, doc
    assert code == "InvalidSignatureException", doc
    status, code, doc = raw_request(node, "ListKeys", {}, when=utcnow_naive() + datetime.timedelta(minutes=20))
    assert status == 400, doc
    assert code == "InvalidSignatureException", doc
    # A few minutes of skew is tolerated (AWS allows 5 minutes).
    status, code, doc = raw_request(node, "ListKeys", {}, when=utcnow_naive() - datetime.timedelta(minutes=2))
    assert status == 200, doc


def test_missing_authorization(node):
    status, code, doc = raw_request(node, "ListKeys", {}, sign=False)
    assert status == 400, doc
    assert code in ("MissingAuthenticationTokenException", "IncompleteSignature"), doc


def test_tampered_body_rejected(node):
    """Signature covers the body: changing it after signing fails."""
    body = {"Limit": 1}
    req = AWSRequest(method="POST", url=node.endpoint + "/", data=json.dumps(body).encode(),
                     headers={"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": "TrentService.ListKeys"})
    cred = node.creds[1]
    SigV4Auth(Credentials(cred.access_key_id, cred.secret_access_key), "kms", REGION).add_auth(req)
    prepared = req.prepare()
    http = urllib3.PoolManager(ca_certs=str(node.ca_path), cert_reqs="CERT_REQUIRED")
    r = http.request("POST", prepared.url, body=json.dumps({"Limit": 2}).encode(),
                     headers=dict(prepared.headers), retries=False, timeout=10)
    assert r.status == 400, r.data
    assert b"InvalidSignatureException" in r.data or \
        "InvalidSignatureException" in r.headers.get("x-amzn-ErrorType", "")


def test_unknown_operation(node):
    status, code, doc = raw_request(node, "NoSuchOperation", {})
    assert status == 400, doc
    assert code in ("UnknownOperationException", "InvalidAction"), doc


# ------------------------------------------------------------------ accounts
def test_second_account_isolation(fresh_node):
    """On a node of its own, each account lists exactly its own keys and aliases."""
    kms, kms2 = fresh_node.boto3_client(1), fresh_node.boto3_client(2)
    key = kms.create_key(Description="account one")["KeyMetadata"]
    ctx = {"purpose": "boto3"}
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"secret data", EncryptionContext=ctx)["CiphertextBlob"]
    # By key ARN, another account's key is refused (its key policy does not
    # let this account in); by key id it is not found in the caller's account.
    expect_error("AccessDeniedException", kms2.describe_key, KeyId=key["Arn"])
    expect_error("NotFoundException", kms2.describe_key, KeyId=key["KeyId"])
    expect_error("AccessDeniedException", kms2.encrypt, KeyId=key["Arn"], Plaintext=b"x")
    # A blob naming no key of the caller's account is a bad ciphertext (no key-id oracle).
    expect_error("InvalidCiphertextException", kms2.decrypt, CiphertextBlob=blob, EncryptionContext=ctx)
    expect_error("NotFoundException", kms2.disable_key, KeyId=key["Arn"])
    expect_error("NotFoundException", kms2.schedule_key_deletion, KeyId=key["Arn"], PendingWindowInDays=7)
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"

    alias = f"alias/{unique('acct1')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])

    k2 = kms2.create_key(Description="account two")["KeyMetadata"]
    assert k2["AWSAccountId"] == ACCOUNT2
    assert k2["Arn"] == f"arn:aws:kms:{REGION}:{ACCOUNT2}:key/{k2['KeyId']}"

    keys2 = {k["KeyId"] for p in kms2.get_paginator("list_keys").paginate() for k in p["Keys"]}
    keys1 = {k["KeyId"] for p in kms.get_paginator("list_keys").paginate() for k in p["Keys"]}
    assert keys2 == {k2["KeyId"]}
    assert keys1 == {key["KeyId"]}
    aliases1 = [a for p in kms.get_paginator("list_aliases").paginate() for a in p["Aliases"]]
    aliases2 = [a for p in kms2.get_paginator("list_aliases").paginate() for a in p["Aliases"]]
    assert [(a["AliasName"], a["TargetKeyId"]) for a in aliases1] == [(alias, key["KeyId"])]
    assert aliases1[0]["AliasArn"] == f"arn:aws:kms:{REGION}:{ACCOUNT1}:{alias}"
    assert aliases2 == []
    # Account 1 cannot reach account 2's key either, nor point an alias at it.
    expect_error("AccessDeniedException", kms.describe_key, KeyId=k2["Arn"])
    expect_error("NotFoundException", kms.create_alias, AliasName=f"alias/{unique()}", TargetKeyId=k2["Arn"])
    expect_error("NotFoundException", kms2.create_alias, AliasName=f"alias/{unique()}", TargetKeyId=key["Arn"])


def test_same_alias_in_both_accounts(kms, kms2, key):
    name = f"alias/{unique('shared')}"
    k2 = kms2.create_key(Description="account two alias")["KeyMetadata"]
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    kms2.create_alias(AliasName=name, TargetKeyId=k2["KeyId"])
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key["KeyId"]
    assert kms2.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == k2["KeyId"]
    blob2 = kms2.encrypt(KeyId=name, Plaintext=b"two")["CiphertextBlob"]
    assert kms2.decrypt(CiphertextBlob=blob2)["Plaintext"] == b"two"
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob2)
    kms2.delete_alias(AliasName=name)
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key["KeyId"]
    expect_error("NotFoundException", kms2.describe_key, KeyId=name)


# ---------------------------------------------------------------- durability
def test_durability_across_restart(fresh_node, new_key):
    node = fresh_node
    kms = node.boto3_client(1)
    k = new_key("durable", client=kms)
    alias = f"alias/{unique('durable')}"
    kms.create_alias(AliasName=alias, TargetKeyId=k["KeyId"])
    kms.tag_resource(KeyId=k["KeyId"], Tags=[{"TagKey": "keep", "TagValue": "me"}])
    ctx = {"restart": "yes"}
    blob = kms.encrypt(KeyId=alias, Plaintext=b"survives restarts", EncryptionContext=ctx)["CiphertextBlob"]

    pre_rotation = kms.encrypt(KeyId=k["KeyId"], Plaintext=b"pre-rotation")["CiphertextBlob"]
    kms.enable_key_rotation(KeyId=k["KeyId"], RotationPeriodInDays=180)
    kms.rotate_key_on_demand(KeyId=k["KeyId"])
    post_rotation = kms.encrypt(KeyId=k["KeyId"], Plaintext=b"post-rotation")["CiphertextBlob"]

    disabled = new_key("stays disabled", client=kms)
    kms.disable_key(KeyId=disabled["KeyId"])
    pending = new_key("stays pending deletion", client=kms)
    kms.schedule_key_deletion(KeyId=pending["KeyId"], PendingWindowInDays=7)

    k2 = node.boto3_client(2).create_key(Description="account two durable")["KeyMetadata"]

    rc = node.restart()
    assert rc == 0, f"keyfence exited {rc} on SIGTERM"

    kms = node.boto3_client(1)
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"survives restarts"
    assert kms.decrypt(CiphertextBlob=pre_rotation)["Plaintext"] == b"pre-rotation"
    assert kms.decrypt(CiphertextBlob=post_rotation)["Plaintext"] == b"post-rotation"
    md = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert md["KeyId"] == k["KeyId"] and md["Description"] == "durable"
    assert kms.list_resource_tags(KeyId=k["KeyId"])["Tags"] == [{"TagKey": "keep", "TagValue": "me"}]
    st = kms.get_key_rotation_status(KeyId=k["KeyId"])
    assert st["KeyRotationEnabled"] is True and st["RotationPeriodInDays"] == 180
    assert len(kms.list_key_rotations(KeyId=k["KeyId"])["Rotations"]) == 1
    assert kms.describe_key(KeyId=disabled["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    assert kms.describe_key(KeyId=pending["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert node.boto3_client(2).describe_key(KeyId=k2["KeyId"])["KeyMetadata"]["KeyId"] == k2["KeyId"]

    # Rotate again after the restart; everything still decrypts after a second restart.
    kms.rotate_key_on_demand(KeyId=k["KeyId"])
    post2 = kms.encrypt(KeyId=k["KeyId"], Plaintext=b"post-rotation-2")["CiphertextBlob"]
    assert node.restart() == 0
    kms = node.boto3_client(1)
    for b, pt in ((pre_rotation, b"pre-rotation"), (post_rotation, b"post-rotation"), (post2, b"post-rotation-2")):
        assert kms.decrypt(CiphertextBlob=b)["Plaintext"] == pt
    # The development credential is unchanged across restarts.
    assert node.boto3_client(1, service="sts").get_caller_identity()["Account"] == ACCOUNT1


def test_sts_auth_error_codes(node):
    """STS answers authentication failures with its own codes (as AWS STS does:
    scripts check `aws sts get-caller-identity` for InvalidClientTokenId)."""
    good = node.creds[1]
    unknown = Credential(random_access_key(), random_secret(), ACCOUNT1, "nobody")
    wrong = Credential(good.access_key_id, random_secret(), ACCOUNT1, "admin")
    codes = {}
    for label, cred in (("unknown key", unknown), ("wrong secret", wrong)):
        with pytest.raises(ClientError) as ei:
            node.boto3_client(credential=cred, service="sts").get_caller_identity()
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403)
        codes[label] = ei.value.response["Error"]["Code"]
    assert codes == {"unknown key": "InvalidClientTokenId", "wrong secret": "SignatureDoesNotMatch"}, codes
