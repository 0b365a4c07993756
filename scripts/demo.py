"""`make demo`: start the sandbox, sync the bundled sample exports into it twice, stop it.

The second run shows the incremental behaviour: nothing changed, so nothing is sent. Everything
goes through the real `masivo-sync` command, exactly as a user would run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-output"
SANDBOX_KEY = "demo-0000-4000-8000-sandbox"  # the sandbox's key, not a real Masivo key
INPUTS = [
    ROOT / "sample_data" / "generic_devices.csv",
    ROOT / "sample_data" / "onesignal_export.csv.gz",
]


def masivo_sync(*args: str, env: dict[str, str] | None = None) -> int:
    cmd = [sys.executable, "-m", "pipeline", *args]
    print(f"\n$ masivo-sync {' '.join(args)}", flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    sandbox = subprocess.Popen(
        # a little latency and 5% of 500s, so the demo shows retries doing their work
        [
            sys.executable,
            "-m",
            "pipeline",
            "sandbox",
            "--port",
            "0",
            "--api-key",
            SANDBOX_KEY,
            "--latency-ms",
            "5",
            "--error-500-rate",
            "0.05",
            "--seed",
            "1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        line = sandbox.stdout.readline().strip()
        if "http" not in line:
            print(f"the sandbox did not start: {line!r}", file=sys.stderr)
            return 1
        base_url = line[line.index("http") :]
        print(line, flush=True)
        env = dict(os.environ, MASIVO_API_KEY=SANDBOX_KEY, MASIVO_BASE_URL=base_url)
        env.pop("MASIVO_ACCESS_TOKEN", None)
        inputs = [str(p.relative_to(ROOT)) for p in INPUTS if p.exists()]
        state = str((OUT / "state").relative_to(ROOT))
        common = [*inputs, "--state-dir", state]
        masivo_sync("validate", *inputs, "--report-dir", "demo-output/validate", env=env)
        code = masivo_sync("sync", *common, "--report-dir", "demo-output/first-run", env=env)
        masivo_sync("sync", *common, "--report-dir", "demo-output/second-run", env=env)
        print(
            "\nThe second run sent nothing: the state remembers what Masivo accepted.\n"
            f"Reports: {OUT.relative_to(ROOT)}/first-run/ (summary.json, results.csv, results.parquet)\n"
            f"HTML report: {OUT.relative_to(ROOT)}/first-run/report.html"
        )
        return 0 if code in (0, 1) else code
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
