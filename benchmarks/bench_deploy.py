"""4. ``hyac deploy`` wall time (process start to exit) of a project made by ``hyac init``:
unchanged (a no-op: no new version) and after a one-line change (a new version: upload,
syntax check, store), against ``python -c "import typer"``.
"""

from __future__ import annotations

import subprocess
import sys

from benchmarks.harness import Context, Figure, figure, hyac_command, median, running_agent, time_command


def run(ctx: Context) -> list[Figure]:
    runs = ctx.pick(3, 15)
    baseline_cmd = [sys.executable, "-c", "import typer"]
    with running_agent(ctx, "deploy") as agent:
        env = agent.env
        home = agent.data_dir.parent
        subprocess.run([*hyac_command(), "init", "proj"], cwd=home, env=env, check=True,
                       capture_output=True, timeout=120)
        project = home / "proj"
        source = project / "functions" / "hello.py"
        original = source.read_text()
        deploy_cmd = [*hyac_command(), "deploy"]
        time_command(deploy_cmd, 1, env=env, cwd=project)  # the first deploy: v1
        time_command(baseline_cmd, 2)
        noop: list[float] = []
        change: list[float] = []
        baseline: list[float] = []
        for i in range(runs):
            baseline += time_command(baseline_cmd, 1)
            noop += time_command(deploy_cmd, 1, env=env, cwd=project)
            source.write_text(original + f"\n# edit {i}\n")
            change += time_command(deploy_cmd, 1, env=env, cwd=project)
        with agent.client() as client:
            versions = client.get("/v1/functions/hello/versions").json()
    if len(versions) != runs + 1:
        raise RuntimeError(f"expected {runs + 1} versions, the agent has {len(versions)}")
    base = median(baseline)
    detail = {"runs": runs, "statistic": "median", "functions": 1}
    return [
        figure("deploy.noop", "hyac deploy, unchanged", median(noop), "s", base,
               'python -c "import typer"', **detail),
        figure("deploy.one_line", "hyac deploy, one-line change", median(change), "s", base,
               'python -c "import typer"', **detail),
    ]
