"""Tags validated as AWS validates them, with boto3: duplicate keys in one request,
the reserved aws: prefix in any case and more than 50 tags are TagException; a key
or value of the wrong length is ValidationException. A refused request changes nothing."""

import pytest
from botocore.exceptions import ClientError


def code_of(fn, **kwargs):
    with pytest.raises(ClientError) as ei:
        fn(**kwargs)
    return ei.value.response["Error"]["Code"]


def test_tag_rules(kms_raw):
    kms = kms_raw
    key = kms.create_key(Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]["KeyId"]
    tag = lambda tags: code_of(kms.tag_resource, KeyId=key, Tags=tags)  # noqa: E731
    assert tag([{"TagKey": "k", "TagValue": "1"}, {"TagKey": "k", "TagValue": "2"}]) == "TagException"
    for reserved in ("aws:x", "AWS:x", "Aws:Name"):
        assert tag([{"TagKey": reserved, "TagValue": "v"}]) == "TagException", reserved
    assert tag([{"TagKey": "", "TagValue": "v"}]) == "ValidationException"
    assert tag([{"TagKey": "k" * 129, "TagValue": "v"}]) == "ValidationException"
    assert tag([{"TagKey": "k", "TagValue": "v" * 257}]) == "ValidationException"
    assert kms.list_resource_tags(KeyId=key)["Tags"] == [{"TagKey": "team", "TagValue": "a"}]
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": f"t{i}", "TagValue": ""} for i in range(49)])
    assert tag([{"TagKey": "fifty-one", "TagValue": "v"}]) == "TagException"
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "team", "TagValue": "b"}])  # replacing adds none
    many = [{"TagKey": f"x{i}", "TagValue": ""} for i in range(51)]
    assert code_of(kms.create_key, Tags=many) == "TagException"
    assert code_of(kms.create_key, Tags=[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "1"}]) == "TagException"
