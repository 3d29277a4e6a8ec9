"""The demo district: two schools, one lead and three receiving classrooms, an admin, a
teacher, an inspector, and one lesson today with a join link for every role.

Seeded only into an empty database. Passwords are generated, printed once and stored
only as Argon2 hashes.
"""

from __future__ import annotations

import logging
import secrets
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import exists, select

from server.addresses import listen_urls
from server.api.links import link_url, make_link
from server.db import Database
from server.db.models import (
    Account,
    AccountRole,
    Classroom,
    ClassroomKind,
    County,
    JoinLink,
    Lesson,
    School,
    SchoolKind,
    lesson_receivers,
    utcnow,
)
from server.passwords import hash_password_async
from server.settings import Settings
from signaling.grants import Role

if TYPE_CHECKING:
    from server.state import AppState

log = logging.getLogger("tongke.demo")


@dataclass(frozen=True, slots=True)
class DemoLink:
    label: str
    url: str
    # The same link under any base URL: /join/<code> or /patrol?link=<code>.
    path: str


@dataclass(frozen=True, slots=True)
class DemoAccount:
    role: str
    username: str
    display_name: str
    password: str


@dataclass(frozen=True, slots=True)
class DemoDistrict:
    lesson_id: str
    lesson_title: str
    links: tuple[DemoLink, ...]
    accounts: tuple[DemoAccount, ...]


async def database_is_empty(db: Database) -> bool:
    async with db.sessions.begin() as session:
        used = await session.scalar(select(exists().where(School.id.is_not(None))))
        used = used or await session.scalar(select(exists().where(Account.id.is_not(None))))
    return not used


async def seed_demo(db: Database, settings: Settings) -> DemoDistrict:
    """Create the demo district (whatever is already there) and return what to print."""
    people = (
        (AccountRole.ADMIN, "demo-admin", "演示管理员"),
        (AccountRole.TEACHER, "demo-teacher", "王老师"),
        (AccountRole.INSPECTOR, "demo-inspector", "李巡课员"),
    )
    passwords = {username: secrets.token_urlsafe(12) for _, username, _ in people}
    hashes = {u: await hash_password_async(p) for u, p in passwords.items()}
    async with db.sessions.begin() as session:
        county = County(name="示范县")
        session.add(county)
        await session.flush()
        central = School(name="城关中心校", kind=SchoolKind.CENTRAL.value, county_id=county.id)
        point = School(name="石门教学点", kind=SchoolKind.TEACHING_POINT.value, county_id=county.id)
        session.add_all([central, point])
        await session.flush()
        lead = Classroom(school_id=central.id, name="录播教室", kind=ClassroomKind.LEAD.value)
        receivers = [
            Classroom(school_id=point.id, name="三年级教室", kind=ClassroomKind.RECEIVING.value),
            Classroom(school_id=point.id, name="复式班教室", kind=ClassroomKind.RECEIVING.value),
            Classroom(school_id=central.id, name="三年级(2)班", kind=ClassroomKind.RECEIVING.value),
        ]
        session.add_all([lead, *receivers])
        accounts = {
            username: Account(
                username=username,
                display_name=display_name,
                role=role.value,
                password_hash=hashes[username],
                school_id=central.id if role is AccountRole.TEACHER else None,
            )
            for role, username, display_name in people
        }
        session.add_all(accounts.values())
        await session.flush()
        start = utcnow().replace(second=0, microsecond=0)
        lesson = Lesson(
            title="口算乘法",
            teacher_id=accounts["demo-teacher"].id,
            lead_classroom_id=lead.id,
            scheduled_start=start,
            scheduled_end=start + timedelta(minutes=45),
            stage="小学",
            subject="数学",
            grade="三年级",
            textbook_version="人教版",
            volume="上册",
            unit="第六单元 多位数乘一位数 第1课时",
        )
        session.add(lesson)
        await session.flush()
        await session.execute(
            lesson_receivers.insert(),
            [
                {"lesson_id": lesson.id, "classroom_id": room.id, "position": n}
                for n, room in enumerate(receivers)
            ],
        )
        admin_id = accounts["demo-admin"].id
        links = []
        link = await make_link(
            session, lesson, Role.LEAD, classroom_id=lead.id, created_by_id=admin_id
        )
        links.append(_link(settings, f"主讲 lead · {central.name} {lead.name}", link))
        for room in receivers:
            link = await make_link(
                session, lesson, Role.RECEIVER, classroom_id=room.id, created_by_id=admin_id
            )
            school = central.name if room.school_id == central.id else point.name
            links.append(_link(settings, f"接收 receiver · {school} {room.name}", link))
        inspector = accounts["demo-inspector"]
        link = await make_link(
            session, lesson, Role.PATROL, account_id=inspector.id, created_by_id=admin_id
        )
        links.append(_link(settings, f"巡课 patrol · {inspector.display_name}", link))
    return DemoDistrict(
        lesson_id=lesson.id,
        lesson_title=lesson.title,
        links=tuple(links),
        accounts=tuple(
            DemoAccount(role.value, username, display_name, passwords[username])
            for role, username, display_name in people
        ),
    )


def _link(settings: Settings, label: str, link: JoinLink) -> DemoLink:
    path = link_url("", link.role, link.code)
    return DemoLink(label, settings.effective_public_url + path, path)


def describe(district: DemoDistrict, settings: Settings) -> str:
    """The text printed after seeding: every join link under every address classrooms may
    use (public_url, else each LAN address when listening on all), and every demo sign-in."""
    bases = listen_urls(settings.scheme, settings.host, settings.port, settings.public_url)
    lines = [
        "",
        "== tongke demo district ==",
        f"lesson: {district.lesson_title} (小学 数学 三年级 人教版 上册)",
        "join links (open on each classroom terminal; no account needed):",
        *(
            f"  {link.label}\n" + "\n".join(f"    {base}{link.path}" for base in bases)
            for link in district.links
        ),
        f"sign in at {bases[0]}/ (passwords are shown only now):",
        *(
            f"  {a.role:<9} {a.username:<15} {a.password}  ({a.display_name})"
            for a in district.accounts
        ),
        "  the inspector signs in and opens the patrol wall, or uses the patrol link above.",
        "",
    ]
    return "\n".join(lines)


async def seed_demo_if_empty(state: AppState, out: TextIO | None = None) -> DemoDistrict | None:
    """Seed and print the demo district when the database has no schools and no accounts."""
    if not await database_is_empty(state.db):
        return None
    district = await seed_demo(state.db, state.settings)
    log.info("seeded the demo district (lesson %s)", district.lesson_id)
    print(describe(district, state.settings), file=out or sys.stdout, flush=True)
    return district
