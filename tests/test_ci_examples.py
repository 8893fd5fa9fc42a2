"""examples/ci run as written: each workflow's shell steps, in order, in a temporary git
repository, with the documented variables, a PostgreSQL state (read-only credentials for
plans, write credentials for applies) and only the GitHub/GitLab HTTP API stubbed
(see tests/ci_harness.py). Scenarios: clean plan, rejected plan, missing state secret, two
pull requests merged in either order, apply on merge. Also: the documented read-only
PostgreSQL role can plan and cannot apply."""

from __future__ import annotations

import io
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ci_harness import ApiStub, GitHubRunner, GitLabRunner
from conftest import EXAMPLES, ROOT, run_cli

pytestmark = pytest.mark.slow

CI = ROOT / "examples" / "ci"
ENV_A, ENV_B = "main-with-subaccounts", "comuniq-one-4digit"
MARKER = "<!-- reconciler-plan -->"
# The grants of docs/ci.md, for a role that plans (reads) and never writes.
READ_ONLY_GRANTS = """
GRANT CONNECT ON DATABASE "{db}" TO reconciler_plan;
GRANT USAGE ON SCHEMA public TO reconciler_plan;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO reconciler_plan;
ALTER DEFAULT PRIVILEGES FOR ROLE reconciler IN SCHEMA public GRANT SELECT ON TABLES TO reconciler_plan;
"""


# ---------------------------------------------------------------------------
# Fixtures: a runner venv with reconciler installed from a wheel of this repository
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reconciler_wheel(tmp_path_factory) -> Path:
    """The pip requirement the examples install (RECONCILER_SOURCE): built from this repository."""
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: parallel test workers must not share setuptools' build directories.
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", ".reconciler", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out),
                    str(source)], check=True, timeout=600)
    return next(out.glob("pbx_reconciler-*.whl"))


@pytest.fixture(scope="module")
def runner_env(tmp_path_factory, reconciler_wheel) -> dict[str, str]:
    """PATH with a fresh venv (the 'setup-python' of the runner); its dependencies come from
    this machine's site-packages, so pip needs no index."""
    home = tmp_path_factory.mktemp("runner")
    venv.EnvBuilder(with_pip=False).create(home / "venv")
    _share_dependencies(home / "venv", home / "dependencies")
    path = f"{home / 'venv' / 'bin'}:{os.environ['PATH']}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB", "GITLAB", "CI", "RECONCILER", "PYTEST", "VIRTUAL_ENV"))}
    return {**env, "PATH": path, "HOME": str(home), "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_USER": "0",
            "RECONCILER_CACHE_DIR": str(home / "cache")}


def _share_dependencies(runner_venv: Path, farm: Path) -> None:
    """Make this interpreter's installed packages, except reconciler itself, visible to the
    runner's venv (a .pth line to a directory of links): pip finds every dependency of the
    wheel already installed and needs no index, and installs the wheel as a user's CI does."""
    farm.mkdir()
    own = ("reconciler", "pbx_reconciler", "__editable__")
    for packages in map(Path, site.getsitepackages()):
        for entry in packages.iterdir():
            if not entry.name.startswith(own) and not (farm / entry.name).exists():
                (farm / entry.name).symlink_to(entry)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(runner_venv),
                                                        "platbase": str(runner_venv)}))
    (purelib / "shared-dependencies.pth").write_text(f"{farm}\n")


@pytest.fixture
def stub():
    api = ApiStub()
    api.start()
    yield api
    api.stop()


