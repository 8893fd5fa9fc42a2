"""A real SIP client for the Kamailio tests: SIPp (Debian's sip-tester) REGISTERs a phone.

The scenario is the one the demo uses (examples/kamailio/register.xml), ending
in the final answer a test expects: 200 (the login is accepted) or 401 (the
digest is refused: wrong password, or no such subscriber). SIPp exits 0 only
when the scenario ran as written.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import ROOT

SCENARIO = ROOT / "examples" / "kamailio" / "register.xml"
FINAL = '<recv response="200"/>'


def register(port: int, user: str, domain: str, password: str, expect: int,
             workdir: Path) -> subprocess.CompletedProcess:
    """REGISTER user@domain at 127.0.0.1:port; returncode 0 when the answer was `expect`."""
    scenario = workdir / f"register-{expect}.xml"
    text = SCENARIO.read_text(encoding="utf-8")
    assert text.count(FINAL) == 1
    scenario.write_text(text.replace(FINAL, f'<recv response="{expect}"/>'), encoding="utf-8")
    return subprocess.run(
        ["sipp", f"127.0.0.1:{port}", "-sf", str(scenario), "-m", "1", "-l", "1",
         "-s", user, "-au", user, "-ap", password, "-key", "domain", domain,
         "-i", "127.0.0.1", "-bind_local", "-p", "0", "-timeout", "10", "-timeout_error",
         "-recv_timeout", "5000", "-nostdin", "-nd", "-trace_err"],
        cwd=workdir, capture_output=True, text=True, timeout=30)
