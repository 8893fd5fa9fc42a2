"""Runs the shell steps of examples/ci/*.yml as a CI runner would, on this machine.

What is real: the workflow file as written (parsed, its `run:`/`script:` steps executed in
order by bash with the documented variables), git, pip installing reconciler from a
wheel of this repository, the reconciler CLI, and a PostgreSQL state. What is stubbed:
only the GitHub / GitLab HTTP API (`ApiStub`, a local server that records comments, notes
and merged pull requests and serves artifacts), and the `uses:` actions that talk to it
(checkout = the repository directory as it is; setup-python = the harness's venv;
upload/download-artifact = zip files kept by the stub).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from ruamel.yaml import YAML


# ---------------------------------------------------------------------------
# The API stub
# ---------------------------------------------------------------------------

@dataclass
class ApiStub:
    """GitHub's and GitLab's REST endpoints that the examples use, in memory."""

    comments: dict[int, dict] = field(default_factory=dict)  # id → {issue, body}
    merged: dict[str, list[dict]] = field(default_factory=dict)  # merge sha → pulls
    artifacts: list[dict] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 1
    url: str = ""

    def start(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: object, raw: bytes | None = None) -> None:
                body = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/zip" if raw else "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> dict:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length).decode()
                if self.headers.get("Content-Type", "").startswith("application/x-www-form"):
                    return {k: v[0] for k, v in parse_qs(data).items()}
                return json.loads(data or "{}")

            def _handle(self) -> None:
                stub.requests.append((self.command, self.path))
                if not (self.headers.get("Authorization") or self.headers.get("PRIVATE-TOKEN")):
                    return self._send(401, {"message": "Requires authentication"})
                status, payload, raw = stub.route(self.command, self.path,
                                                  self._body() if self.command in
                                                  ("POST", "PATCH", "PUT") else {})
                self._send(status, payload, raw)

            do_GET = do_POST = do_PATCH = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()

    def route(self, method: str, path: str, body: dict):
        url = urlparse(path)
        query = parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        # GitHub: /repos/O/R/issues/N/comments, /repos/O/R/issues/comments/ID
        if parts[:1] == ["repos"] and parts[3:4] == ["issues"]:
            if parts[4] == "comments":
                comment = self.comments[int(parts[5])]
                comment["body"] = body["body"]
                return 200, {"id": int(parts[5]), **comment}, None
            return self._comments(method, int(parts[4]), body.get("body"))
        if parts[:1] == ["repos"] and parts[3:4] == ["commits"]:
            return 200, self.merged.get(parts[4], []), None
        if parts[:1] == ["repos"] and parts[3:5] == ["actions", "artifacts"]:
            found = [a for a in self.artifacts if a["name"] == query.get("name", [""])[0]]
            return 200, {"total_count": len(found), "artifacts": [
                {k: v for k, v in a.items() if k != "data"} for a in reversed(found)]}, None
        if parts[:1] == ["zip"]:
            return 200, None, self.artifacts[int(parts[1])]["data"]
        # GitLab: /api/v4/projects/P/merge_requests/IID/notes[/ID]
        if parts[:2] == ["api", "v4"] and "notes" in parts:
            iid = int(parts[parts.index("merge_requests") + 1])
            if len(parts) > parts.index("notes") + 1:
                note = self.comments[int(parts[-1])]
                note["body"] = body["body"]
                return 200, {"id": int(parts[-1]), **note}, None
            return self._comments(method, iid, body.get("body"))
        if parts[:2] == ["api", "v4"] and "merge_requests" in parts:  # commits/SHA/merge_requests
            return 200, [{"iid": p["number"], "sha": p["head"]["sha"], "state": "merged"}
                         for p in self.merged.get(parts[-2], [])], None
        if parts[:2] == ["api", "v4"] and "artifacts" in parts:  # jobs/artifacts/REF/download
            ref = unquote("/".join(parts[parts.index("artifacts") + 1:-1]))
            found = [a for a in self.artifacts if a["name"] == f"{ref}/{query['job'][0]}"]
            return (200, None, found[-1]["data"]) if found else (404, {"message": "404"}, None)
        return 404, {"message": "Not Found"}, None

    def _comments(self, method: str, issue: int, body: str | None):
        if method == "GET":
            return 200, [{"id": i, **c} for i, c in self.comments.items()
                         if c["issue"] == issue], None
        self.comments[self.next_id] = {"issue": issue, "body": body}
        self.next_id += 1
        return 201, {"id": self.next_id - 1}, None

    def comments_on(self, issue: int) -> list[str]:
        return [c["body"] for c in self.comments.values() if c["issue"] == issue]

    def add_artifact(self, name: str, files: dict[str, bytes]) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for arcname, data in files.items():
                archive.writestr(arcname, data)
        index = len(self.artifacts)
        self.artifacts.append({"id": index, "name": name, "expired": False, "data": buffer.getvalue(),
                               "archive_download_url": f"{self.url}/zip/{index}"})


# ---------------------------------------------------------------------------
# Expressions (`${{ … }}` and `if:`), the small subset the examples use
# ---------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<str>'[^']*')|(?P<op>==|!=|\|\||&&|!|\(|\))|"
                    r"(?P<call>always\(\)|success\(\)|failure\(\))|(?P<name>[A-Za-z_][\w.-]*))")


def evaluate(expression: str, context: dict, failed: bool = False) -> object:
    python = []
    position = 0
    expression = expression.strip()
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if not match:
            raise ValueError(f"expression not understood by the harness: {expression!r}")
        position = match.end()
        if match["str"]:
            python.append(repr(match["str"][1:-1]))
        elif match["op"]:
            python.append({"||": " or ", "&&": " and ", "!": " not "}.get(match["op"], match["op"]))
        elif match["call"]:
            python.append({"always()": "True", "success()": repr(not failed),
                           "failure()": repr(failed)}[match["call"]])
        else:
            python.append(repr(_lookup(context, match["name"])))
    return eval("".join(python), {"__builtins__": {}})  # noqa: S307 - harness-made tokens only


def _lookup(context: dict, name: str) -> object:
    value: object = context
    for part in name.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return value


def substitute(text: str, context: dict) -> str:
    def one(match: re.Match) -> str:
        value = evaluate(match[1], context)
        return "" if value is None else str(value)

    return re.sub(r"\$\{\{(.*?)\}\}", one, str(text))


# ---------------------------------------------------------------------------
# GitHub Actions
# ---------------------------------------------------------------------------

@dataclass
class StepResult:
    name: str
    outcome: str  # success | failure | skipped
    output: str = ""


@dataclass
class JobResult:
    name: str
    result: str  # success | failure | skipped
    steps: list[StepResult] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(f"--- {s.name}: {s.outcome}\n{s.output}" for s in self.steps)


def collect_files(repo: Path, patterns: list[str], root: Path) -> dict[str, bytes]:
    """The files an artifact holds: each path (file or directory), named relative to root."""
    files = {}
    for pattern in patterns:
        path = repo / pattern
        found = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else \
            [path] if path.is_file() else []
        files.update({str(f.relative_to(root)): f.read_bytes() for f in found})
    return files


def load_yaml(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


class Runner:
    """A CI file, the API stub, the runner's environment and a scratch directory."""

    def __init__(self, path: Path, stub: ApiStub, base_env: dict[str, str], work: Path):
        self.config = load_yaml(path)
        self.stub = stub
        self.base_env = base_env
        self.work = work


