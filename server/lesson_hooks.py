"""LessonHooks backed by the database. PLACEHOLDER: data helper replaces."""

from __future__ import annotations

from server.db import Database
from signaling.hooks import NullLessonHooks


class DatabaseLessonHooks(NullLessonHooks):
    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
