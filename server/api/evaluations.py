"""Evaluations (评课) during replay and the exemplary-lesson workflow.

- ``POST /api/library/{id}/evaluations``: a note at ``t_s`` seconds with optional rubric
  scores; teachers and inspectors (admins run the system, they do not evaluate).
- ``POST /api/library/{id}/nominate``: the recording's teacher or an admin nominates it
  (from ``none`` or ``returned``), once its rendition is done.
- ``POST /api/library/{id}/review``: an inspector or admin, not the nominator, scores every
  rubric item and decides ``exemplary`` or ``returned`` (only from ``nominated``).

Out-of-order steps answer 409 ``exemplary_out_of_order``; accounts without the right
answer 403 ``forbidden`` (or ``own_nomination``). Every step is kept with who and when.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.access import access
from server.api.errors import ApiError, forbidden, not_found
from server.api.library import ERRORS, EvaluationOut, StepOut
from server.auth import Principal, State
from server.db.models import (
    AccountRole,
    ExemplaryStep,
    LibraryEvaluation,
    LibraryRecording,
    utcnow,
)
from server.library.queries import NEXT_STATE, refresh_score
from server.rubrics import RubricError, check_scores, scoring_version

router = APIRouter(prefix="/library", tags=["library"])

EVALUATORS = frozenset({AccountRole.TEACHER, AccountRole.INSPECTOR})
REVIEWERS = frozenset({AccountRole.INSPECTOR, AccountRole.ADMIN})
NOMINATORS = frozenset({AccountRole.TEACHER, AccountRole.ADMIN})

# Evaluating is open to every teacher and inspector (the library is shared district-wide);
# nominating needs the recording's teacher or an admin whose scope holds its lesson;
# reviewing an inspector or admin whose scope sees it.
Evaluator = Annotated[Principal, access(EVALUATORS, why="the library is shared district-wide")]
Nominator = Annotated[Principal, access(NOMINATORS, resource="recording", manage=True)]
Reviewer = Annotated[Principal, access(REVIEWERS, resource="recording")]


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    t_s: float = Field(ge=0)
    text: str = Field(default="", max_length=4000)
    scores: dict[str, Any] = Field(default_factory=dict)
    # The rubric version the scores are given on; left out: the rubric in use.
    rubric_version_id: str | None = Field(default=None, max_length=32)


class NominateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=4000)


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["exemplary", "returned"]
    scores: dict[str, Any]
    comment: str = Field(default="", max_length=4000)
    # The rubric version the scores are given on; left out: the rubric in use.
    rubric_version_id: str | None = Field(default=None, max_length=32)


class WorkflowOut(BaseModel):
    recording_id: str
    exemplary_state: str
    score: float | None
    step: StepOut


async def _scores(
    session: AsyncSession, scores: dict[str, Any], version_id: str | None, *, complete: bool
) -> tuple[dict[str, int], str | None]:
    """Scores checked against the rubric version named (else the one in use) and that
    version's id; no scores and none required: ({}, None)."""
    if not scores and not complete:
        return {}, None
    try:
        spec = await scoring_version(session, version_id)
        return check_scores(spec, scores, complete=complete), spec.version_id
    except RubricError as exc:
        raise ApiError(422, exc.code, exc.message) from exc


@router.post(
    "/{recording_id}/evaluations",
    status_code=status.HTTP_201_CREATED,
    response_model=EvaluationOut,
    responses=ERRORS,
)
async def add_evaluation(
    state: State, principal: Evaluator, recording_id: str, body: EvaluationIn
) -> dict[str, Any]:
    if principal.role not in EVALUATORS:
        raise forbidden("Teachers and inspectors evaluate lessons.")
    if not body.text.strip() and not body.scores:
        raise ApiError(422, "empty_evaluation", "Write a note or give at least one score.")
    async with state.db.sessions.begin() as session:
        row = await session.get(LibraryRecording, recording_id)
        if row is None:
            raise not_found("recording")
        if body.t_s > row.duration_s + 1.0:
            raise ApiError(422, "outside_recording", "The moment is past the recording's end.")
        scores, version_id = await _scores(
            session, body.scores, body.rubric_version_id, complete=False
        )
        evaluation = LibraryEvaluation(
            recording_id=row.id,
            account_id=principal.account_id,
            author=principal.display_name,
            author_role=principal.role.value,
            t_s=round(body.t_s, 3),
            text=body.text.strip(),
            scores=scores,
            rubric_version_id=version_id,
            created_at=utcnow(),
        )
        session.add(evaluation)
        await session.flush()
        await refresh_score(session, row)
    return {k: getattr(evaluation, k) for k in EvaluationOut.model_fields}


async def _step(
    state: State,
    principal: Principal,
    recording_id: str,
    action: str,
    comment: str,
    scores: dict[str, int],
    rubric_version_id: str | None = None,
) -> dict[str, Any]:
    async with state.db.sessions.begin() as session:
        row = await session.get(LibraryRecording, recording_id, with_for_update=True)
        if row is None:
            raise not_found("recording")
        if action == "nominate":
            if not (principal.is_admin or principal.account_id == row.teacher_id):
                raise forbidden("Only the lesson's teacher or an admin nominates it.")
        else:
            if principal.role not in REVIEWERS:
                raise forbidden("Only inspectors and admins review nominations.")
        allowed_from, to = NEXT_STATE[action]
        if row.exemplary_state not in allowed_from:
            raise ApiError(
                409,
                "exemplary_out_of_order",
                f"The recording is {row.exemplary_state}; {action} needs "
                f"{' or '.join(allowed_from)}.",
            )
        if action == "nominate" and row.rendition_state != "done":
            raise ApiError(409, "rendition_not_ready", "Nominate once the rendition is done.")
        if action != "nominate":
            last = await _last_nomination(session, row.id)
            if last is not None and last.account_id == principal.account_id:
                raise ApiError(403, "own_nomination", "A nomination is reviewed by someone else.")
        step = ExemplaryStep(
            recording_id=row.id,
            action=action,
            account_id=principal.account_id,
            actor=principal.display_name,
            at=utcnow(),
            comment=comment.strip(),
            scores=scores,
            rubric_version_id=rubric_version_id,
        )
        session.add(step)
        row.exemplary_state = to
        await session.flush()
        await refresh_score(session, row)
    return {
        "recording_id": row.id,
        "exemplary_state": row.exemplary_state,
        "score": row.score,
        "step": {k: getattr(step, k) for k in StepOut.model_fields},
    }


async def _last_nomination(session: AsyncSession, recording_id: str) -> ExemplaryStep | None:
    return await session.scalar(
        select(ExemplaryStep)
        .where(ExemplaryStep.recording_id == recording_id, ExemplaryStep.action == "nominate")
        .order_by(ExemplaryStep.at.desc(), ExemplaryStep.id.desc())
        .limit(1)
    )


@router.post("/{recording_id}/nominate", response_model=WorkflowOut, responses=ERRORS)
async def nominate(
    state: State, principal: Nominator, recording_id: str, body: NominateIn
) -> dict[str, Any]:
    return await _step(state, principal, recording_id, "nominate", body.comment, {})


@router.post("/{recording_id}/review", response_model=WorkflowOut, responses=ERRORS)
async def review(
    state: State, principal: Reviewer, recording_id: str, body: ReviewIn
) -> dict[str, Any]:
    async with state.db.sessions.begin() as session:
        scores, version_id = await _scores(
            session, body.scores, body.rubric_version_id, complete=True
        )
    action = "exemplary" if body.decision == "exemplary" else "return"
    return await _step(state, principal, recording_id, action, body.comment, scores, version_id)
