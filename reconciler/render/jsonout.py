"""The plan JSON contract (schemas/plan.schema.json, docs/cli.md)."""

from __future__ import annotations

from ..plan import Plan
from ..planfile import dumps, plan_to_dict


def render_json(plan: Plan) -> str:
    return dumps(plan_to_dict(plan))
