"""Provider callbacks: inbound SMS (opt-out by TD / STOP / 退订) and delivery reports.

Shapes accepted (HTTP batch push / callback URLs configured in each provider's console):

- Alibaba Cloud SMS (`aliyun`). Inbound SmsUp: a JSON array of
  `{"phone_number", "content", "sign_name", "send_time", "dest_code", "sequence_id"}`.
  SmsReport: a JSON array of `{"phone_number", "send_time", "report_time", "success",
  "err_code", "err_msg", "sms_size", "biz_id", "out_id"}`; `biz_id` is the BizId SendSms
  returned, our provider message id. Answer: `{"code": 0, "msg": "接收成功"}` (HTTP 200);
  anything else is pushed again (after 1, 5, 10 minutes).
- Tencent Cloud SMS (`tencent`). Reply callback: one JSON object `{"extend", "mobile",
  "nationcode", "sign", "text", "time"}`. Status report: a JSON array of
  `{"user_receive_time", "nationcode", "mobile", "report_status": "SUCCESS"|"FAIL",
  "errmsg", "description", "sid"}`; `sid` is the SerialNo SendSms returned. Answer:
  `{"result": 0, "errmsg": "OK"}`.

Reports may come more than once (neither provider promises idempotency): a report already
recorded is acknowledged and changes nothing. No confirmation SMS is sent after an opt-out:
the carrier's own unsubscribe handling covers marketing signatures, and a reply to "STOP"
would itself be an unwanted message.

No `from __future__ import annotations` here: FastAPI must see the real dependency types.
"""

import json
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from zhumeng_kit.pii import mask_phone
from zhumeng_kit.problems import NotFound, Unauthorized, Unprocessable

from ..adapters.mongo import MongoDeliveryRepository
from ..adapters.preferences_store import PreferenceStore, ViewPhoneBook
from ..domain.preferences import is_opt_out

log = logging.getLogger("zhumeng.notify.inbound")
Provider = Literal["aliyun", "tencent"]
ACK: dict[str, dict[str, Any]] = {
    "aliyun": {"code": 0, "msg": "接收成功"},
    "tencent": {"result": 0, "errmsg": "OK"},
}


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class AliyunSmsUp(_Loose):
    phone_number: str
    content: str


class TencentReply(_Loose):
    mobile: str
    text: str
    nationcode: str = "86"


class AliyunReport(_Loose):
    biz_id: str
    success: bool
    err_code: str | None = None
    report_time: str | None = None


class TencentReport(_Loose):
    sid: str
    report_status: str
    errmsg: str | None = None
    user_receive_time: str | None = None


def _local_time(text: str | None) -> datetime | None:
    """Both providers report "YYYY-MM-DD HH:MM:SS" in China time."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text + "+08:00")
    except ValueError:
        return None


def _parse(raw: bytes, adapter: TypeAdapter[Any]) -> Any:
    try:
        data = json.loads(raw or b"null")
        if isinstance(data, dict):
            data = [data]  # Tencent's reply callback is one object
        return adapter.validate_python(data)
    except (ValueError, ValidationError) as exc:
        raise Unprocessable(f"not a callback this provider sends: {str(exc)[:200]}") from None


def router(
    store: PreferenceStore,
    phones: ViewPhoneBook,
    deliveries: MongoDeliveryRepository,
    token: str | None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> APIRouter:
    api = APIRouter(tags=["provider callbacks"])

    def check(provider: str, request: Request) -> None:
        if provider not in ACK:
            raise NotFound(f"no SMS provider {provider!r} (aliyun, tencent)")
        given = request.query_params.get("token", "")
        if token and not secrets.compare_digest(given, token):
            raise Unauthorized("a provider callback must carry the configured token")

    @api.post("/v1/sms/inbound/{provider}")
    async def inbound_sms(provider: str, request: Request) -> dict[str, Any]:
        """A person replied to an SMS: TD / STOP / 退订 opts their phone out of SMS."""
        check(provider, request)
        raw = await request.body()
        texts: list[tuple[str, str]]
        if provider == "aliyun":
            ups = _parse(raw, TypeAdapter(list[AliyunSmsUp]))
            texts = [(u.phone_number, u.content) for u in ups]
        else:
            replies = _parse(raw, TypeAdapter(list[TencentReply]))
            texts = [(r.mobile, r.text) for r in replies]
        for phone, text in texts:
            if not is_opt_out(text):
                log.info("inbound sms from %s ignored (not an opt-out)", mask_phone(phone))
                continue
            people = phones.people(phone)
            for person in sorted(people):
                await store.opt_out(person, "sms")
            if not people:
                await store.block_phone(phone, provider)
            log.info(
                "inbound sms opt-out from %s: %d known people opted out of sms",
                mask_phone(phone),
                len(people),
            )
        return ACK[provider]

    @api.post("/v1/receipts/{provider}")
    async def delivery_report(provider: str, request: Request) -> dict[str, Any]:
        """The provider's delivery reports, matched by its message id; idempotent."""
        check(provider, request)
        raw = await request.body()
        now = clock()
        reports: list[tuple[str, dict[str, Any]]] = []
        if provider == "aliyun":
            for a in _parse(raw, TypeAdapter(list[AliyunReport])):
                status = "delivered" if a.success else "undelivered"
                when = _local_time(a.report_time)
                reports.append((a.biz_id, _entry(status, a.err_code, when, now)))
        else:
            for t in _parse(raw, TypeAdapter(list[TencentReport])):
                status = "delivered" if t.report_status.upper() == "SUCCESS" else "undelivered"
                when = _local_time(t.user_receive_time)
                reports.append((t.sid, _entry(status, t.errmsg, when, now)))
        for reference, entry in reports:
            result = await deliveries.record_receipt(provider, reference, entry)
            if result == "unknown":
                log.warning("%s report for unknown message %s", provider, reference)
        return ACK[provider]

    return api


def _entry(
    status: str, code: str | None, reported_at: datetime | None, now: datetime
) -> dict[str, Any]:
    return {"status": status, "code": code, "reported_at": reported_at, "received_at": now}
