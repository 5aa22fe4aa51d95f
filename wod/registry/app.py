"""The registry's HTTP API: the api-db routes the backend calls, under ``/api``.

Paths, JSON field names, status codes and error bodies follow the upstream api-db as
observed (SPEC 3.6), so the backend cannot tell the two apart:

=========================  =====================  =============================================
route                      auth                   failure
=========================  =====================  =============================================
POST /api/login            none                   401 ``{"accessToken":null,"message":...}``,
                                                  404 ``{"message":"User Not found."}``
GET  /api/workshops        none                   --
GET  /api/workshops/{id}   none                   400 text ``Workshop Not Found``
GET  /api/customers        token                  --
GET  /api/customers/{id}   token                  400 text ``Customer Not Found``
GET  /api/students         token                  --
GET  /api/students/{id}    token                  400 text ``Student Not Found``
PUT  /api/student/{id}     token + moderator      400 ``{"error":{}}`` (unknown id)
PUT  /api/customer/{id}    or admin               403 ``{"message":"Require Moderator or ...``
PUT  /api/workshop/{id}
POST /api/customer         none                   202 text when no seat is free
=========================  =====================  =============================================

Lists are every row, ordered by id, as the api-db's ``findAll``.  A student row carries the
seat's current password (what the api-db mails); the registry sends it only to tokens of
the moderator or admin role (which set it), other tokens get the row without it.

Missing token: 403 ``{"message":"No token provided!"}``; bad or expired: 401
``{"message":"Unauthorized!"}``.  Where the api-db hangs on a value PostgreSQL rejects, the
registry answers 400 ``{"error":{"message":...}}`` instead.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from wod.registry import security
from wod.registry.models import (
    Base,
    Customer,
    FieldError,
    Student,
    User,
    Workshop,
    coerce_fields,
    ensure_schema,
    make_engine,
    make_sessionmaker,
)
from wod.registry.seats import NoSeat, register_customer

TOKEN_HEADER = "x-access-token"
PRIVILEGED_ROLES = frozenset({"moderator", "admin"})


@dataclass
class RegistryConfig:
    """Everything the app needs; built by the CLI or a test, never read from globals."""

    db_url: str
    secret: str = field(default_factory=security.new_secret, repr=False)
    token_ttl: float = 180.0
    base_stdid: int = 0


@dataclass
class RegistryState:
    """Per-app state: the database and the signing secret (rotatable at run time)."""

    config: RegistryConfig
    sessions: sessionmaker
    logins: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_login(self) -> None:
        with self._lock:
            self.logins += 1

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session


class _Refusal(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _json(status: int, body: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content=body)


def _text(status: int, body: str) -> Response:
    # Express's res.send(string) answers text/html.
    return Response(status_code=status, content=body, media_type="text/html; charset=utf-8")


def _int_id(raw: str) -> int | None:
    """A row id from the path; None when it is not one (not a number, or beyond the
    databases' 64-bit integers: no row has it)."""
    try:
        key = int(raw)
    except ValueError:
        return None
    return key if -(2**63) <= key < 2**63 else None


def _user_roles(state: RegistryState, request: Request) -> list[str]:
    """The roles of the token's user; refuses like the api-db's ``verifyToken``."""
    token = request.headers.get(TOKEN_HEADER)
    if not token:
        raise _Refusal(_json(403, {"message": "No token provided!"}))
    user_id = security.token_user(token, state.config.secret)
    if user_id is None:
        raise _Refusal(_json(401, {"message": "Unauthorized!"}))
    with state.session() as session:
        user = session.get(User, user_id)
        if user is None:
            raise _Refusal(_json(401, {"message": "Unauthorized!"}))
        return list(user.roles)


def _require_privileged(state: RegistryState, request: Request) -> None:
    if not PRIVILEGED_ROLES & set(_user_roles(state, request)):
        raise _Refusal(_json(403, {"message": "Require Moderator or Admin Role!"}))


async def _body(request: Request) -> dict[str, Any]:
    """The body as the api-db's ``bodyParser.json`` + ``urlencoded`` read it: by its
    Content-Type; any other type is no body at all (``{}``)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            raise _Refusal(_json(400, {"error": {"message": "malformed form body"}})) from None
        form: dict[str, Any] = {}
        for key, value in pairs:
            if key in form:  # a repeated key is an array, as qs reads it
                before = form[key]
                value = [*(before if isinstance(before, list) else [before]), value]
            form[key] = value
        return form
    if media != "application/json":
        return {}
    try:
        data = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise _Refusal(_json(400, {"error": {"message": "malformed JSON body"}})) from None
    if not isinstance(data, dict):
        raise _Refusal(_json(400, {"error": {"message": "expected a JSON object"}}))
    return data


def _popular(session: Session) -> set[str]:
    """Top ten session names by distinct registered e-mails (the api-db's ``popular``)."""
    pairs = session.execute(select(Customer.email, Customer.sessionName).distinct()).all()
    counts = Counter(name for _email, name in pairs if name)
    return {name for name, _n in counts.most_common(10)}


def create_app(config: RegistryConfig) -> FastAPI:
    """The registry app on ``config.db_url`` (tables created if missing)."""
    engine = make_engine(config.db_url)
    ensure_schema(engine)
    state = RegistryState(config=config, sessions=make_sessionmaker(engine))
    app = FastAPI(
        title="wod registry (api-db compatible)",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.registry = state

    @app.exception_handler(_Refusal)
    async def _refused(_request: Request, exc: _Refusal) -> Response:
        return exc.response

    @app.post("/api/login")
    async def login(request: Request) -> Response:
        # Password hashing is deliberately slow: keep it off the event loop.
        return await run_in_threadpool(check_login, await _body(request))

    def check_login(body: dict[str, Any]) -> Response:
        username, password = body.get("username"), body.get("password")
        with state.session() as session:
            user = None
            if isinstance(username, str):
                user = session.scalars(select(User).where(User.username == username)).first()
            if user is None:
                return _json(404, {"message": "User Not found."})
            if not isinstance(password, str) or not security.verify_password(
                password, user.password
            ):
                return _json(401, {"accessToken": None, "message": "Invalid Password!"})
            state.count_login()
            token = security.issue_token(user.id, state.config.secret, state.config.token_ttl)
            return _json(
                200,
                {
                    "id": user.id,
                    "username": user.username,
                    "email": user.email,
                    "roles": [f"ROLE_{r.upper()}" for r in user.roles],
                    "accessToken": token,
                },
            )

    @app.get("/api/workshops")
    def workshops(active: str | None = None) -> Response:
        with state.session() as session:
            query = select(Workshop).order_by(Workshop.priority, Workshop.id)
            if active is not None:
                query = query.where(Workshop.active.is_(active.lower() in ("true", "1")))
            popular = _popular(session)
            rows = [{**w.to_dict(), "popular": w.name in popular} for w in session.scalars(query)]
        return _json(200, rows)

    @app.get("/api/workshops/{workshop_id}")
    def workshop(workshop_id: str) -> Response:
        key = _int_id(workshop_id)
        with state.session() as session:
            row = session.get(Workshop, key) if key is not None else None
            if row is None:
                return _text(400, "Workshop Not Found")
            return _json(200, row.to_dict())

    @app.get("/api/customers")
    def customers(request: Request) -> Response:
        _user_roles(state, request)
        with state.session() as session:
            rows = session.scalars(select(Customer).order_by(Customer.id))
            return _json(200, [row.to_dict() for row in rows])

    def student_json(row: Student, roles: list[str]) -> dict[str, Any]:
        data = row.to_dict()
        if not PRIVILEGED_ROLES & set(roles):
            data.pop("password", None)
        return data

    @app.get("/api/students")
    def students(request: Request) -> Response:
        roles = _user_roles(state, request)
        with state.session() as session:
            rows = session.scalars(select(Student).order_by(Student.id))
            return _json(200, [student_json(row, roles) for row in rows])

    @app.get("/api/students/{student_id}")
    def student(student_id: str, request: Request) -> Response:
        roles = _user_roles(state, request)
        key = _int_id(student_id)
        with state.session() as session:
            row = session.get(Student, key) if key is not None else None
            if row is None:
                return _text(400, "Student Not Found")
            return _json(200, student_json(row, roles))

    @app.get("/api/customers/{customer_id}")
    def customer(customer_id: str, request: Request) -> Response:
        _user_roles(state, request)
        key = _int_id(customer_id)
        with state.session() as session:
            row = session.get(Customer, key) if key is not None else None
            if row is None:
                return _text(400, "Customer Not Found")
            return _json(200, row.to_dict())

    async def update(model: type[Base], raw_id: str, request: Request) -> Response:
        await run_in_threadpool(_require_privileged, state, request)
        body = await _body(request)
        return await run_in_threadpool(apply_update, model, raw_id, body)

    def apply_update(model: type[Base], raw_id: str, body: dict[str, Any]) -> Response:
        key = _int_id(raw_id)
        with state.session() as session:
            row = session.get(model, key) if key is not None else None
            if row is None:
                # The api-db dereferences a missing row; its TypeError serialises as {}.
                return _json(400, {"error": {}})
            try:
                fields = coerce_fields(model, body)
            except FieldError as exc:
                return _json(400, {"error": {"message": str(exc)}})
            for name, value in fields.items():
                setattr(row, name, value)
            session.flush()
            return _json(200, row.to_dict())

    @app.put("/api/student/{student_id}")
    async def update_student(student_id: str, request: Request) -> Response:
        return await update(Student, student_id, request)

    @app.put("/api/customer/{customer_id}")
    async def update_customer(customer_id: str, request: Request) -> Response:
        return await update(Customer, customer_id, request)

    @app.put("/api/workshop/{workshop_id}")
    async def update_workshop(workshop_id: str, request: Request) -> Response:
        return await update(Workshop, workshop_id, request)

    @app.post("/api/customer")
    async def register(request: Request) -> Response:
        body = await _body(request)
        title, name, email = body.get("title"), body.get("name"), body.get("email")
        if not all(isinstance(v, str) and v for v in (title, name, email)):
            return _json(400, {"error": {"message": "title, name and email are required"}})
        with state.session() as session:
            shop = session.scalars(
                select(Workshop)
                .where((Workshop.name == title) | (Workshop.notebook == title))
                .order_by(Workshop.id)
            ).first()
            if shop is None:
                return _json(400, {"error": {"message": "Workshop Not Found"}})
            try:
                row = register_customer(
                    session,
                    shop,
                    name=name,
                    email=email,
                    company=body.get("company"),
                    base_stdid=state.config.base_stdid,
                )
            except NoSeat as exc:
                return _text(202, str(exc))
            return _json(
                200,
                {
                    "id": row.id,
                    "name": row.name,
                    "email": row.email,
                    "studentId": row.studentId,
                    "proxy": row.proxy,
                },
            )

    return app