class GitHubRunner(Runner):
    """Runs one workflow event: every job whose `if` holds, in file order (needs respected)."""

    def run(self, event: str, repo: Path, github: dict, secrets: dict, vars_: dict) -> dict[str, JobResult]:
        context = {"github": {"event_name": event, "server_url": "https://github.example",
                              "repository": "acme/pbx-config", "token": "ghs_stub", **github},
                   "secrets": secrets, "vars": vars_}
        env = {k: substitute(v, context) for k, v in (self.config.get("env") or {}).items()}
        results: dict[str, JobResult] = {}
        for name, job in self.config["jobs"].items():
            needs = job.get("needs") or []
            needs = [needs] if isinstance(needs, str) else needs
            if any(results.get(n) is None or results[n].result != "success" for n in needs) or \
                    ("if" in job and not evaluate(job["if"], context)):
                results[name] = JobResult(name, "skipped")
                continue
            results[name] = self._job(name, job, repo, context, env, github)
        return results

    def _job(self, name: str, job: dict, repo: Path, context: dict, env: dict,
             github: dict) -> JobResult:
        context = {**context, "steps": {}}
        job_env = {**env, **{k: substitute(v, context) for k, v in (job.get("env") or {}).items()}}
        result = JobResult(name, "success")
        temp = self.work / f"runner-{name}-{len(os.listdir(self.work))}"
        temp.mkdir()
        for index, step in enumerate(job["steps"]):
            failed = result.result == "failure"
            condition = step.get("if", "success()")
            title = step.get("name") or step.get("uses") or f"step {index}"
            if not evaluate(condition, context, failed):
                result.steps.append(StepResult(title, "skipped"))
                continue
            step_env = {**job_env, **{k: substitute(v, context)
                                      for k, v in (step.get("env") or {}).items()}}
            if "uses" in step:
                outcome = self._uses(step, repo, context, github)
                result.steps.append(StepResult(title, outcome))
            else:
                outcome, output, outputs = self._run(step["run"], repo, step_env, temp, github,
                                                     context)
                result.steps.append(StepResult(title, outcome, output))
                if "id" in step:
                    context["steps"][step["id"]] = {"outputs": outputs, "outcome": outcome}
            if outcome == "failure":
                result.result = "failure"
        return result

    def _run(self, script: str, repo: Path, env: dict, temp: Path, github: dict, context: dict):
        script_file = temp / "step.sh"
        script_file.write_text(substitute(script, context), encoding="utf-8")
        output_file = temp / "output"
        output_file.write_text("")
        full_env = {**self.base_env, **env, "CI": "true", "GITHUB_ACTIONS": "true",
                    "GITHUB_API_URL": self.stub.url, "GITHUB_REPOSITORY": "acme/pbx-config",
                    "GITHUB_SHA": github.get("sha", ""), "GITHUB_OUTPUT": str(output_file),
                    "GITHUB_STEP_SUMMARY": str(temp / "summary.md"), "RUNNER_TEMP": str(temp)}
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
                              cwd=repo, env=full_env, capture_output=True, text=True, timeout=600)
        outputs = dict(line.split("=", 1) for line in output_file.read_text().splitlines()
                       if "=" in line)
        return ("success" if proc.returncode == 0 else "failure",
                proc.stdout + proc.stderr, outputs)

    def _uses(self, step: dict, repo: Path, context: dict, github: dict) -> str:
        action = step["uses"].split("@")[0]
        with_ = {k: substitute(v, context) for k, v in (step.get("with") or {}).items()}
        if action == "actions/checkout":  # a fresh work tree, as every job gets one
            subprocess.run(["git", "clean", "-qfdx"], cwd=repo, check=True)
            return "success"
        if action == "actions/setup-python":
            return "success"  # the harness's venv is first on PATH
        if action == "actions/upload-artifact":
            patterns = with_["path"].split()
            # One directory: its contents are the artifact's root; several paths: the repo.
            root = repo / patterns[0] if len(patterns) == 1 else repo
            self.stub.add_artifact(with_["name"], collect_files(repo, patterns, root))
            return "success"
        if action == "actions/download-artifact":
            found = [a for a in self.stub.artifacts if a["name"] == with_["name"]]
            if not found:
                return "failure"
            target = repo / with_.get("path", ".")
            target.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(io.BytesIO(found[-1]["data"])) as archive:
                archive.extractall(target)
            return "success"
        raise AssertionError(f"the harness does not emulate {action}")