class State:
    """A PostgreSQL state with a write URL (apply) and a read-only URL (plan)."""

    def __init__(self, cluster, name: str):
        self.cluster = cluster
        self.name = name
        self.write_url = cluster.create_database(name)
        self.read_url = self.write_url.replace("reconciler:reconciler-test-pw",
                                               "reconciler_plan:plan-test-pw")

    def init(self) -> None:
        """One-time set-up with the write role (creates the tables), then the grants."""
        empty = self.cluster.dir / f"empty-{self.name}"
        (empty / "env").mkdir(parents=True, exist_ok=True)
        (empty / "env" / "a.yaml").write_text(
            'kind: Account\ncustomer_number: "9999999"\nname: Init\ncontact: X\naddress: Y\n')
        result = run_cli("plan", "env", "--state", self.write_url, cwd=empty)
        assert result.returncode == 0, result.output
        self.cluster.sql("DO $$ BEGIN CREATE ROLE reconciler_plan LOGIN PASSWORD 'plan-test-pw'; "
                         "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        for statement in READ_ONLY_GRANTS.format(db=self.name).strip().splitlines():
            self.cluster.sql(statement, db=self.name)

    def serial(self) -> int:
        engine = create_engine(self.write_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as conn:
                return int(conn.execute(text(
                    "SELECT value FROM reconciler_meta WHERE key = 'serial'")).scalar_one())
        finally:
            engine.dispose()


@pytest.fixture
def state(pg_cluster, request) -> State:
    name = "ci_" + "".join(c for c in request.node.name if c.isalnum())[-40:].lower()
    db = State(pg_cluster, name)
    db.init()
    return db


# ---------------------------------------------------------------------------
# A configuration repository
# ---------------------------------------------------------------------------

class Repo:
    def __init__(self, path: Path):
        self.path = path
        path.mkdir()
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "ci@example.com")
        self.git("config", "user.name", "CI")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True,
                              text=True).stdout.strip()

    def add_env(self, name: str) -> None:
        shutil.copytree(EXAMPLES / name, self.path / "environments" / name)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.path / "environments" / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, (relative, old)
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def branch(self, name: str, relative: str, old: str, new: str) -> str:
        self.git("checkout", "-q", "-b", name, "main")
        self.edit(relative, old, new)
        head = self.commit(f"{name}: {old} → {new}")
        self.git("checkout", "-q", "main")
        return head

    def checkout(self, ref: str) -> None:
        self.git("checkout", "-q", ref)
        self.git("clean", "-qfdx", "-e", "environments")

    def merge(self, branch: str) -> str:
        self.git("checkout", "-q", "main")
        self.git("merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path) -> Repo:
    config = Repo(tmp_path / "pbx-config")
    config.add_env(ENV_A)
    config.add_env(ENV_B)
    config.commit("two environments")
    return config


# ---------------------------------------------------------------------------
# GitHub Actions
# ---------------------------------------------------------------------------

class GitHub:
    """Pull-request and push events of examples/ci/github-actions.yml against one state."""

    def __init__(self, stub: ApiStub, env: dict, wheel: Path, state: State, work: Path):
        work.mkdir(exist_ok=True)
        self.runner = GitHubRunner(CI / "github-actions.yml", stub, env, work)
        self.stub = stub
        self.secrets = {"RECONCILER_STATE_READONLY": state.read_url,
                        "RECONCILER_STATE": state.write_url}
        self.vars = {"RECONCILER_SOURCE": str(wheel)}

    def pull_request(self, repo: Repo, number: int, head: str, **secrets):
        repo.checkout(head)
        github = {"sha": head, "run_id": str(100 + number),
                  "event": {"pull_request": {"number": number, "head": {"sha": head}}}}
        try:
            return self.runner.run("pull_request", repo.path, github, {**self.secrets, **secrets},
                                   self.vars)
        finally:
            repo.checkout("main")

    def merge(self, repo: Repo, branch: str, number: int, head: str):
        merge_sha = repo.merge(branch)
        self.stub.merged[merge_sha] = [{"number": number, "head": {"sha": head},
                                        "merged_at": "2026-11-23T22:00:00Z"}]
        return self.runner.run("push", repo.path, {"sha": merge_sha, "run_id": "900"},
                               self.secrets, self.vars)


@pytest.fixture
def github(stub, runner_env, reconciler_wheel, state, tmp_path) -> GitHub:
    return GitHub(stub, runner_env, reconciler_wheel, state, tmp_path / "work")


def _apply_directly(repo: Repo, state: State, *envs: str) -> None:
    """The state before the scenario: environments already applied (by an earlier merge)."""
    result = run_cli("apply", *[f"environments/{e}" for e in envs], "--state", state.write_url,
                     "--auto-approve", cwd=repo.path)
    assert result.returncode == 0, result.output


def _step(job, name_start: str):
    return next(s for s in job.steps if s.name.startswith(name_start))


def test_github_clean_plan_sticky_comment_then_apply_on_merge(github, repo, state, stub):
    _apply_directly(repo, state, ENV_A, ENV_B)
    serial = state.serial()
    head = repo.branch("rename", f"{ENV_A}/tenant-mustermensch.yaml", "name: Lager\n",
                       "name: Lager Nord\n")
    jobs = github.pull_request(repo, 1, head)
    plan = jobs["plan"]
    assert plan.result == "success", plan.output
    assert jobs["apply"].result == "skipped"
    comments = stub.comments_on(1)
    assert len(comments) == 1 and comments[0].startswith(MARKER)
    assert "Plan: 0 to create, 1 to update, 0 to delete" in comments[0]
    assert "No changes." in comments[0]  # the other environment
    assert state.serial() == serial, "a plan job never writes the state"
    artifact = stub.artifacts[-1]
    assert artifact["name"] == f"reconciler-plan-{head}"

    again = github.pull_request(repo, 1, head)  # a re-run updates the same comment
    assert again["plan"].result == "success", again["plan"].output
    assert len(stub.comments_on(1)) == 1
    assert [m for m, _ in stub.requests].count("PATCH") == 1

    pushed = github.merge(repo, "rename", 1, head)
    assert pushed["plan"].result == "skipped"
    assert pushed["apply"].result == "success", pushed["apply"].output
    assert f"Apply complete for environments/{ENV_A}: 0 created, 1 updated" in pushed["apply"].output
    assert state.serial() == serial + 1
    after = run_cli("plan", "environments/" + ENV_A, "--state", state.read_url,
                    "--detailed-exitcode", cwd=repo.path)
    assert after.returncode == 0 and "No changes." in after.stdout, after.output


def test_github_rejected_plan_is_commented_annotated_and_fails(github, repo, state, stub):
    _apply_directly(repo, state, ENV_A)
    head = repo.branch("dial", f"{ENV_A}/tenant-mustermensch.yaml", "dial_plan: 3", "dial_plan: 4")
    jobs = github.pull_request(repo, 2, head)
    plan = jobs["plan"]
    assert plan.result == "failure", plan.output
    assert _step(plan, "Sticky plan comment").outcome == "success"
    assert _step(plan, "Fail the job").outcome == "failure"
    annotations = [line for line in _step(plan, "Plan").output.splitlines()
                   if line.startswith("::error")]
    assert "title=Forbidden change::tenant mustermensch: dial_plan 3 → 4" in (
        annotations[1] if "title=reconciler%3A" in annotations[0] else annotations[0])
    comment = stub.comments_on(2)
    assert len(comment) == 1 and "Forbidden or refused changes — fix these first" in comment[0]
    assert all(not name.startswith("plans/") for name in _artifact_files(stub))

    fixed = repo.branch("dial-fixed", f"{ENV_A}/tenant-mustermensch.yaml", "name: Lager\n",
                        "name: Lager Süd\n")
    jobs = github.pull_request(repo, 2, fixed)  # the same PR, pushed again with a fix
    assert jobs["plan"].result == "success", jobs["plan"].output
    comment = stub.comments_on(2)
    assert len(comment) == 1 and "Forbidden" not in comment[0] and "1 to update" in comment[0]


def test_github_missing_state_secret_fails_instead_of_planning_an_empty_state(github, repo, stub):
    head = repo.branch("fork", f"{ENV_A}/tenant-mustermensch.yaml", "name: Lager\n", "name: X\n")
    jobs = github.pull_request(repo, 3, head, RECONCILER_STATE_READONLY="")
    plan = jobs["plan"]
    assert plan.result == "failure"
    assert "no state configured, and CI is set" in _step(plan, "Plan").output
    comment = stub.comments_on(3)
    assert len(comment) == 1 and "The plan did not run" in comment[0]
    assert "to create" not in comment[0]


@pytest.mark.parametrize("order", ["a-then-b", "b-then-a"])
def test_github_two_prs_merged_in_either_order(github, repo, state, stub, order):
    _apply_directly(repo, state, ENV_A, ENV_B)
    serial = state.serial()
    head_a = repo.branch("pr-a", f"{ENV_A}/tenant-mustermensch.yaml", "name: Lager\n",
                         "name: Lager A\n")
    head_b = repo.branch("pr-b", f"{ENV_B}/tenant-lindner-immobilien.yaml",
                         "name: Tobias Wagner", "name: Tobias Wagner-Lindner")
    for number, head, env in ((11, head_a, ENV_A), (12, head_b, ENV_B)):  # same state
        plan = github.pull_request(repo, number, head)["plan"]
        assert plan.result == "success", plan.output
        saved = [f for f in _artifact_files(stub) if f.startswith("plans/")]
        assert saved == [f"plans/{env}.json"], plan.output  # the unchanged one is no work
    merges = [("pr-a", 11, head_a), ("pr-b", 12, head_b)]
    for branch, number, head in (merges if order == "a-then-b" else merges[::-1]):
        applied = github.merge(repo, branch, number, head)["apply"]
        assert applied.result == "success", applied.output
    assert state.serial() == serial + 2
    final = run_cli("plan", f"environments/{ENV_A}", f"environments/{ENV_B}", "--state",
                    state.read_url, "--detailed-exitcode", cwd=repo.path)
    assert final.returncode == 0, final.output


def _artifact_files(stub: ApiStub) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(stub.artifacts[-1]["data"])) as archive:
        return archive.namelist()


