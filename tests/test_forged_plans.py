"""A reader of the state (a read-only PostgreSQL role) cannot make apply do anything."""

from __future__ import annotations

import json
import os

from sqlalchemy import create_engine, text

from conftest import EXAMPLES, run_cli

MWS = "main-with-subaccounts"


def test_a_read_only_role_cannot_forge_a_plan(pg_cluster, tmp_path):
    url = pg_cluster.create_database(f"forge{os.getpid()}")
    database = url.rsplit("/", 1)[1]
    (tmp_path / MWS).symlink_to(EXAMPLES / MWS)
    assert run_cli("apply", MWS, "--auto-approve", "--state", url, cwd=tmp_path).returncode == 0
    pg_cluster.sql("CREATE ROLE forger LOGIN PASSWORD 'forger-pw'")
    pg_cluster.sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO forger", db=database)
    reader = url.replace("reconciler:reconciler-test-pw", "forger:forger-pw")

    # Everything the reader can see: no key, nothing that signs or vouches for a plan.
    engine = create_engine("postgresql+psycopg://" + reader.split("://", 1)[1])
    with engine.connect() as conn:
        meta = dict(conn.execute(text("SELECT key, value FROM reconciler_meta")).all())
        serial = int(meta["serial"])
    engine.dispose()
    assert not any("key" in name for name in meta), meta

    # The reader plans (read-only works), then forges: delete an extension without
    # --allow-delete and make an ordinary user an admin.
    planned = run_cli("plan", MWS, "--format", "json", "--state", reader, cwd=tmp_path)
    assert planned.returncode == 0, planned.output
    forged = json.loads(planned.stdout)
    forged["actions"] = [
        {"action": "delete", "kind": "extension", "id": "mustermensch/130", "scope": "1111111",
         "source": None, "changes": {}, "record": None, "rank": 0},
        {"action": "update", "kind": "user", "id": "mustermensch/it@mustermensch.example",
         "scope": "1111111", "source": None, "changes": {"role": {"before": "admin",
                                                                   "after": "admin"}},
         "record": {"email": "it@mustermensch.example", "name": "Evil", "role": "admin",
                    "tenant": "mustermensch"}, "rank": 0},
    ]
    forged["options"] = {"allow_delete": True, "force": True}
    plan_file = tmp_path / "forged.json"
    plan_file.write_text(json.dumps(forged), encoding="utf-8")

    # CI applies it with the writer's credentials: refused, nothing written.
    result = run_cli("apply", plan_file, "--state", url, cwd=tmp_path)
    assert result.returncode == 1, result.output
    assert "delete extension mustermensch/130 is no longer planned" in result.stderr
    assert "update user mustermensch/it@mustermensch.example is no longer planned" in result.stderr
    assert "Traceback" not in result.output
    # Even with --allow-delete on the command line the manifests do not say to delete it.
    again = run_cli("apply", plan_file, "--allow-delete", "--state", url, cwd=tmp_path)
    assert again.returncode == 1, again.output

    engine = create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
    with engine.connect() as conn:
        after = int(conn.execute(text("SELECT value FROM reconciler_meta WHERE key = 'serial'"))
                    .scalar_one())
        name = conn.execute(text("SELECT attrs FROM reconciler_resources WHERE kind = 'user' "
                                 "AND id = 'mustermensch/it@mustermensch.example'")).scalar_one()
        kept = conn.execute(text("SELECT count(*) FROM reconciler_resources WHERE "
                                 "id = 'mustermensch/130'")).scalar_one()
    engine.dispose()
    assert after == serial and kept == 1 and "Evil" not in name