# ---------------------------------------------------------------------------
# GitLab CI
# ---------------------------------------------------------------------------

class GitLabRunner(Runner):
    """Runs the jobs of one pipeline whose `rules` match, stage by stage."""

    def run(self, repo: Path, variables: dict[str, str], artifact_ref: str) -> dict[str, JobResult]:
        stages = self.config.get("stages", ["test"])
        default = self.config.get("default", {})
        results: dict[str, JobResult] = {}
        env = {**self.base_env, **{k: str(v) for k, v in (self.config.get("variables") or {}).items()},
               **variables, "CI": "true", "GITLAB_CI": "true",
               "CI_API_V4_URL": self.stub.url + "/api/v4", "CI_PROJECT_ID": "42"}
        jobs = {n: j for n, j in self.config.items() if isinstance(j, dict) and "script" in j}
        for stage in stages:
            for name, job in jobs.items():
                if job.get("stage", "test") != stage:
                    continue
                if not self._rules_match(job.get("rules"), env):
                    results[name] = JobResult(name, "skipped")
                    continue
                if any(r.result == "failure" for r in results.values()):
                    results[name] = JobResult(name, "skipped")
                    continue
                results[name] = self._job(name, job, default, repo, env, artifact_ref)
        return results

    @staticmethod
    def _rules_match(rules: list | None, env: dict) -> bool:
        if not rules:
            return True
        for rule in rules:
            condition = rule.get("if", "")
            python = re.sub(r"\$(\w+)", lambda m: repr(env.get(m[1], "")), condition)
            python = python.replace("&&", " and ").replace("||", " or ")
            python = re.sub(r"\$\w+", "''", python)
            if eval(python, {"__builtins__": {}}):  # noqa: S307 - harness only
                return rule.get("when", "on_success") != "never"
        return False

    def _job(self, name: str, job: dict, default: dict, repo: Path, env: dict,
             artifact_ref: str) -> JobResult:
        job_env = {**env, **{k: re.sub(r"\$(\w+)", lambda m: env.get(m[1], ""), str(v))
                             for k, v in (job.get("variables") or {}).items()}}
        before = job.get("before_script", default.get("before_script", []))
        result = JobResult(name, "success")
        subprocess.run(["git", "clean", "-qfdx"], cwd=repo, check=True)  # a fresh clone per job
        outcome, output = self._script(before + job["script"], repo, job_env)
        result.steps.append(StepResult("script", outcome, output))
        result.result = outcome
        after = job.get("after_script", default.get("after_script", []))
        if after:
            job_env["CI_JOB_STATUS"] = "success" if outcome == "success" else "failed"
            after_outcome, after_output = self._script(after, repo, job_env)
            result.steps.append(StepResult("after_script", after_outcome, after_output))
        paths = (job.get("artifacts") or {}).get("paths", [])
        when = (job.get("artifacts") or {}).get("when", "on_success")
        if paths and (outcome == "success" or when == "always"):
            self.stub.add_artifact(f"{artifact_ref}/{name}", collect_files(repo, paths, repo))
        return result

    def _script(self, lines: list[str], repo: Path, env: dict) -> tuple[str, str]:
        script = self.work / f"gitlab-{len(os.listdir(self.work))}.sh"
        script.write_text("set -eo pipefail\n" + "\n".join(lines) + "\n", encoding="utf-8")
        proc = subprocess.run(["bash", "--noprofile", "--norc", str(script)], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=600)
        return ("success" if proc.returncode == 0 else "failure", proc.stdout + proc.stderr)
