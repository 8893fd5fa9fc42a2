"""A real SIP client for the Kamailio tests: SIPp (Debian's sip-tester) REGISTERs a phone.

One REGISTER scenario, ending in the final answer a test expects: 200 (the
login is accepted) or 401 (the digest is refused: wrong password, or no such
subscriber). SIPp exits 0 only when the scenario ran as written.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REGISTER = """REGISTER sip:[domain] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[service]@[domain]>;tag=[call_number]
To: <sip:[service]@[domain]>
Call-ID: [call_id]
CSeq: {cseq} REGISTER
Contact: <sip:[service]@[local_ip]:[local_port]>
{auth}Max-Forwards: 70
Expires: 60
Content-Length: 0
"""

SCENARIO = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="register, expect {expect}">
  <send retrans="500"><![CDATA[
{first}
]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
{second}
]]></send>
  <recv response="{expect}"/>
</scenario>
"""


def register(port: int, user: str, domain: str, password: str, expect: int,
             workdir: Path) -> subprocess.CompletedProcess:
    """REGISTER user@domain at 127.0.0.1:port; returncode 0 when the answer was `expect`."""
    scenario = workdir / f"register-{expect}.xml"
    scenario.write_text(SCENARIO.format(
        expect=expect, first=REGISTER.format(cseq=1, auth=""),
        second=REGISTER.format(cseq=2, auth="[authentication]\n")), encoding="utf-8")
    return subprocess.run(
        ["sipp", f"127.0.0.1:{port}", "-sf", str(scenario), "-m", "1", "-l", "1",
         "-s", user, "-au", user, "-ap", password, "-key", "domain", domain,
         "-i", "127.0.0.1", "-bind_local", "-p", "0", "-timeout", "10", "-timeout_error",
         "-recv_timeout", "5000", "-nostdin", "-nd", "-trace_err"],
        cwd=workdir, capture_output=True, text=True, timeout=30)
