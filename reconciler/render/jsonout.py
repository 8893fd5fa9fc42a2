"""The plan JSON contract of SPEC.md; see schemas/plan.schema.json."""

from __future__ import annotations

from ..plan import Plan
from ..planfile import dumps, plan_to_dict


def render_json(plan: Plan) -> str:
    return dumps(plan_to_dict(plan))