# ---------------------------------------------------------------------------
# GitLab CI
# ---------------------------------------------------------------------------

def test_gitlab_merge_request_note_and_apply_on_merge(repo, state, stub, runner_env,
                                                      reconciler_wheel, tmp_path):
    _apply_directly(repo, state, ENV_A, ENV_B)
    serial = state.serial()
    (tmp_path / "work").mkdir()
    runner = GitLabRunner(CI / "gitlab-ci.yml", stub, runner_env, tmp_path / "work")
    variables = {"RECONCILER_SOURCE": str(reconciler_wheel), "GITLAB_API_TOKEN": "glpat-stub",
                 "RECONCILER_STATE_READONLY": state.read_url, "CI_DEFAULT_BRANCH": "main",
                 "CI_JOB_URL": "https://gitlab.example/acme/pbx-config/-/jobs/7"}
    mr = {**variables, "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "5"}

    bad = repo.branch("dial", f"{ENV_A}/tenant-mustermensch.yaml", "dial_plan: 3", "dial_plan: 4")
    repo.checkout(bad)
    jobs = runner.run(repo.path, {**mr, "CI_COMMIT_SHA": bad}, "refs/merge-requests/5/head")
    repo.checkout("main")
    assert jobs["plan"].result == "failure", jobs["plan"].output
    assert jobs["apply"].result == "skipped"
    notes = stub.comments_on(5)
    assert len(notes) == 1 and "Forbidden" in notes[0]

    good = repo.branch("rename", f"{ENV_A}/tenant-mustermensch.yaml", "name: Lager\n",
                       "name: Lager GL\n")
    repo.checkout(good)
    jobs = runner.run(repo.path, {**mr, "CI_COMMIT_SHA": good}, "refs/merge-requests/5/head")
    repo.checkout("main")
    assert jobs["plan"].result == "success", jobs["plan"].output
    notes = stub.comments_on(5)
    assert len(notes) == 1 and "1 to update" in notes[0], "one sticky note, updated"
    assert state.serial() == serial

    merge_sha = repo.merge("rename")
    stub.merged[merge_sha] = [{"number": 5, "head": {"sha": good}}]
    push = {**variables, "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main",
            "CI_COMMIT_SHA": merge_sha, "RECONCILER_STATE_WRITE": state.write_url}
    jobs = runner.run(repo.path, push, "main")
    assert jobs["plan"].result == "skipped"
    assert jobs["apply"].result == "success", jobs["apply"].output
    assert state.serial() == serial + 1


# ---------------------------------------------------------------------------
# The read-only role of docs/ci.md
# ---------------------------------------------------------------------------

def test_read_only_role_plans_and_cannot_apply(state, tmp_path):
    env = tmp_path / ENV_A
    shutil.copytree(EXAMPLES / ENV_A, env)
    out = tmp_path / "plan.json"
    planned = run_cli("plan", env.name, "--state", state.read_url, "--out", out,
                      "--detailed-exitcode", cwd=tmp_path, env={"RECONCILER_CACHE_DIR": str(tmp_path / "c")})
    assert planned.returncode == 2, planned.output
    assert out.is_file()
    serial = state.serial()
    refused = run_cli("apply", out, "--state", state.read_url, cwd=tmp_path)
    assert refused.returncode == 1
    assert "permission denied" in refused.output and "Traceback" not in refused.output
    assert state.serial() == serial
    applied = run_cli("apply", out, "--state", state.write_url, cwd=tmp_path)
    assert applied.returncode == 0, applied.output
