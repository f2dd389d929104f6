"""RFC 9457 problem details: every error a client can cause is a 4xx with a problem body."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("zhumeng.problems")


class Problem(Exception):
    """An error meant for the client. Raise a subclass from domain or app code."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class Unprocessable(Problem):
    status, slug, title = 422, "unprocessable", "The request cannot be processed"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Not allowed"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "unavailable", "Not ready"


def problem_response(
    request: Request, status: int, slug: str, title: str, detail: str, **ext: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://zhumeng.example/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update(ext)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.slug, exc.title, exc.detail, **exc.extensions
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return problem_response(
            request,
            422,
            "validation",
            "Invalid request",
            "the request did not validate",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            request, exc.status_code, f"http-{exc.status_code}", str(exc.detail), str(exc.detail)
        )

    @app.exception_handler(ConnectionFailure)
    async def _database_unreachable(request: Request, exc: ConnectionFailure) -> JSONResponse:
        # a dropped or unreachable database connection is the server's trouble and passes:
        # 503 says "retry", and a POST retried with its Idempotency-Key is applied once
        log.warning("database connection failed on %s: %s", request.url.path, type(exc).__name__)
        response = problem_response(
            request,
            503,
            "unavailable",
            "Temporarily unavailable",
            "the database did not answer; retry (a POST with the same Idempotency-Key)",
        )
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(
            request, 500, "internal", "Internal error", "an unexpected error was logged"
        )
