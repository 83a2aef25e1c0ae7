"""Imported key material (issue 4), end to end: Origin EXTERNAL keys,
GetParametersForImport / ImportKeyMaterial / DeleteImportedKeyMaterial for
symmetric, asymmetric and HMAC keys, every import error, durability across a
restart, an AWS CLI import flow, and known-answer tests through the wire
(RFC 8032 Ed25519 vectors imported as PKCS#8; HMAC against pyca).

The wrapping is done here independently with pyca/cryptography:
RSAES_OAEP_SHA_* = RSA-OAEP(material); RSA_AES_KEY_WRAP_SHA_* =
RSA-OAEP(k) || AES-KWP(k, material) with a fresh 256-bit k (RFC 5649).
ExpiredImportTokenException is not tested: tokens live 24 hours.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import os

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

WRAPPING_ALGORITHMS = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256",
                       "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"]


def error_code(err: ClientError) -> str:
    return err.response["Error"]["Code"]


def expect_error(code, fn, *args, **kwargs):
    with pytest.raises(ClientError) as ei:
        fn(*args, **kwargs)
    got = error_code(ei.value)
    codes = (code,) if isinstance(code, str) else tuple(code)
    assert got in codes, f"expected {code}, got {got}: {ei.value}"
    status = ei.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert 400 <= status < 500, f"{got} with HTTP {status}"
    return ei.value


def spki(pub) -> bytes:
    return pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def pkcs8(priv) -> bytes:
    return priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())


def wrap(public_key_der: bytes, algorithm: str, material: bytes) -> bytes:
    """EncryptedKeyMaterial for `algorithm`, made with pyca only."""
    pub = serialization.load_der_public_key(public_key_der)
    assert isinstance(pub, rsa.RSAPublicKey)
    h = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
    oaep = padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return pub.encrypt(material, oaep)
    assert algorithm.startswith("RSA_AES_KEY_WRAP")
    k = os.urandom(32)
    return pub.encrypt(k, oaep) + aes_key_wrap_with_padding(k, material)


def params(kms, key_id, algorithm="RSAES_OAEP_SHA_256", wrapping_spec="RSA_2048"):
    return kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm,
                                         WrappingKeySpec=wrapping_spec)


def import_material(kms, key_id, material, algorithm="RSAES_OAEP_SHA_256",
                    wrapping_spec="RSA_2048", **extra):
    p = params(kms, key_id, algorithm, wrapping_spec)
    extra.setdefault("ExpirationModel", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    out = kms.import_key_material(KeyId=key_id, ImportToken=p["ImportToken"],
                                  EncryptedKeyMaterial=wrap(p["PublicKey"], algorithm, material),
                                  **extra)
    return p, out


def external_key(kms, **kwargs):
    meta = kms.create_key(Origin="EXTERNAL", Description="e2e imported", **kwargs)["KeyMetadata"]
    assert meta["Origin"] == "EXTERNAL"
    assert meta["KeyState"] == "PendingImport"
    assert meta["Enabled"] is False
    return meta


def state(kms, key_id) -> dict:
    return kms.describe_key(KeyId=key_id)["KeyMetadata"]


# ================================================================== symmetric lifecycle
SYM_CASES = [
    ("RSAES_OAEP_SHA_1", "RSA_2048"),
    ("RSAES_OAEP_SHA_256", "RSA_3072"),
    ("RSA_AES_KEY_WRAP_SHA_1", "RSA_4096"),
    ("RSA_AES_KEY_WRAP_SHA_256", "RSA_2048"),
]


@pytest.mark.parametrize("algorithm,wrapping_spec", SYM_CASES)
def test_symmetric_import_lifecycle(kms, algorithm, wrapping_spec):
    meta = external_key(kms)
    kid = meta["KeyId"]
    expect_error("KMSInvalidStateException", kms.encrypt, KeyId=kid, Plaintext=b"x")

    before = datetime.datetime.now(datetime.timezone.utc)
    p = params(kms, kid, algorithm, wrapping_spec)
    assert p["KeyId"] == meta["Arn"]
    assert len(p["ImportToken"]) > 0
    pub = serialization.load_der_public_key(p["PublicKey"])
    assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == int(wrapping_spec[4:])
    valid_to = p["ParametersValidTo"]
    assert before + datetime.timedelta(hours=23, minutes=55) <= valid_to \
        <= before + datetime.timedelta(hours=24, minutes=5), valid_to
    # Importing does not change the state until ImportKeyMaterial.
    assert state(kms, kid)["KeyState"] == "PendingImport"

    material = os.urandom(32)
    out = kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"],
                                  EncryptedKeyMaterial=wrap(p["PublicKey"], algorithm, material),
                                  ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert out["KeyId"] == meta["Arn"]
    d = state(kms, kid)
    assert d["KeyState"] == "Enabled" and d["Enabled"] is True
    assert d["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in d

    ctx = {"import": algorithm}
    blob = kms.encrypt(KeyId=kid, Plaintext=b"imported secret", EncryptionContext=ctx)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"imported secret"
    dk = kms.generate_data_key(KeyId=kid, KeySpec="AES_256")
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]

    # Delete the material: the key waits for a re-import and nothing decrypts.
    kms.delete_imported_key_material(KeyId=kid)
    d = state(kms, kid)
    assert d["KeyState"] == "PendingImport" and d["Enabled"] is False
    expect_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=ctx)
    expect_error("KMSInvalidStateException", kms.encrypt, KeyId=kid, Plaintext=b"x")

    # Re-import the same material (another wrapping): old ciphertexts decrypt again.
    other = "RSA_AES_KEY_WRAP_SHA_256" if algorithm != "RSA_AES_KEY_WRAP_SHA_256" else "RSAES_OAEP_SHA_1"
    import_material(kms, kid, material, other, "RSA_2048")
    assert state(kms, kid)["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"imported secret"
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]


def test_import_expiration_model(kms):
    meta = external_key(kms)
    kid = meta["KeyId"]
    material = os.urandom(32)
    now = datetime.datetime.now(datetime.timezone.utc)
    p = params(kms, kid)
    blob = wrap(p["PublicKey"], "RSAES_OAEP_SHA_256", material)
    tok = p["ImportToken"]
    # Invalid combinations are refused before the token is used.
    expect_error("ValidationException", kms.import_key_material, KeyId=kid, ImportToken=tok,
                 EncryptedKeyMaterial=blob, ExpirationModel="KEY_MATERIAL_EXPIRES")
    expect_error("ValidationException", kms.import_key_material, KeyId=kid, ImportToken=tok,
                 EncryptedKeyMaterial=blob, ExpirationModel="KEY_MATERIAL_EXPIRES",
                 ValidTo=now - datetime.timedelta(hours=1))
    expect_error("ValidationException", kms.import_key_material, KeyId=kid, ImportToken=tok,
                 EncryptedKeyMaterial=blob, ExpirationModel="KEY_MATERIAL_EXPIRES",
                 ValidTo=now + datetime.timedelta(days=400))
    expect_error("ValidationException", kms.import_key_material, KeyId=kid, ImportToken=tok,
                 EncryptedKeyMaterial=blob, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
                 ValidTo=now + datetime.timedelta(days=2))
    assert state(kms, kid)["KeyState"] == "PendingImport"
    valid_to = (now + datetime.timedelta(days=2)).replace(microsecond=0)
    kms.import_key_material(KeyId=kid, ImportToken=tok, EncryptedKeyMaterial=blob,
                            ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to)
    d = state(kms, kid)
    assert d["KeyState"] == "Enabled"
    assert d["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert abs((d["ValidTo"] - valid_to).total_seconds()) <= 1, d["ValidTo"]
    blob2 = kms.encrypt(KeyId=kid, Plaintext=b"expiring")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob2)["Plaintext"] == b"expiring"


# ================================================================== errors
def test_import_errors_tokens_and_ciphertexts(kms):
    a = external_key(kms)["KeyId"]
    b = external_key(kms)["KeyId"]
    material = os.urandom(32)
    pa = params(kms, a)
    pb = params(kms, b)
    good = wrap(pa["PublicKey"], "RSAES_OAEP_SHA_256", material)

    # A random token, and another key's token.
    expect_error("InvalidImportTokenException", kms.import_key_material, KeyId=a,
                 ImportToken=os.urandom(len(pa["ImportToken"])), EncryptedKeyMaterial=good,
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    expect_error("InvalidImportTokenException", kms.import_key_material, KeyId=a,
                 ImportToken=pb["ImportToken"], EncryptedKeyMaterial=good,
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    # Undecryptable wrapped material: garbage, tampered, wrong OAEP hash, wrong wrapping key.
    for bad in (
        os.urandom(256),
        good[:-1] + bytes([good[-1] ^ 1]),
        wrap(pa["PublicKey"], "RSAES_OAEP_SHA_1", material),
        wrap(pb["PublicKey"], "RSAES_OAEP_SHA_256", material),
        wrap(pa["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256", material),
    ):
        expect_error("InvalidCiphertextException", kms.import_key_material, KeyId=a,
                     ImportToken=pa["ImportToken"], EncryptedKeyMaterial=bad,
                     ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    # Material of the wrong size for SYMMETRIC_DEFAULT (256 bits required).
    for n in (16, 33):
        expect_error(("IncorrectKeyMaterialException", "ValidationException"),
                     kms.import_key_material, KeyId=a, ImportToken=pa["ImportToken"],
                     EncryptedKeyMaterial=wrap(pa["PublicKey"], "RSAES_OAEP_SHA_256", os.urandom(n)),
                     ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    # None of the failures consumed the token.
    assert state(kms, a)["KeyState"] == "PendingImport"
    kms.import_key_material(KeyId=a, ImportToken=pa["ImportToken"], EncryptedKeyMaterial=good,
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    blob = kms.encrypt(KeyId=a, Plaintext=b"first material")["CiphertextBlob"]

    # The token is single use: after deleting the material it does not work again.
    kms.delete_imported_key_material(KeyId=a)
    expect_error("InvalidImportTokenException", kms.import_key_material, KeyId=a,
                 ImportToken=pa["ImportToken"], EncryptedKeyMaterial=good,
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")

    # Re-import of different material is refused; the same material is accepted.
    p2 = params(kms, a, "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048")
    expect_error("IncorrectKeyMaterialException", kms.import_key_material, KeyId=a,
                 ImportToken=p2["ImportToken"],
                 EncryptedKeyMaterial=wrap(p2["PublicKey"], "RSA_AES_KEY_WRAP_SHA_1", os.urandom(32)),
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert state(kms, a)["KeyState"] == "PendingImport"
    expect_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob)
    kms.import_key_material(KeyId=a, ImportToken=p2["ImportToken"],
                            EncryptedKeyMaterial=wrap(p2["PublicKey"], "RSA_AES_KEY_WRAP_SHA_1", material),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"first material"


def test_import_errors_wrong_keys_and_parameters(kms, kms_raw):
    aws_key = kms.create_key()["KeyMetadata"]["KeyId"]
    expect_error("UnsupportedOperationException", params, kms, aws_key)
    expect_error("UnsupportedOperationException", kms.delete_imported_key_material, KeyId=aws_key)
    ext = external_key(kms)["KeyId"]
    p = params(kms, ext)
    expect_error("UnsupportedOperationException", kms.import_key_material, KeyId=aws_key,
                 ImportToken=p["ImportToken"],
                 EncryptedKeyMaterial=wrap(p["PublicKey"], "RSAES_OAEP_SHA_256", os.urandom(32)),
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    # Unknown / unsupported wrapping parameters.
    expect_error("ValidationException", kms_raw.get_parameters_for_import, KeyId=ext,
                 WrappingAlgorithm="RSAES_OAEP_SHA_512", WrappingKeySpec="RSA_2048")
    expect_error("ValidationException", kms_raw.get_parameters_for_import, KeyId=ext,
                 WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_1024")
    expect_error(("ValidationException", "UnsupportedOperationException"),
                 kms.get_parameters_for_import, KeyId=ext,
                 WrappingAlgorithm="SM2PKE", WrappingKeySpec="SM2")
    expect_error("NotFoundException", params, kms,
                 "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000")
    # A key with material cannot take another import until it is deleted.
    import_material(kms, ext, os.urandom(32))
    with pytest.raises(ClientError) as ei:
        p = params(kms, ext)
        kms.import_key_material(KeyId=ext, ImportToken=p["ImportToken"],
                                EncryptedKeyMaterial=wrap(p["PublicKey"], "RSAES_OAEP_SHA_256",
                                                          os.urandom(32)),
                                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert error_code(ei.value) in ("KMSInvalidStateException", "IncorrectKeyMaterialException")
    # Deleting twice is harmless; the key stays PendingImport. Scheduling deletion works.
    kms.delete_imported_key_material(KeyId=ext)
    assert state(kms, ext)["KeyState"] == "PendingImport"
    kms.schedule_key_deletion(KeyId=ext, PendingWindowInDays=7)
    expect_error("KMSInvalidStateException", params, kms, ext)


# ================================================================== asymmetric import
def test_import_ecc_p256_signing_key(kms):
    """The imported P-256 key is the one in use: KMS signatures verify under
    pyca's own public key, and GetPublicKey returns exactly pyca's SPKI."""
    priv = ec.generate_private_key(ec.SECP256R1())
    meta = external_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    kid = meta["KeyId"]
    expect_error("KMSInvalidStateException", kms.get_public_key, KeyId=kid)
    expect_error("KMSInvalidStateException", kms.sign, KeyId=kid, Message=b"m",
                 SigningAlgorithm="ECDSA_SHA_256")

    # A P-384 key's PKCS#8 is refused for a P-256 key.
    p = params(kms, kid, "RSA_AES_KEY_WRAP_SHA_256", "RSA_3072")
    wrong = pkcs8(ec.generate_private_key(ec.SECP384R1()))
    expect_error(("IncorrectKeyMaterialException", "ValidationException"), kms.import_key_material,
                 KeyId=kid, ImportToken=p["ImportToken"],
                 EncryptedKeyMaterial=wrap(p["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256", wrong),
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"],
                            EncryptedKeyMaterial=wrap(p["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256", pkcs8(priv)),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert state(kms, kid)["KeyState"] == "Enabled"
    pk = kms.get_public_key(KeyId=kid)
    assert pk["PublicKey"] == spki(priv.public_key())
    msg = b"signed by an imported key"
    for mt, m in (("RAW", msg), ("DIGEST", hashlib.sha256(msg).digest())):
        sig = kms.sign(KeyId=kid, Message=m, MessageType=mt, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
        priv.public_key().verify(sig, msg, ec.ECDSA(hashes.SHA256()))
    # And KMS verifies pyca's own signature.
    own = priv.sign(msg, ec.ECDSA(hashes.SHA256()))
    assert kms.verify(KeyId=kid, Message=msg, Signature=own,
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"] is True

    # Delete; re-import of another P-256 key is refused; the same key is accepted.
    kms.delete_imported_key_material(KeyId=kid)
    expect_error("KMSInvalidStateException", kms.sign, KeyId=kid, Message=msg,
                 SigningAlgorithm="ECDSA_SHA_256")
    p = params(kms, kid, "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")
    expect_error("IncorrectKeyMaterialException", kms.import_key_material, KeyId=kid,
                 ImportToken=p["ImportToken"],
                 EncryptedKeyMaterial=wrap(p["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256",
                                           pkcs8(ec.generate_private_key(ec.SECP256R1()))),
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"],
                            EncryptedKeyMaterial=wrap(p["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256", pkcs8(priv)),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert kms.verify(KeyId=kid, Message=msg, Signature=own,
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"] is True


def test_import_rsa_encryption_key(kms):
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = external_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyId"]
    import_material(kms, kid, pkcs8(priv), "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048")
    assert kms.get_public_key(KeyId=kid)["PublicKey"] == spki(priv.public_key())
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    ct = priv.public_key().encrypt(b"to the imported RSA key", oaep)
    assert kms.decrypt(CiphertextBlob=ct, KeyId=kid,
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"to the imported RSA key"
    # KMS encrypts; pyca's private key decrypts.
    blob = kms.encrypt(KeyId=kid, Plaintext=b"from KMS", EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    assert priv.decrypt(blob, oaep) == b"from KMS"


def test_import_ecdh_key(kms):
    priv = ec.generate_private_key(ec.SECP384R1())
    kid = external_key(kms, KeySpec="ECC_NIST_P384", KeyUsage="KEY_AGREEMENT")["KeyId"]
    import_material(kms, kid, pkcs8(priv), "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")
    peer = ec.generate_private_key(ec.SECP384R1())
    out = kms.derive_shared_secret(KeyId=kid, KeyAgreementAlgorithm="ECDH",
                                   PublicKey=spki(peer.public_key()))
    assert out["SharedSecret"] == priv.exchange(ec.ECDH(), peer.public_key())
    assert out["KeyOrigin"] == "EXTERNAL"


def test_import_ml_dsa_key(kms):
    priv = mldsa.MLDSA65PrivateKey.generate()
    kid = external_key(kms, KeySpec="ML_DSA_65", KeyUsage="SIGN_VERIFY")["KeyId"]
    import_material(kms, kid, pkcs8(priv), "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")
    assert kms.get_public_key(KeyId=kid)["PublicKey"] == spki(priv.public_key())
    sig = kms.sign(KeyId=kid, Message=b"pq", SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
    priv.public_key().verify(sig, b"pq")


# RFC 8032 section 7.1, TEST 2 and TEST 3 (secret key, public key, message, signature).
RFC8032 = [
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
     "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.mark.parametrize("secret,public,message,signature", RFC8032, ids=["test2", "test3"])
def test_rfc8032_known_answer_through_import(kms, secret, public, message, signature):
    priv = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    kid = external_key(kms, KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyId"]
    import_material(kms, kid, pkcs8(priv), "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048")
    pub = serialization.load_der_public_key(kms.get_public_key(KeyId=kid)["PublicKey"])
    assert pub.public_bytes(serialization.Encoding.Raw,
                            serialization.PublicFormat.Raw).hex() == public
    out = kms.sign(KeyId=kid, Message=bytes.fromhex(message), MessageType="RAW",
                   SigningAlgorithm="ED25519_SHA_512")
    assert out["Signature"].hex() == signature
    assert kms.verify(KeyId=kid, Message=bytes.fromhex(message), Signature=bytes.fromhex(signature),
                      SigningAlgorithm="ED25519_SHA_512")["SignatureValid"] is True


def test_rfc8032_ed25519ph_known_answer_through_import(kms):
    """RFC 8032 section 7.3, TEST abc: Ed25519ph over SHA-512("abc"), MessageType DIGEST."""
    secret = "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42"
    signature = ("98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
                 "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406")
    priv = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    kid = external_key(kms, KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyId"]
    import_material(kms, kid, pkcs8(priv), "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")
    digest = hashlib.sha512(b"abc").digest()
    out = kms.sign(KeyId=kid, Message=digest, MessageType="DIGEST",
                   SigningAlgorithm="ED25519_PH_SHA_512")
    assert out["Signature"].hex() == signature
    assert kms.verify(KeyId=kid, Message=digest, MessageType="DIGEST",
                      Signature=bytes.fromhex(signature),
                      SigningAlgorithm="ED25519_PH_SHA_512")["SignatureValid"] is True
    expect_error("ValidationException", kms.sign, KeyId=kid, Message=b"abc",
                 MessageType="RAW", SigningAlgorithm="ED25519_PH_SHA_512")


# ================================================================== HMAC import
HMAC_SPECS = {  # spec -> (MAC algorithm, hashlib name, min key, max key)
    "HMAC_224": ("HMAC_SHA_224", "sha224", 28, 64),
    "HMAC_256": ("HMAC_SHA_256", "sha256", 32, 64),
    "HMAC_384": ("HMAC_SHA_384", "sha384", 48, 128),
    "HMAC_512": ("HMAC_SHA_512", "sha512", 64, 128),
}


@pytest.mark.parametrize("spec", list(HMAC_SPECS))
def test_import_hmac_key_matches_pyca(kms, spec):
    alg, hname, lo, hi = HMAC_SPECS[spec]
    kid = external_key(kms, KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")["KeyId"]
    p = params(kms, kid, "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")

    def attempt(material):
        return kms.import_key_material(
            KeyId=kid, ImportToken=p["ImportToken"],
            EncryptedKeyMaterial=wrap(p["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256", material),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")

    # RFC 4231 test case 2's key "Jefe" is far below AWS's minimum; too long is refused too.
    for bad in (b"Jefe", os.urandom(lo - 1), os.urandom(hi + 1)):
        expect_error(("IncorrectKeyMaterialException", "ValidationException"), attempt, bad)
    key = os.urandom(hi if spec in ("HMAC_256", "HMAC_512") else lo)
    attempt(key)
    # RFC 4231 test case 2's data, and a 4096-byte message: the tag is pyca's HMAC.
    for msg in (b"what do ya want for nothing?", os.urandom(4096)):
        mac = kms.generate_mac(KeyId=kid, Message=msg, MacAlgorithm=alg)["Mac"]
        assert mac == hmac.new(key, msg, hname).digest()
        assert kms.verify_mac(KeyId=kid, Message=msg, MacAlgorithm=alg,
                              Mac=hmac.new(key, msg, hname).digest())["MacValid"] is True


# ================================================================== durability
def test_imported_material_survives_restart(fresh_node):
    node = fresh_node
    kms = node.boto3_client(1)
    sym_material = os.urandom(32)
    sym = external_key(kms)["KeyId"]
    import_material(kms, sym, sym_material, "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")
    blob = kms.encrypt(KeyId=sym, Plaintext=b"durable")["CiphertextBlob"]

    ec_priv = ec.generate_private_key(ec.SECP256R1())
    eck = external_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyId"]
    import_material(kms, eck, pkcs8(ec_priv), "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")

    hkey = os.urandom(32)
    hk = external_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyId"]
    valid_to = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)).replace(microsecond=0)
    import_material(kms, hk, hkey, "RSAES_OAEP_SHA_1", "RSA_2048",
                    ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to)

    # Pending parameters made before the restart are usable after it.
    pending = external_key(kms)["KeyId"]
    pend_material = os.urandom(32)
    pp = params(kms, pending, "RSAES_OAEP_SHA_256", "RSA_2048")

    # Deleted material stays deleted; the same material can come back.
    deleted = external_key(kms)["KeyId"]
    del_material = os.urandom(32)
    import_material(kms, deleted, del_material)
    del_blob = kms.encrypt(KeyId=deleted, Plaintext=b"gone for now")["CiphertextBlob"]
    kms.delete_imported_key_material(KeyId=deleted)

    assert node.restart() == 0

    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"durable"
    assert kms.get_public_key(KeyId=eck)["PublicKey"] == spki(ec_priv.public_key())
    sig = kms.sign(KeyId=eck, Message=b"after restart", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    ec_priv.public_key().verify(sig, b"after restart", ec.ECDSA(hashes.SHA256()))
    assert kms.generate_mac(KeyId=hk, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"] == \
        hmac.new(hkey, b"m", "sha256").digest()
    d = state(kms, hk)
    assert d["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert abs((d["ValidTo"] - valid_to).total_seconds()) <= 1
    assert state(kms, sym)["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"

    assert state(kms, pending)["KeyState"] == "PendingImport"
    kms.import_key_material(KeyId=pending, ImportToken=pp["ImportToken"],
                            EncryptedKeyMaterial=wrap(pp["PublicKey"], "RSAES_OAEP_SHA_256", pend_material),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=pending, Plaintext=b"p")["CiphertextBlob"])

    assert state(kms, deleted)["KeyState"] == "PendingImport"
    expect_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=del_blob)
    p = params(kms, deleted)
    expect_error("IncorrectKeyMaterialException", kms.import_key_material, KeyId=deleted,
                 ImportToken=p["ImportToken"],
                 EncryptedKeyMaterial=wrap(p["PublicKey"], "RSAES_OAEP_SHA_256", os.urandom(32)),
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    kms.import_key_material(KeyId=deleted, ImportToken=p["ImportToken"],
                            EncryptedKeyMaterial=wrap(p["PublicKey"], "RSAES_OAEP_SHA_256", del_material),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert kms.decrypt(CiphertextBlob=del_blob)["Plaintext"] == b"gone for now"


# ================================================================== AWS CLI
def test_cli_import_flow(node, tmp_path):
    def fileb(name, data):
        p = tmp_path / name
        p.write_bytes(data)
        return f"fileb://{p}"

    meta = node.aws("kms", "create-key", "--origin", "EXTERNAL",
                    "--description", "cli import")["KeyMetadata"]
    assert meta["KeyState"] == "PendingImport" and meta["Origin"] == "EXTERNAL"
    kid = meta["KeyId"]
    p = node.aws("kms", "get-parameters-for-import", "--key-id", kid,
                 "--wrapping-algorithm", "RSA_AES_KEY_WRAP_SHA_256", "--wrapping-key-spec", "RSA_2048")
    assert p["KeyId"] == meta["Arn"] and "ParametersValidTo" in p
    material = os.urandom(32)
    wrapped = wrap(base64.b64decode(p["PublicKey"]), "RSA_AES_KEY_WRAP_SHA_256", material)
    node.aws("kms", "import-key-material", "--key-id", kid,
             "--encrypted-key-material", fileb("wrapped", wrapped),
             "--import-token", fileb("token", base64.b64decode(p["ImportToken"])),
             "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    d = node.aws("kms", "describe-key", "--key-id", kid)["KeyMetadata"]
    assert d["KeyState"] == "Enabled"
    assert d["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    ct = node.aws("kms", "encrypt", "--key-id", kid, "--plaintext", fileb("pt", b"via the CLI"))["CiphertextBlob"]
    out = node.aws("kms", "decrypt", "--ciphertext-blob", fileb("ct", base64.b64decode(ct)))
    assert base64.b64decode(out["Plaintext"]) == b"via the CLI"
    # Reusing the token fails with the AWS error name on stderr.
    node.aws("kms", "delete-imported-key-material", "--key-id", kid)
    assert node.aws("kms", "describe-key", "--key-id", kid)["KeyMetadata"]["KeyState"] == "PendingImport"
    err = node.aws_fail("kms", "import-key-material", "--key-id", kid,
                        "--encrypted-key-material", fileb("wrapped", wrapped),
                        "--import-token", fileb("token", base64.b64decode(p["ImportToken"])),
                        "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert "InvalidImportTokenException" in err
    err = node.aws_fail("kms", "decrypt", "--ciphertext-blob", fileb("ct", base64.b64decode(ct)))
    assert "KMSInvalidStateException" in err
