"""Write an environment with many number blocks (issue 11: 1,000 blocks once needed > 6 GB).

    python bench/blocks.py DIR [BLOCKS]      # default 1,000 blocks of 10,000 numbers each

Then measure, e.g.:
    /usr/bin/time -v reconciler validate DIR
    /usr/bin/time -v reconciler plan DIR --state sqlite:///…
"""

from __future__ import annotations

import sys
from pathlib import Path

SITES = 10


def write(env: Path, blocks: int = 1000) -> Path:
    env.mkdir(parents=True, exist_ok=True)
    per_site = -(-blocks // SITES)
    docs = ['kind: Account\ncustomer_number: "7900000"\nname: Blockbau GmbH\n',
            'kind: BasePackage\nid: cf-blocks\naccount: "7900000"\nproduct: CompanyFlex\n'
            'parallel_calls: 500\n']
    sites = []
    for site in range(SITES):
        lines = [f"kind: Site\nid: blocks-{site}\nbase_package: cf-blocks\nusage: cloud_pbx\n"
                 "ip_lines: 10\nnumber_blocks:"]
        for block in range(per_site):
            if site * per_site + block >= blocks:
                break
            prefix = f"+4930{site:02d}{block:04d}"
            lines.append(f'  - {{prefix: "{prefix}", from: "0", to: "9999"}}')
        docs.append("\n".join(lines) + "\n")
        sites.append(f"blocks-{site}")
    docs.append(f'kind: Tenant\nname: blocks\naccount: "7900000"\ndial_plan: 3\n'
                f'sites: [{", ".join(sites)}]\nmain_number: "+4930000000-0"\nusers:\n'
                '  - email: admin@blocks.example\n    name: Admin\n    role: admin\n'
                '    password: {env: BLOCKS_ADMIN_PASSWORD}\n'
                'extensions:\n  - number: "100"\n    name: Empfang\n    pin: "0000"\n')
    (env / "blocks.yaml").write_text("---\n".join(docs), encoding="utf-8")
    return env


if __name__ == "__main__":
    target = write(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
    print(f"{target / 'blocks.yaml'}: {(target / 'blocks.yaml').stat().st_size} bytes")
