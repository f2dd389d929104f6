"""Local stand-ins for the notification providers, for development and tests: real HTTP
servers on loopback that check each request the way the provider documents it, keep what
they accepted, and can be told to fail the next calls with a 5xx.

- Alibaba Cloud SMS `SendSms` (dysmsapi 2017-05-25): V3 signature ACS3-HMAC-SHA256,
  x-acs-date within 15 minutes, a nonce used once.
- Tencent Cloud SMS `SendSms` (2021-01-11): TC3-HMAC-SHA256, X-TC-Timestamp within 5 minutes,
  credential scope <UTC date>/sms/tc3_request.
- WeChat: `GET /cgi-bin/token` (appid + secret -> access token with an expiry) and
  `POST /cgi-bin/message/subscribe/send?access_token=...`.

The verifiers are written from the providers' documents on the receiving side (from the raw
request), independently of notify's signing code, so a mistake there shows up here. Answers
use the providers' own error shapes and codes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit

# Shared test credentials: known to the fakes and to the tests, never valid anywhere else.
ALIBABA_KEY_ID = "LTAI5tZhumengLocalTest"
ALIBABA_SECRET = "zhumeng-local-alibaba-test-secret"
ALIBABA_SIGN_NAME = "筑梦志愿"
TENCENT_SECRET_ID = "AKIDzhumengLocalTest0000000000000000"
TENCENT_SECRET_KEY = "zhumeng-local-tencent-test-key"
TENCENT_APP_ID = "1400000001"
TENCENT_SIGN_NAME = "筑梦志愿"
WECHAT_APP_ID = "wx0000zhumengtest"
WECHAT_SECRET = "zhumeng-local-wechat-test-secret"

MAINLAND_MOBILE = re.compile(r"^(\+?86)?1[3-9]\d{9}$")

Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Request:
    """One request as received: header names lower-cased, the query parsed (in order)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Accepted:
    """A message a fake provider took: where to, which template, with which parameters."""

    to: str
    template: str
    params: Any
    reference: str
    sign_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FakeProvider:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port unless given) in a daemon thread."""

    name = "fake"

    def __init__(self, port: int = 0, clock: Callable[[], float] = time.time) -> None:
        self._port = port
        self._clock = clock
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._failures: list[int] = []
        self.accepted: list[Accepted] = []
        self.refused: list[str] = []  # the error codes answered, in order
        self.calls = 0

    # ---- control ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, calls: int, status: int = 503) -> None:
        """The next `calls` requests get `status` (5xx) before anything is checked."""
        with self._lock:
            self._failures.extend([status] * calls)

    def received(self) -> list[Accepted]:
        with self._lock:
            return list(self.accepted)

    def start(self) -> FakeProvider:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer = fake._dispatch(self.command, self.path, self.headers, body)
                raw = json.dumps(answer, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # requests carry phone numbers: no access log

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"fake-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ---- requests ----------------------------------------------------------------------------

    def _dispatch(self, method: str, target: str, headers: Any, body: bytes) -> Answer:
        with self._lock:
            self.calls += 1
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return failure, self.unavailable(failure)
        parts = urlsplit(target)
        query = parse_qsl(parts.query, keep_blank_values=True)
        lowered = {k.lower(): v for k, v in headers.items()}
        status, answer = self.handle(Request(method, parts.path, query, lowered, body))
        if (code := self.error_code(answer)) is not None:
            with self._lock:
                self.refused.append(code)
        return status, answer

    def _accept(self, accepted: Accepted) -> None:
        with self._lock:
            self.accepted.append(accepted)

    def handle(self, req: Request) -> Answer:
        raise NotImplementedError

    def unavailable(self, status: int) -> dict[str, Any]:
        return {"error": "unavailable", "status": status}

    def error_code(self, answer: dict[str, Any]) -> str | None:
        return None


def _request_id() -> str:
    return secrets.token_hex(8).upper()


# ---- Alibaba Cloud SMS ------------------------------------------------------------------------


def _rfc3986(value: str) -> str:
    return quote(value, safe="-_.~")


class FakeAlibabaSms(FakeProvider):
    """dysmsapi `SendSms` with the V3 signature, as "V3 request body and signature mechanism"
    describes the server's check."""

    name = "alibaba-sms"
    REQUIRED_SIGNED = frozenset(
        {
            "host",
            "x-acs-action",
            "x-acs-content-sha256",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-version",
        }
    )
    MAX_SKEW_S = 15 * 60

    def __init__(
        self,
        port: int = 0,
        keys: dict[str, str] | None = None,
        sign_names: frozenset[str] = frozenset({ALIBABA_SIGN_NAME}),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(port, clock)
        self.keys = dict(keys or {ALIBABA_KEY_ID: ALIBABA_SECRET})
        self.sign_names = sign_names
        self._nonces: set[str] = set()

    def unavailable(self, status: int) -> dict[str, Any]:
        return {
            "RequestId": _request_id(),
            "Code": "ServiceUnavailable",
            "Message": "The request has failed due to a temporary failure of the server.",
        }

    def error_code(self, answer: dict[str, Any]) -> str | None:
        code = answer.get("Code")
        return None if code == "OK" else str(code)

    @staticmethod
    def _error(status: int, code: str, message: str) -> Answer:
        return status, {
            "RequestId": _request_id(),
            "HostId": "dysmsapi.aliyuncs.com",
            "Code": code,
            "Message": message,
        }

    def verify(self, req: Request) -> Answer | None:
        """None if the signature holds, else the provider's error answer."""
        headers, body = req.headers, req.body
        auth = headers.get("authorization", "")
        match = re.fullmatch(
            r"ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})",
            auth,
        )
        if not match:
            return self._error(
                400,
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards.",
            )
        key_id, signed_names, signature = match.groups()
        secret = self.keys.get(key_id)
        if secret is None:
            return self._error(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            )
        names = signed_names.split(";")
        if (
            names != sorted(names)
            or not set(names) >= self.REQUIRED_SIGNED
            or any(n not in headers for n in names)
        ):
            return self._error(400, "IncompleteSignature", "The signed headers are incomplete.")
        if headers["x-acs-content-sha256"] != hashlib.sha256(body).hexdigest():
            return self._error(
                400, "SignatureDoesNotMatch", "The body does not match x-acs-content-sha256."
            )
        try:
            at = datetime.strptime(headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return self._error(
                400, "InvalidTimeStamp.Format", "Specified time stamp does not conform to ISO8601."
            )
        if abs(self._clock() - at.timestamp()) > self.MAX_SKEW_S:
            return self._error(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        canonical_query = "&".join(f"{_rfc3986(k)}={_rfc3986(v)}" for k, v in sorted(req.query))
        canonical_headers = "".join(f"{n}:{headers[n].strip()}\n" for n in names)
        canonical = "\n".join(
            [
                req.method,
                req.path or "/",
                canonical_query,
                canonical_headers,
                signed_names,
                headers["x-acs-content-sha256"],
            ]
        )
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return self._error(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
            )
        with self._lock:
            nonce = headers["x-acs-signature-nonce"]
            if nonce in self._nonces:
                return self._error(
                    400, "SignatureNonceUsed", "Specified signature nonce was used already."
                )
            self._nonces.add(nonce)
        return None

    def handle(self, req: Request) -> Answer:
        refused = self.verify(req)
        headers = req.headers
        if refused is not None:
            return refused
        if headers["x-acs-action"] != "SendSms" or headers["x-acs-version"] != "2017-05-25":
            return self._error(404, "InvalidAction.NotFound", "Specified api is not found.")
        params = dict(req.query)
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                return self._error(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["SignName"] not in self.sign_names:
            return 200, self._business("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        try:
            template_params = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            template_params = None
        if not isinstance(template_params, dict):
            return 200, self._business("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        phones = params["PhoneNumbers"].split(",")
        if not all(MAINLAND_MOBILE.match(p) for p in phones):
            return 200, self._business("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        biz_id = f"{secrets.randbelow(10**15):015d}^0"
        for phone in phones:
            self._accept(
                Accepted(
                    phone,
                    params["TemplateCode"],
                    template_params,
                    biz_id,
                    params["SignName"],
                    {"OutId": params.get("OutId")},
                )
            )
        return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": _request_id()}

    @staticmethod
    def _business(code: str, message: str) -> dict[str, Any]:
        return {"Code": code, "Message": message, "RequestId": _request_id()}


# ---- Tencent Cloud SMS ----------------------------------------------------------------------


class FakeTencentSms(FakeProvider):
    """`SendSms` 2021-01-11 with TC3-HMAC-SHA256, checked as "Signature v3" describes it."""

    name = "tencent-sms"
    MAX_SKEW_S = 5 * 60

    def __init__(
        self,
        port: int = 0,
        keys: dict[str, str] | None = None,
        app_id: str = TENCENT_APP_ID,
        sign_names: frozenset[str] = frozenset({TENCENT_SIGN_NAME}),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(port, clock)
        self.keys = dict(keys or {TENCENT_SECRET_ID: TENCENT_SECRET_KEY})
        self.app_id = app_id
        self.sign_names = sign_names

    def unavailable(self, status: int) -> dict[str, Any]:
        return self._error("InternalError", "An internal error occurred.")

    def error_code(self, answer: dict[str, Any]) -> str | None:
        response = answer.get("Response", {})
        if "Error" in response:
            return str(response["Error"].get("Code"))
        codes = [s.get("Code") for s in response.get("SendStatusSet", [])]
        bad = [c for c in codes if c != "Ok"]
        return str(bad[0]) if bad else None

    @staticmethod
    def _error(code: str, message: str) -> dict[str, Any]:
        return {
            "Response": {"Error": {"Code": code, "Message": message}, "RequestId": _request_id()}
        }

    def verify(self, headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
        if headers.get("x-tc-action") != "SendSms":
            return self._error("InvalidAction", "The action is not supported.")
        if headers.get("x-tc-version") != "2021-01-11":
            return self._error("NoSuchVersion", "The API version does not exist.")
        if not headers.get("x-tc-region"):
            return self._error("MissingParameter", "The X-TC-Region header is missing.")
        try:
            timestamp = int(headers.get("x-tc-timestamp", ""))
        except ValueError:
            return self._error("InvalidParameter", "X-TC-Timestamp is not a UNIX time.")
        if abs(self._clock() - timestamp) > self.MAX_SKEW_S:
            return self._error("AuthFailure.SignatureExpire", "The signature has expired.")
        match = re.fullmatch(
            r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z]+)/tc3_request, "
            r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
            headers.get("authorization", ""),
        )
        if not match:
            return self._error(
                "AuthFailure.InvalidAuthorization", "The Authorization header is malformed."
            )
        secret_id, date, service, signed_names, signature = match.groups()
        secret_key = self.keys.get(secret_id)
        if secret_key is None:
            return self._error("AuthFailure.SecretIdNotFound", "The SecretId does not exist.")
        names = signed_names.split(";")
        utc_date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
        if (
            service != "sms"
            or date != utc_date
            or not {"content-type", "host"} <= set(names)
            or any(n not in headers for n in names)
        ):
            return self._error(
                "AuthFailure.SignatureFailure", "The credential scope or signed headers are wrong."
            )
        entries = sorted((n, headers[n].strip().lower()) for n in names)
        canonical = "\n".join(
            [
                "POST",
                "/",
                "",
                "".join(f"{n}:{v}\n" for n, v in entries),
                ";".join(n for n, _ in entries),
                hashlib.sha256(body).hexdigest(),
            ]
        )
        to_sign = (
            f"TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n"
            + hashlib.sha256(canonical.encode()).hexdigest()
        )
        key = f"TC3{secret_key}".encode()
        for part in (date, service, "tc3_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return self._error(
                "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
            )
        return None

    def handle(self, req: Request) -> Answer:
        headers, body = req.headers, req.body
        if req.method != "POST" or not headers.get("content-type", "").startswith(
            "application/json"
        ):
            return 200, self._error("InvalidParameter", "Only JSON POST requests are accepted.")
        refused = self.verify(headers, body)
        if refused is not None:
            return 200, refused
        try:
            request = json.loads(body)
        except ValueError:
            return 200, self._error("FailedOperation.JsonParseFail", "The body is not JSON.")
        if request.get("SmsSdkAppId") != self.app_id:
            return 200, self._error(
                "InvalidParameterValue.SdkAppIdNotExist", "SdkAppId does not exist."
            )
        if request.get("SignName") not in self.sign_names:
            return 200, self._error(
                "FailedOperation.SignatureIncorrectOrUnapproved", "The signature is not approved."
            )
        params = request.get("TemplateParamSet") or []
        if not request.get("TemplateId") or not all(isinstance(p, str) for p in params):
            return 200, self._error(
                "FailedOperation.TemplateIncorrectOrUnapproved", "The template is not approved."
            )
        statuses = []
        for phone in request.get("PhoneNumberSet") or []:
            if isinstance(phone, str) and MAINLAND_MOBILE.match(phone) and phone.startswith("+86"):
                serial = f"2028:{secrets.randbelow(10**18):018d}"
                self._accept(
                    Accepted(
                        phone,
                        str(request["TemplateId"]),
                        list(params),
                        serial,
                        request["SignName"],
                        {"SessionContext": request.get("SessionContext")},
                    )
                )
                statuses.append(
                    {
                        "SerialNo": serial,
                        "PhoneNumber": phone,
                        "Fee": 1,
                        "SessionContext": request.get("SessionContext", ""),
                        "Code": "Ok",
                        "Message": "send success",
                        "IsoCode": "CN",
                    }
                )
            else:
                statuses.append(
                    {
                        "SerialNo": "",
                        "PhoneNumber": str(phone),
                        "Fee": 0,
                        "SessionContext": request.get("SessionContext", ""),
                        "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                        "Message": "incorrect number format",
                        "IsoCode": "",
                    }
                )
        return 200, {"Response": {"SendStatusSet": statuses, "RequestId": _request_id()}}


# ---- WeChat -------------------------------------------------------------------------------------


class FakeWeChat(FakeProvider):
    """The access-token endpoint and subscription messages of the WeChat server API."""

    name = "wechat"
    VALUE_LIMITS: ClassVar[dict[str, int]] = {
        "thing": 20,
        "character_string": 32,
        "phrase": 5,
        "name": 10,
    }

    def __init__(
        self,
        port: int = 0,
        apps: dict[str, str] | None = None,
        expires_in: int = 7200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(port, clock)
        self.apps = dict(apps or {WECHAT_APP_ID: WECHAT_SECRET})
        self.expires_in = expires_in
        self.refusing: set[str] = set()  # openids that refused subscription messages
        self.tokens_issued = 0
        self._tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)

    def unavailable(self, status: int) -> dict[str, Any]:
        return {"errcode": -1, "errmsg": "system error"}

    def error_code(self, answer: dict[str, Any]) -> str | None:
        code = answer.get("errcode", 0)
        return None if code == 0 else str(code)

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (-> errcode 42001)."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)

    def revoke_tokens(self) -> None:
        """Every token issued so far becomes invalid (-> errcode 40001), as when another
        process fetched a new one."""
        with self._lock:
            self._tokens.clear()

    def handle(self, req: Request) -> Answer:
        params = dict(req.query)
        if req.method == "GET" and req.path == "/cgi-bin/token":
            return 200, self._token(params)
        if req.method == "POST" and req.path == "/cgi-bin/message/subscribe/send":
            return 200, self._subscribe_send(params.get("access_token"), req.body)
        return 404, {"errcode": 404, "errmsg": "not found"}

    def _token(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        secret = self.apps.get(params.get("appid", ""))
        if secret is None:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if not hmac.compare_digest(secret, params.get("secret", "")):
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = self._clock() + self.expires_in
            self.tokens_issued += 1
        return {"access_token": token, "expires_in": self.expires_in}

    def _subscribe_send(self, token: str | None, body: bytes) -> dict[str, Any]:
        if not token:
            return {"errcode": 41001, "errmsg": "access_token missing"}
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}
        if self._clock() >= expiry:
            return {"errcode": 42001, "errmsg": "access_token expired"}
        try:
            request = json.loads(body)
        except ValueError:
            return {"errcode": 47001, "errmsg": "data format error"}
        data = request.get("data")
        if (
            not request.get("touser")
            or not request.get("template_id")
            or not isinstance(data, dict)
        ):
            return {"errcode": 47001, "errmsg": "data format error"}
        if not all(isinstance(v, dict) and isinstance(v.get("value"), str) for v in data.values()):
            return {"errcode": 47003, "errmsg": "argument invalid! data.value invalid"}
        for key, item in data.items():
            limit = self.VALUE_LIMITS.get(key.rstrip("0123456789"))
            if limit is not None and len(item["value"]) > limit:
                return {"errcode": 47003, "errmsg": f"argument invalid! data.{key}.value too long"}
        if request["touser"] in self.refusing:
            return {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
        msgid = secrets.randbelow(10**15)
        self._accept(
            Accepted(
                request["touser"],
                request["template_id"],
                {k: v["value"] for k, v in data.items()},
                str(msgid),
                extra={
                    "page": request.get("page"),
                    "miniprogram_state": request.get("miniprogram_state"),
                },
            )
        )
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}
