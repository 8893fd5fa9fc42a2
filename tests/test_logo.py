"""Logos: a new image under the same name is an update; the size is checked with Pillow."""

from __future__ import annotations

from PIL import Image

from helpers import Env, applied_templates, make_env  # noqa: F401 - fixtures


def test_new_logo_content_is_an_update(make_env):
    env: Env = make_env("partner-hosted", applied=True)
    assert env.plan_json()["actions"] == []
    Image.new("RGB", (120, 40), (10, 120, 200)).save(env.file("assets/nordlicht-logo.png"))
    actions = env.plan_json()["actions"]
    assert [(a["action"], a["id"], list(a["changes"])) for a in actions] == [
        ("update", "partner-root", ["logo_sha256"])]
    assert env.apply("--auto-approve").returncode == 0
    assert env.plan_json()["actions"] == []


def test_oversized_logo_is_refused_before_anything_changes(make_env):
    env: Env = make_env("partner-hosted", applied=True)
    serial = env.serial()
    Image.new("RGB", (1200, 300)).save(env.file("assets/nordlicht-logo.png"))
    result = env.plan()
    assert result.returncode == 1
    assert "logo 'assets/nordlicht-logo.png' is 1200×300 pixels, larger than 600×200" in result.stdout
    assert env.serial() == serial
