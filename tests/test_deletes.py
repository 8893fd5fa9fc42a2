"""Deletes are opt-in, bounded by a threshold, and never leave the environment's scope."""

from __future__ import annotations

import shutil

from helpers import Env, applied_templates, make_env, remove_extension, remove_user  # noqa: F401

MWS = "main-with-subaccounts"
HEAD = "tenant-mustermensch.yaml"
# main-with-subaccounts holds 16 extensions and 7 users; 1 of 16 is 6.25 %, 2 of 16 12.5 %.


def _delete_lines(stdout: str) -> list[str]:
    """The delete lines of a text plan, without their risk marks."""
    return [line.strip().removesuffix("  [delete]") for line in stdout.splitlines()
            if line.startswith("  - ")]


def test_removed_extension_is_left_alone_without_allow_delete(make_env):
    env = make_env(MWS, applied=True)
    remove_extension(env.file(HEAD), "130")
    result = env.plan("--detailed-exitcode")
    assert result.returncode == 0, result.output
    assert "Not in the manifests, left alone: 1 extension (pass --allow-delete" in result.stdout
    assert not _delete_lines(result.stdout)
    data = env.plan_json()
    kept = [{"kind": "extension", "id": "mustermensch/130", "scope": "1111111"}]
    assert data["summary"]["delete"] == 0 and data["left_alone"] == kept
    assert data["summary"]["left_alone"] == 1
    applied = env.apply("--auto-approve")
    assert applied.returncode == 0, applied.output
    assert "Nothing to apply, but 1 resource is no longer in the manifests" in applied.stdout
    assert "No changes." not in applied.stdout
    assert env.plan_json()["left_alone"] == kept  # still there


def test_allow_delete_under_the_threshold_deletes(make_env):
    env = make_env(MWS, applied=True)
    remove_extension(env.file(HEAD), "130")
    result = env.plan("--allow-delete", "--detailed-exitcode")
    assert result.returncode == 2, result.output
    assert _delete_lines(result.stdout) == ["- extension mustermensch/130"]
    assert "left alone" not in result.stdout
    applied = env.apply("--allow-delete", "--auto-approve")
    assert applied.returncode == 0, applied.output
    assert "0 created, 0 updated, 1 deleted" in applied.stdout
    data = env.plan_json("--allow-delete")
    assert data["actions"] == [] and data["left_alone"] == []
    assert data["summary"]["unchanged"] == 33


def test_deletes_above_the_threshold_are_refused_without_force(make_env, tmp_path):
    env = make_env(MWS, applied=True)
    remove_extension(env.file(HEAD), "120")
    remove_extension(env.file(HEAD), "130")
    out = tmp_path / "plan.json"
    refused = env.plan("--allow-delete", "--out", out)
    assert refused.returncode == 1, refused.output
    assert not out.exists()
    assert "deleting 2 of 16 extension resources in scope (12.50%)" in refused.stdout
    assert "over the 10% limit" in refused.stdout and "--force" in refused.stdout
    applied = env.apply("--allow-delete", "--auto-approve")
    assert applied.returncode == 1 and "--force" in applied.stdout, applied.output
    assert env.serial() == 34

    raised = env.plan("--allow-delete", "--max-delete-percent", "15", "--detailed-exitcode")
    assert raised.returncode == 2, raised.output
    forced = env.apply("--allow-delete", "--force", "--auto-approve")
    assert forced.returncode == 0, forced.output
    assert "2 deleted" in forced.stdout
    assert env.plan_json("--allow-delete")["summary"] == {
        "create": 0, "update": 0, "delete": 0, "unchanged": 32, "left_alone": 0}


