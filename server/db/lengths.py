"""Text lengths shared by the database columns and the API that fills them (issue 17).

SQLite ignores a VARCHAR's length and PostgreSQL refuses a longer value, so a limit kept in
two places once let a 100-character subject through the API and fail only on PostgreSQL.
Columns (server/db/models.py) and request bodies (server/api/schemas.py) both read these;
tests/server/test_api_hardening.py checks that every length-limited body field fits.
"""

from __future__ import annotations

NAME = 200  # school, classroom, display names; 单元/课时
TITLE = 200  # a lesson's title (the column is 300 wide: renditions add a suffix)
STAGE = 32  # 学段
SUBJECT = 64  # 学科
GRADE = 32  # 年级
TEXTBOOK_VERSION = 64  # 教材版本
VOLUME = 32  # 册次
UNIT = 200  # 单元/课时
USERNAME = 64
