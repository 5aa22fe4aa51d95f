"""Seats: giving a participant a student of a workshop's range, and taking it back.

Registration works like the api-db's ``POST /customer``: the first unassigned student whose
id lies in the workshop's range (shifted by the location's ``base_stdid``) is assigned, the
customer row points at it (``studentId``) and the workshop's capacity drops by one.
This is the seed of the participant loop (registration, expiry -> CLEANUP, failed
deployment -> PURGE) a later issue grows.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from wod.registry.models import Customer, Student, Workshop, utcnow


class NoSeat(Exception):
    """No seat can be given (workshop full or every student assigned)."""


def workshop_by_notebook(session: Session, notebook: str) -> Workshop | None:
    return session.scalars(
        select(Workshop).where(Workshop.notebook == notebook).order_by(Workshop.id)
    ).first()


def free_student(session: Session, workshop: Workshop, base_stdid: int) -> Student | None:
    """The lowest unassigned student of ``workshop``'s range, if any."""
    if not workshop.range or len(workshop.range) != 2:
        return None
    low, high = (int(x) + base_stdid for x in workshop.range)
    return session.scalars(
        select(Student)
        .where(Student.assigned.is_(False), Student.id.between(low, high))
        .order_by(Student.id)
    ).first()


def register_customer(
    session: Session,
    workshop: Workshop,
    *,
    name: str,
    email: str,
    base_stdid: int = 0,
    company: str | None = None,
    hours: int | None = None,
) -> Customer:
    """Assign a seat of ``workshop`` to a new customer; raises :class:`NoSeat`."""
    if workshop.capacity is not None and workshop.capacity <= 0:
        raise NoSeat("Registration full, capacity exceeded. Please try again later")
    student = free_student(session, workshop, base_stdid)
    if student is None:
        raise NoSeat("Registration full, no student account. Please try again later")
    duration = hours if hours is not None else (workshop.duration or 4)
    start = utcnow()
    customer = Customer(
        name=name,
        email=email,
        company=company,
        sessionName=workshop.name,
        notebook=workshop.notebook,
        location=workshop.location,
        hours=duration,
        startDate=start,
        endDate=start + dt.timedelta(hours=duration),
        studentId=student.id,
        lastEmailSent=None,
    )
    session.add(customer)
    student.assigned = True
    if workshop.capacity is not None:
        workshop.capacity -= 1
    session.flush()
    return customer
