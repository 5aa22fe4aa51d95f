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
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from wod.registry import rows, security
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
    row_json,
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
    engine: Engine
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

    def reading(self) -> Connection:
        """A connection for reads only: no transaction to commit (``with`` closes it)."""
        return self.engine.connect()

    def writing(self) -> AbstractContextManager[Connection]:
        """A connection in a transaction, committed when the block ends without error."""
        return self.engine.begin()


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


def _token_user(state: RegistryState, request: Request) -> int:
    """The user id of the request's token, its signature and expiry checked; refuses like
    the api-db's ``verifyToken``."""
    token = request.headers.get(TOKEN_HEADER)
    if not token:
        raise _Refusal(_json(403, {"message": "No token provided!"}))
    user_id = security.token_user(token, state.config.secret)
    if user_id is None:
        raise _Refusal(_json(401, {"message": "Unauthorized!"}))
    return user_id


def _roles(conn: Connection, user_id: int) -> list[str]:
    """The roles of ``user_id`` as the database holds them now: read on every call, on the
    caller's connection, never cached (``wod registry add-user`` changes them from another
    process, and a demoted user must be refused at once); refuses a deleted user like the
    api-db's ``verifyToken``."""
    roles = rows.user_roles(conn, user_id)
    if roles is None:
        raise _Refusal(_json(401, {"message": "Unauthorized!"}))
    return roles


def _require_privileged(conn: Connection, user_id: int) -> None:
    if not PRIVILEGED_ROLES & set(_roles(conn, user_id)):
        raise _Refusal(_json(403, {"message": "Require Moderator or Admin Role!"}))


@dataclass(frozen=True)
class _RawBody:
    """A request body as received: its media type and bytes (read on the event loop,
    parsed by :meth:`parse` where the route decides)."""

    media: str
    data: bytes

    def parse(self) -> dict[str, Any]:
        """The body as the api-db's ``bodyParser.json`` + ``urlencoded`` read it: by its
        Content-Type; any other type is no body at all (``{}``)."""
        if self.media == "application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(self.data.decode(), keep_blank_values=True)
            except UnicodeDecodeError:
                raise _Refusal(_json(400, {"error": {"message": "malformed form body"}})) from None
            form: dict[str, Any] = {}
            for key, value in pairs:
                if key in form:  # a repeated key is an array, as qs reads it
                    before = form[key]
                    value = [*(before if isinstance(before, list) else [before]), value]
                form[key] = value
            return form
        if self.media != "application/json":
            return {}
        try:
            data = json.loads(self.data or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise _Refusal(_json(400, {"error": {"message": "malformed JSON body"}})) from None
        if not isinstance(data, dict):
            raise _Refusal(_json(400, {"error": {"message": "expected a JSON object"}}))
        return data


async def _raw_body(request: Request) -> _RawBody:
    """The body's media type and, when it is one the api-db reads, its bytes."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in ("application/json", "application/x-www-form-urlencoded"):
        return _RawBody(media, await request.body())
    return _RawBody(media, b"")


async def _body(request: Request) -> dict[str, Any]:
    return (await _raw_body(request)).parse()


def _popular(session: Session) -> set[str]:
    """Top ten session names by distinct registered e-mails (the api-db's ``popular``)."""
    pairs = session.execute(select(Customer.email, Customer.sessionName).distinct()).all()
    counts = Counter(name for _email, name in pairs if name)
    return {name for name, _n in counts.most_common(10)}


def create_app(config: RegistryConfig) -> FastAPI:
    """The registry app on ``config.db_url`` (tables created if missing)."""
    engine = make_engine(config.db_url)
    ensure_schema(engine)
    state = RegistryState(config=config, engine=engine, sessions=make_sessionmaker(engine))
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
        user_id = _token_user(state, request)
        with state.session() as session:
            _roles(session.connection(), user_id)
            found = session.scalars(select(Customer).order_by(Customer.id))
            return _json(200, [row.to_dict() for row in found])

    def student_json(data: dict[str, Any], roles: list[str]) -> dict[str, Any]:
        if not PRIVILEGED_ROLES & set(roles):
            data.pop("password", None)
        return data

    @app.get("/api/students")
    def students(request: Request) -> Response:
        user_id = _token_user(state, request)
        with state.session() as session:
            roles = _roles(session.connection(), user_id)
            found = session.scalars(select(Student).order_by(Student.id))
            return _json(200, [student_json(row.to_dict(), roles) for row in found])

    @app.get("/api/students/{student_id}")
    def student(student_id: str, request: Request) -> Response:
        user_id = _token_user(state, request)
        key = _int_id(student_id)
        with state.reading() as conn:
            roles = _roles(conn, user_id)
            row = rows.read_row(conn, Student, key) if key is not None else None
        if row is None:
            return _text(400, "Student Not Found")
        return _json(200, student_json(row_json(Student, row), roles))

    @app.get("/api/customers/{customer_id}")
    def customer(customer_id: str, request: Request) -> Response:
        user_id = _token_user(state, request)
        key = _int_id(customer_id)
        with state.reading() as conn:
            _roles(conn, user_id)
            row = rows.read_row(conn, Customer, key) if key is not None else None
        if row is None:
            return _text(400, "Customer Not Found")
        return _json(200, row_json(Customer, row))

    async def update(model: type[Base], raw_id: str, request: Request) -> Response:
        user_id = _token_user(state, request)
        body = await _raw_body(request)
        return await run_in_threadpool(apply_update, model, raw_id, user_id, body)

    def apply_update(model: type[Base], raw_id: str, user_id: int, body: _RawBody) -> Response:
        """The roles check and the update in one transaction (one thread hop a call)."""
        key = _int_id(raw_id)
        with state.writing() as conn:
            _require_privileged(conn, user_id)
            fields_in = body.parse()
            row = rows.read_row(conn, model, key) if key is not None else None
            if row is None:
                # The api-db dereferences a missing row; its TypeError serialises as {}.
                return _json(400, {"error": {}})
            try:
                fields = coerce_fields(model, fields_in)
            except FieldError as exc:
                return _json(400, {"error": {"message": str(exc)}})
            return _json(200, row_json(model, rows.update_row(conn, model, row, fields)))

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
