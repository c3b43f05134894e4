"""Commands on runs and jobs: jobs, kill, logs, experiments."""

from __future__ import annotations

import sys

import click

from .context import open_workspace, user_errors, workspace_option
from .output import emit_json, on_terminal, short, table, when

__all__ = ["experiments", "jobs", "kill", "logs"]


@click.command(short_help="Running and recent jobs.")
@click.option("--all", "every_run", is_flag=True, help="The jobs of every run, not only of live"
              " runs and of the latest run of each experiment.")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@workspace_option()
@user_errors
def jobs(every_run: bool, as_json: bool) -> None:
    """Running and recent jobs: those of live runs and of the latest run of each experiment.

    Columns: identifier, name, status (read from the task directory), reason, experiment, run,
    elapsed (how long it ran, or runs so far), progress (what a running or failed task
    reported: `epoch 3/10 · train 40% (400/1000)`), tags. Running jobs first.
    """
    from xpmstore.admin.jobs import list_jobs
    from xpmstore.scheduler.livedisplay import elapsed_text
    from xpmstore.store.taskprogress import progress_text

    found = list_jobs(open_workspace(), every_run=every_run)
    if as_json:
        emit_json([j.to_json() for j in found])
        return
    terminal = on_terminal()

    def elapsed(seconds: float | None) -> str:
        if seconds is None:
            return "-"
        return elapsed_text(seconds) if terminal else f"{seconds:.1f}"

    table(["identifier", "name", "status", "reason", "experiment", "run", "elapsed", "progress",
           "tags"],
          [[short(j.identifier), j.name, j.status, j.reason, j.experiment, j.run,
            elapsed(j.elapsed()), progress_text(j.progress) or "-",
            " ".join(f"{k}={v}" for k, v in sorted(j.tags.items())) or "-"]
           for j in found])


@click.command(short_help="Stop a running job (a local process or a Slurm job).")
@click.argument("identifier", metavar="ID|PREFIX")
@click.option("--force", is_flag=True, help="SIGKILL instead of SIGTERM.")
@workspace_option()
@user_errors
def kill(identifier: str, force: bool) -> None:
    """Stop a running job: of this host (SIGTERM to its process group), or of Slurm (scancel).

    The experiment that launched it records it failed (interrupted); it runs again on the next
    submit.
    """
    from xpmstore.admin.jobs import kill as kill_object

    killed = kill_object(open_workspace(), identifier, force=force)
    whom = f"pid {killed.pid}" if killed.pid else "its Slurm job, with scancel"
    click.echo(f"sent {'SIGKILL' if force else 'SIGTERM'} to {killed.name}"
               f" {short(killed.identifier)} ({whom})")


@click.command(short_help="Print (-f: follow) a job's stdout and stderr.")
@click.argument("identifier", metavar="ID|PREFIX")
@click.option("-f", "--follow", is_flag=True, help="Keep printing what the job writes until it"
              " ends (like tail -f).")
@click.option("--stream", type=click.Choice(["both", "stdout", "stderr"]), default="both",
              show_default=True, help="Which log to print.")
@workspace_option()
@user_errors
def logs(identifier: str, follow: bool, stream: str) -> None:
    """Print a job's stdout and stderr (each under a ==> name <== line when both).

    With -f, follow them (interleaved, without headers) while the job runs.
    """
    from xpmstore.admin.jobs import logs as write_logs

    out = sys.stdout.buffer  # bytes as they are (click.get_binary_stream is deprecated)
    try:
        write_logs(open_workspace(), identifier, out, stream=stream, tail=follow)
    except KeyboardInterrupt:
        if not follow:
            raise


@click.command(short_help="Experiments and their runs.")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the runs (with their jobs) as"
              " JSON.")
@workspace_option()
@user_errors
def experiments(name: str | None, as_json: bool) -> None:
    """Experiments and their runs, oldest first.

    A run's status is live (running now), ok, failed, interrupted, or dead (it ended without
    an end line: killed); a record with lines that cannot be read says "(N damaged lines)"
    after it. Columns: experiment, run, status, started, jobs.
    """
    from xpmstore.admin.experiments import experiment_runs
    from xpmstore.scheduler.runs import check_experiment_name

    if name is not None:
        check_experiment_name(name)  # bad input is exit 2, whatever the workspace
    runs = experiment_runs(open_workspace(), name)
    if as_json:
        emit_json([run.to_json() for run in runs])
        return
    table(["experiment", "run", "status", "started", "jobs"],
          [[r.experiment, r.name,
            r.status + (f" ({r.damaged} damaged lines)" if r.damaged else ""),
            when(r.started), len(r.jobs)] for r in runs])
