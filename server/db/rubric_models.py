"""Evaluation rubrics (评课量表): the district's rubrics and every version of each.

A version is never changed once written: editing a rubric writes its next version, and an
evaluation (live note, replay evaluation, exemplary review) keeps the id of the version it
was scored on, so an old evaluation still shows its own items and scale. Exactly one rubric
is in use at a time (`in_use`); its newest version is what the pages score on.
docs/library.md "Rubrics" explains the columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import lengths
from server.db.models import ID, Base, new_id, utcnow


class Rubric(Base):
    """A named rubric; its items live in its versions."""

    __tablename__ = "rubrics"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(lengths.NAME), unique=True)
    # The district's rubric: live notes, replay evaluations and reviews score on it.
    in_use: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RubricVersion(Base):
    """One version of a rubric: items [{key, label, weight}] scored on one scale 0..scale_max."""

    __tablename__ = "rubric_versions"
    __table_args__ = (UniqueConstraint("rubric_id", "version"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    rubric_id: Mapped[str] = mapped_column(ForeignKey("rubrics.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    scale_max: Mapped[int] = mapped_column(Integer)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(lengths.NAME), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
