"""One row by id, read and updated on a Connection: the routes every backend job calls.

A job calls ``PUT /student|customer/{id}`` and ``GET /customers/{id}`` a few times; through
the ORM (a Session, its identity map, the unit of work) each call spent more CPU than its
SQL.  These functions run statements built once, so SQLAlchemy's compiled cache answers
every call, and keep the ORM's observable rules: an update writes only the columns whose
value changes (compared with ``==``, as the ORM's flush does), and only then do the
columns' ``onupdate`` values (``updatedAt``) move.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, select

from wod.registry.models import Base, Customer, Student, User, Workshop

#: The bound parameter naming the row (not a column name: the update's SET takes those).
ROW_ID = "row_id"

_ROLES = select(User.__table__.c.roles).where(User.__table__.c.id == bindparam(ROW_ID))
_READS = {
    model: select(model.__table__).where(model.__table__.c.id == bindparam(ROW_ID))
    for model in (Workshop, Student, Customer)
}
# No .values(): the SET clause is the parameters given (one compiled form per set of
# columns, cached), plus the columns' onupdate values.
_UPDATES = {
    model: model.__table__.update().where(model.__table__.c.id == bindparam(ROW_ID))
    for model in (Workshop, Student, Customer)
}


def user_roles(conn: Connection, user_id: int) -> list[str] | None:
    """The roles of user ``user_id``; ``None`` when there is no such user."""
    row = conn.execute(_ROLES, {ROW_ID: user_id}).first()
    return None if row is None else list(row.roles)


def read_row(conn: Connection, model: type[Base], key: int) -> dict[str, Any] | None:
    """Every column of ``model``'s row ``key`` (by column key), or ``None``."""
    row = conn.execute(_READS[model], {ROW_ID: key}).mappings().first()
    return None if row is None else dict(row)


def update_row(
    conn: Connection, model: type[Base], row: dict[str, Any], fields: dict[str, Any]
) -> dict[str, Any]:
    """Write the ``fields`` whose value differs from ``row``'s; returns the row as it now
    is.  Nothing changed, nothing written (``updatedAt`` stays)."""
    changed = {key: value for key, value in fields.items() if (row[key] == value) is not True}
    if not changed:
        return row
    result = conn.execute(_UPDATES[model], {ROW_ID: row["id"], **changed})
    written = result.last_updated_params()  # by column name, which is the key here
    return {key: written.get(key, value) for key, value in row.items()}
