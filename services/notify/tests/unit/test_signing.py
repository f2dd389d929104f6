"""The providers' signatures against the worked examples of their own documentation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from zhumeng_notify.adapters.signing import (
    acs3_canonical_request,
    acs3_headers,
    acs3_signature,
    canonical_query,
    percent_encode,
    sha256_hex,
    tc3_authorization,
    tc3_canonical_request,
    tc3_date,
)

pytestmark = pytest.mark.unit

# Alibaba Cloud, "V3 request body and signature mechanism": ECS RunInstances on
# ecs.cn-shanghai.aliyuncs.com with the document's placeholder keys, date and nonce.
ACS_QUERY = {
    "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
    "RegionId": "cn-shanghai",
}
ACS_EMPTY_HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ACS_HASHED_CANONICAL = "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
ACS_SIGNATURE = "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"


def acs_doc_headers() -> dict[str, str]:
    return acs3_headers(
        method="POST",
        host="ecs.cn-shanghai.aliyuncs.com",
        query=ACS_QUERY,
        body=b"",
        action="RunInstances",
        version="2014-05-26",
        access_key_id="YourAccessKeyId",
        access_key_secret="YourAccessKeySecret",
        at=datetime(2023, 10, 26, 10, 22, 32, tzinfo=UTC),
        nonce="3156853299f313e23d1673dc12e1703d",
    )


def test_alibaba_v3_reproduces_the_documented_example() -> None:
    headers = acs_doc_headers()
    assert headers["x-acs-content-sha256"] == ACS_EMPTY_HASH
    assert headers["authorization"] == (
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,"
        "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;"
        "x-acs-signature-nonce;x-acs-version,"
        f"Signature={ACS_SIGNATURE}"
    )


def test_alibaba_v3_canonical_request_hashes_as_documented() -> None:
    headers = {k: v for k, v in acs_doc_headers().items() if k != "authorization"}
    canonical = acs3_canonical_request(
        "POST", "/", canonical_query(ACS_QUERY), headers, ACS_EMPTY_HASH
    )
    assert canonical.splitlines()[2] == (
        "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
    )
    assert sha256_hex(canonical.encode()) == ACS_HASHED_CANONICAL
    assert acs3_signature("YourAccessKeySecret", canonical) == ACS_SIGNATURE
    assert acs3_signature("another secret", canonical) != ACS_SIGNATURE


def test_alibaba_percent_encoding_follows_the_documented_special_cases() -> None:
    assert percent_encode("a b*c~d") == "a%20b%2Ac~d"
    assert percent_encode('{"name":"秀英"}') == "%7B%22name%22%3A%22%E7%A7%80%E8%8B%B1%22%7D"
    assert canonical_query({"b": "2", "a": "1 1"}) == "a=1%201&b=2"


# Tencent Cloud, "Signature v3": CVM DescribeInstances in ap-guangzhou at 1551113065 with the
# document's example SecretKey; every intermediate value below is printed in the document.
TC_PAYLOAD = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
TC_SIGNED = {"Content-Type": "application/json; charset=utf-8", "Host": "cvm.tencentcloudapi.com"}


def test_tencent_tc3_reproduces_the_documented_example() -> None:
    canonical = tc3_canonical_request("POST", TC_SIGNED, TC_PAYLOAD)
    assert canonical == (
        "POST\n/\n\n"
        "content-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n"
        "content-type;host\n"
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    assert sha256_hex(canonical.encode()) == (
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    authorization = tc3_authorization(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        service="cvm",
        signed=TC_SIGNED,
        payload=TC_PAYLOAD,
        timestamp=1551113065,
    )
    assert authorization == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


def test_tencent_scope_date_is_utc_not_local_time() -> None:
    # 1551113065 is 2019-02-26 00:44:25 in UTC+8: the scope must say the 25th
    assert tc3_date(1551113065) == "2019-02-25"


def test_tencent_signature_changes_with_the_key_and_the_payload() -> None:
    def sign(key: str, payload: bytes) -> str:
        return tc3_authorization(
            secret_id="id",
            secret_key=key,
            service="sms",
            signed=TC_SIGNED,
            payload=payload,
            timestamp=1551113065,
        )

    assert sign("k1", TC_PAYLOAD) != sign("k2", TC_PAYLOAD)
    assert sign("k1", TC_PAYLOAD) != sign("k1", b"{}")
