"""The registry's tables, shaped like the upstream api-db's (wod-api-db, Sequelize models).

Column names are the api-db's JSON field names (camelCase), so a row serialises to the
JSON the backend reads from the real api-db.  Arrays (``range``, ``category``) are JSON
columns, which work on SQLite and PostgreSQL alike.

``coerce_fields`` converts an incoming update the way Sequelize does for the api-db:
``"true"``/``"false"`` strings become booleans, numeric strings become integers; a value
that cannot be converted raises :class:`FieldError` (the api-db would hang on it; we say 400).
Unknown fields are ignored, as Sequelize's ``update`` ignores them.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from wod.values import is_bool_word, truthy


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class FieldError(ValueError):
    """An update value that does not fit its column."""


class Base(DeclarativeBase):
    """Common serialisation: every column, by its api-db name, JSON-ready."""

    #: Fields never sent back in a JSON answer.
    hidden: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return row_json(type(self), {c.key: getattr(self, c.key) for c in self.__table__.columns})


def row_json(model: type[Base], values: dict[str, Any]) -> dict[str, Any]:
    """``model``'s row from its column ``values`` as the api-db answers it: every column
    but the hidden ones, in table order, times in UTC with milliseconds."""
    out: dict[str, Any] = {}
    for column in model.__table__.columns:
        if column.key in model.hidden:
            continue
        value = values[column.key]
        if isinstance(value, dt.datetime):
            value = value.isoformat(timespec="milliseconds") + "Z"
        out[column.key] = value
    return out


def _bool() -> Mapped[bool]:
    return mapped_column(Boolean, nullable=False, default=False)


def _created() -> Mapped[dt.datetime]:
    return mapped_column(DateTime, nullable=False, default=utcnow)


def _updated() -> Mapped[dt.datetime]:
    return mapped_column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)


class Workshop(Base):
    __tablename__ = "workshops"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(255))
    notebook: Mapped[str | None] = mapped_column(String(255), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    capacity: Mapped[int | None] = mapped_column(Integer)
    priority: Mapped[int | None] = mapped_column(Integer)
    range: Mapped[list[int] | None] = mapped_column(JSON)
    reset: Mapped[bool] = _bool()
    varpass: Mapped[bool] = _bool()
    ldap: Mapped[bool] = _bool()
    monoappliance: Mapped[bool] = _bool()
    multiappliance: Mapped[bool] = _bool()
    beta: Mapped[bool] = _bool()
    sessionId: Mapped[int | None] = mapped_column(Integer)
    sessionType: Mapped[str | None] = mapped_column(String(255))
    location: Mapped[str | None] = mapped_column(String(255))
    avatar: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(255))
    preRequisite: Mapped[str | None] = mapped_column(Text)
    compile: Mapped[str | None] = mapped_column(String(1234))
    replayLink: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = _bool()
    workshopImg: Mapped[str | None] = mapped_column(String(255))
    badgeImg: Mapped[str | None] = mapped_column(String(255))
    replayId: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[list[str] | None] = mapped_column(JSON)
    alternateLocation: Mapped[list[str] | None] = mapped_column(JSON)
    duration: Mapped[int | None] = mapped_column(Integer)
    presenter: Mapped[str | None] = mapped_column(String(255))
    createdAt: Mapped[dt.datetime] = _created()
    updatedAt: Mapped[dt.datetime] = _updated()


class Student(Base):
    __tablename__ = "students"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    url: Mapped[str | None] = mapped_column(String(255))
    username: Mapped[str | None] = mapped_column(String(255))
    password: Mapped[str | None] = mapped_column(String(255))
    assigned: Mapped[bool] = _bool()
    location: Mapped[str | None] = mapped_column(String(255))
    createdAt: Mapped[dt.datetime] = _created()
    updatedAt: Mapped[dt.datetime] = _updated()


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    company: Mapped[str | None] = mapped_column(String(255))
    sessionName: Mapped[str | None] = mapped_column(String(255))
    sessionType: Mapped[str | None] = mapped_column(String(255))
    location: Mapped[str | None] = mapped_column(String(255))
    proxy: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = _bool()
    cleaned: Mapped[bool] = _bool()
    lastEmailSent: Mapped[str | None] = mapped_column(String(255))
    notebook: Mapped[str | None] = mapped_column(String(255))
    hours: Mapped[int | None] = mapped_column(Integer)
    startDate: Mapped[dt.datetime | None] = mapped_column(DateTime)
    endDate: Mapped[dt.datetime | None] = mapped_column(DateTime)
    specialBadgeId: Mapped[int | None] = mapped_column(Integer)
    completionPercentage: Mapped[int | None] = mapped_column(Integer)
    studentId: Mapped[int | None] = mapped_column(ForeignKey("students.id"))
    createdAt: Mapped[dt.datetime] = _created()
    updatedAt: Mapped[dt.datetime] = _updated()


class User(Base):
    """An api-db login (the backend logs in as a moderator)."""

    __tablename__ = "users"
    hidden = ("password",)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    email: Mapped[str | None] = mapped_column(String(255))
    password: Mapped[str] = mapped_column(String(255), nullable=False)  # a hash, see security
    roles: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    createdAt: Mapped[dt.datetime] = _created()
    updatedAt: Mapped[dt.datetime] = _updated()


#: Columns an update may never touch.
PROTECTED = frozenset({"id", "createdAt", "updatedAt"})


def _coerce(column: Any, value: Any) -> Any:
    if value is None:
        if not column.nullable:
            raise FieldError(f"{column.key} cannot be null")
        return None
    kind = column.type
    if isinstance(kind, Boolean):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip() and is_bool_word(value):
            return truthy(value)
        raise FieldError(f"{column.key}: {value!r} is not a boolean")
    if isinstance(kind, Integer):
        if isinstance(value, bool):
            raise FieldError(f"{column.key}: {value!r} is not an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise FieldError(f"{column.key}: {value!r} is not an integer")
    if isinstance(kind, DateTime):
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise FieldError(f"{column.key}: {value!r} is not a date") from None
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
            return parsed
        raise FieldError(f"{column.key}: {value!r} is not a date")
    if isinstance(kind, JSON):
        if not isinstance(value, list):
            raise FieldError(f"{column.key}: {value!r} is not an array")
        return value
    # String / Text: scalars are stored as their text (false -> "false").
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise FieldError(f"{column.key}: {value!r} is not a string")


def coerce_fields(model: type[Base], fields: dict[str, Any]) -> dict[str, Any]:
    """The known, updatable fields of ``fields`` converted to ``model``'s column types."""
    columns = {c.key: c for c in model.__table__.columns}
    out: dict[str, Any] = {}
    for key, value in fields.items():
        column = columns.get(key)
        if column is None or key in PROTECTED or key in model.hidden:
            continue
        out[key] = _coerce(column, value)
    return out


def _private_file(database: str | None) -> None:
    """Create the SQLite file ``database`` 0600, or take group/other access from one that
    exists (in-memory databases have no file)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    fd = os.open(database, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and mode 0600 (they
    hold participants' e-mails and the seats' passwords; SQLite gives its WAL and shared
    memory files the database file's mode)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, future=True
        )
        _private_file(engine.url.database)

        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, future=True, pool_pre_ping=True)


def ensure_schema(engine: Engine) -> None:
    """Create missing tables (idempotent)."""
    Base.metadata.create_all(engine)


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