def test_delete_limit_applies_from_ten_resources_of_a_kind(make_env):
    """1 of 7 users is 14 % yet no mass deletion: the limit counts from 10 resources (octoDNS)."""
    env = make_env(MWS, applied=True)
    remove_user(env.file(HEAD), "maxi.mustermensch@mustermensch.example")
    allowed = env.plan_json("--allow-delete", expect=(0,))
    assert [(a["action"], a["kind"], a["id"]) for a in allowed["actions"]] == [
        ("delete", "user", "mustermensch/maxi.mustermensch@mustermensch.example")]
    assert not allowed.get("refusals")
    remove_extension(env.file(HEAD), "120")
    remove_extension(env.file(HEAD), "130")  # 2 of 16 extensions: over the limit
    refused = env.plan("--allow-delete")
    assert refused.returncode == 1, refused.output
    assert "deleting 2 of 16 extension resources" in refused.stdout
    assert "user resources" not in refused.stdout


def test_removed_tenant_is_deleted_children_first(make_env):
    env = make_env(MWS, applied=True)
    env.file("tenant-mustermensch-hamburg.yaml").unlink()
    data = env.plan_json("--allow-delete", "--force")
    deletes = [(a["kind"], a["id"]) for a in data["actions"]]
    assert all(a["action"] == "delete" for a in data["actions"])
    assert [kind for kind, _ in deletes] == ["extension"] * 5 + ["user"] * 3 + ["tenant"]
    assert deletes[-1] == ("tenant", "mustermensch-hamburg")
    applied = env.apply("--allow-delete", "--force", "--auto-approve")
    assert applied.returncode == 0 and "9 deleted" in applied.stdout, applied.output


def test_other_environments_are_out_of_scope(make_env, state_url, example):
    """Two environments in one state: deletes and their percentages see only one of them."""
    env = make_env(MWS, applied=True)
    other = Env(example("comuniq-one-4digit"), state_url)
    applied = other.apply("--auto-approve")
    assert applied.returncode == 0, applied.output
    serial = 34 + 70
    shutil.rmtree(other.path)  # the other environment's files are gone, not its accounts

    data = env.plan_json("--allow-delete", "--force")
    assert data["scope"] == ["1111111", "1234567", "1298374"]
    assert data["actions"] == [] and data["left_alone"] == []
    assert data["summary"]["unchanged"] == 34 and data["state_serial"] == serial

    remove_extension(env.file(HEAD), "120")
    remove_extension(env.file(HEAD), "130")
    refused = env.plan("--allow-delete")
    # the other environment's 53 extensions are not counted
    assert "deleting 2 of 16 extension resources in scope" in refused.stdout, refused.output
    forced = env.apply("--allow-delete", "--force", "--auto-approve")
    assert forced.returncode == 0 and "0 created, 0 updated, 2 deleted" in forced.stdout

    again = Env(example("comuniq-one-4digit"), state_url)
    untouched = again.plan("--allow-delete", "--detailed-exitcode")
    assert untouched.returncode == 0, untouched.output
    assert "No changes. 70 resources up to date." in untouched.stdout


def test_removed_tenant_is_named_in_every_format_and_is_not_no_changes(make_env, tmp_path):
    """Without --allow-delete a removed tenant is left alone: nothing to apply (exit 0 under
    --detailed-exitcode, no plan file saved), but every format names what is left alone."""
    env = make_env(MWS, applied=True)
    env.file("tenant-mustermensch-hamburg.yaml").unlink()
    text = env.plan("--detailed-exitcode")
    assert text.returncode == 0, text.output
    assert "No changes" not in text.stdout
    assert "  = tenant mustermensch-hamburg  (account " in text.stdout
    assert "Nothing to apply, but 9 resources are no longer in the manifests" in text.stdout
    data = env.plan_json()
    assert data["summary"]["left_alone"] == 9
    assert {"kind": "tenant", "id": "mustermensch-hamburg", "scope": "1298374"} in data["left_alone"]
    markdown = env.plan("--format", "markdown")
    assert "Left alone: 9 resources are no longer in the manifests" in markdown.stdout
    assert "- `tenant mustermensch-hamburg` (account `1298374`)" in markdown.stdout
    assert "No changes" not in markdown.stdout
    github = env.plan("--format", "github")
    assert "= tenant mustermensch-hamburg" in github.stdout
    out = tmp_path / "plan.json"
    saved = env.plan("--out", out)
    assert saved.returncode == 0 and not out.exists(), saved.output
    assert "Nothing to apply: no plan saved" in saved.stderr
