"""2. The CLI, process start to result printed: ``hyac invoke`` of a warm echo function and
``hyac --help``, against starting Python and importing Typer (``python -c "import typer"``),
the least any Typer CLI can cost. Runs alternate so that noise hits every command alike.
"""

from __future__ import annotations

import sys

from benchmarks.harness import (
    ECHO_BODY,
    ECHO_SOURCE,
    Context,
    Figure,
    deploy,
    figure,
    hyac_command,
    median,
    running_agent,
    time_command,
)


def run(ctx: Context) -> list[Figure]:
    runs = ctx.pick(5, 30)
    baseline_cmd = [sys.executable, "-c", "import typer"]
    with running_agent(ctx, "cli") as agent:
        deploy(agent, "echo", ECHO_SOURCE)
        invoke_cmd = [*hyac_command(), "invoke", "echo", "--data", ECHO_BODY.decode()]
        help_cmd = [*hyac_command(), "--help"]
        env = agent.env
        commands = {"baseline": baseline_cmd, "invoke": invoke_cmd, "help": help_cmd}
        for argv in commands.values():  # warm the page cache and the worker
            time_command(argv, 2, env=env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, argv in commands.items():
                samples[name] += time_command(argv, 1, env=env)
    base = median(samples["baseline"])
    detail = {"runs": runs, "statistic": "median"}
    return [
        figure("cli.invoke", "hyac invoke (warm)", median(samples["invoke"]), "s", base,
               'python -c "import typer"', at_most=2.5, **detail),
        figure("cli.help", "hyac --help", median(samples["help"]), "s", base,
               'python -c "import typer"', at_most=1.5, **detail),
    ]
