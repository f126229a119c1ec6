"""``tripwire slurm submit`` and ``tripwire slurm status``.

``tripwire slurm submit --nodes N --time HH:MM:SS [--partition P] [--cpus-per-node C]
[--wait] [--script PATH] -- <job ...>`` runs ``sbatch [options] slurm/ray-cluster.sbatch
<job ...>``: the script starts a Ray cluster over the allocation's nodes and runs the job
against it. It prints the job id and the output file; with ``--wait`` it polls ``scontrol``
every ``--poll-s`` until the job has ended (at most ``--wait-timeout-s``, default the time
limit plus an hour for the queue) and exits 0 when the job COMPLETED, 1 otherwise (failed,
cancelled, timed out, or its end could not be read: fail closed). For example::

    tripwire slurm submit --nodes 2 --time 00:30:00 --wait -- \\
        python -m serve_apps.jobs.sweep --scenario-seed 7 --returns-threshold 8,10,12 --json

The job's environment is this one (sbatch exports it), plus ``TRIPWIRE_VENV`` (``--venv``,
default: the running interpreter's venv) and ``TRIPWIRE_HOME`` (this checkout) unless they
are already set, so the nodes activate the same venv and find the same code (a shared file
system, as on any HPC cluster).

``tripwire slurm status JOBID`` prints the job's state (``--json``: one object); exit 1 when
SLURM does not know the job. Exit code 2: bad arguments, the message names the option.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tripwire.argtypes import int_in, positive_float
from tripwire.commands.common import add_json
from tripwire.slurm import (
    DEFAULT_OUTPUT,
    DEFAULT_SCRIPT,
    REPO,
    JobInfo,
    SlurmError,
    SubmitOptions,
    job_state,
    output_path,
    submit,
    time_limit_s,
    wait_for,
)

QUEUE_MARGIN_S = 3600.0  # --wait: time a job may pend in the queue on top of its limit
TAIL_LINES = 20  # lines of the job's output printed after --wait


def _job_words(words: Sequence[str]) -> list[str]:
    words = list(words)
    return words[1:] if words[:1] == ["--"] else words


def _environment(venv: str | None) -> dict[str, str]:
    env = dict(os.environ)
    chosen = venv or (sys.prefix if (Path(sys.prefix) / "bin" / "activate").exists() else None)
    if venv or (chosen and "TRIPWIRE_VENV" not in env):
        env["TRIPWIRE_VENV"] = str(Path(chosen).resolve())
    env.setdefault("TRIPWIRE_HOME", str(REPO))
    return env


def _options(args: argparse.Namespace) -> tuple[SubmitOptions, list[str], Path]:
    """Validated options, job words and script; ValueError names the culprit."""
    job = _job_words(args.job)
    if not job:
        raise ValueError("no job given: tripwire slurm submit [options] -- <command ...>")
    script = Path(args.script)
    if not script.is_file():
        raise ValueError(f"--script: no such file: {script}")
    if args.venv and not (Path(args.venv) / "bin" / "activate").is_file():
        raise ValueError(f"--venv: no bin/activate under {args.venv}")
    output = args.output or str(Path.cwd() / DEFAULT_OUTPUT)
    opts = SubmitOptions(nodes=args.nodes, time=args.time, partition=args.partition,
                         cpus_per_node=args.cpus_per_node, output=output,
                         job_name=args.job_name)
    return opts, job, script


def cmd_submit(args: argparse.Namespace) -> int:
    try:
        opts, job, script = _options(args)
        timeout = args.wait_timeout_s or time_limit_s(opts.time) + QUEUE_MARGIN_S
    except ValueError as exc:
        print(f"tripwire slurm submit: {exc}", file=sys.stderr)
        return 2
    try:
        job_id = submit(job, opts, script=script, env=_environment(args.venv))
    except SlurmError as exc:
        print(f"tripwire slurm submit: {exc}", file=sys.stderr)
        return 1
    out = output_path(opts.output, job_id, Path.cwd())
    print(f"job {job_id} submitted ({opts.nodes} node(s), {opts.time}); output: {out}")
    if not args.wait:
        return 0
    try:
        info = wait_for(job_id, poll_s=args.poll_s, timeout_s=timeout,
                        on_change=lambda i: print(f"job {job_id}: {i.state}", file=sys.stderr))
    except SlurmError as exc:  # unknown end: not a success
        print(f"tripwire slurm submit: {exc}", file=sys.stderr)
        return 1
    _print_tail(out)
    print(f"job {job_id} ended {info.state} (exit code {info.exit_code or '?'}); output: {out}")
    return 0 if info.ok else 1


def _print_tail(path: Path) -> None:
    try:
        lines = path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
    except OSError:
        return  # on a node-local output path the login node may not see it
    for line in lines:
        print(f"  | {line}")


def cmd_status(args: argparse.Namespace) -> int:
    try:
        info = job_state(args.job_id)
    except SlurmError as exc:
        print(f"tripwire slurm status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_info_json(info), sort_keys=True))
    else:
        print(f"job {info.job_id}: {info.state} (exit code {info.exit_code or '-'}, "
              f"reason {info.reason or '-'}); output: {info.stdout or '-'}")
    return 0


def _info_json(info: JobInfo) -> dict:
    return {"job_id": info.job_id, "state": info.state, "exit_code": info.exit_code,
            "reason": info.reason, "stdout": info.stdout, "finished": info.finished,
            "ok": info.ok}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``slurm submit`` and ``slurm status`` to the ``tripwire`` command."""
    slurm = subparsers.add_parser("slurm", help="run jobs in a Ray cluster inside SLURM")
    sub = slurm.add_subparsers(dest="slurm_command", required=True)
    s = sub.add_parser("submit", help="sbatch a job into a Ray cluster on N nodes")
    s.add_argument("--nodes", type=int_in(1, 10_000), required=True)
    s.add_argument("--time", required=True, help="time limit, [D-]HH:MM:SS")
    s.add_argument("--partition")
    s.add_argument("--cpus-per-node", type=int_in(1, 4096))
    s.add_argument("--job-name")
    s.add_argument("--script", default=str(DEFAULT_SCRIPT), help="the sbatch script")
    s.add_argument("--venv", help="venv for the nodes (default: this interpreter's)")
    s.add_argument("--output", help="output file pattern (default: ./"
                                    + DEFAULT_OUTPUT.replace("%", "%%") + ")")  # %j: job id
    s.add_argument("--wait", action="store_true", help="wait for the end; exit 0/1 by state")
    s.add_argument("--poll-s", type=positive_float, default=5.0, help="--wait: poll interval")
    s.add_argument("--wait-timeout-s", type=positive_float,
                   help="--wait: give up after this long (default: --time + 1 h)")
    s.add_argument("job", nargs=argparse.REMAINDER, help="-- then the command to run")
    s.set_defaults(func=cmd_submit)
    st = sub.add_parser("status", help="a job's state")
    st.add_argument("job_id", type=int_in(1), metavar="JOBID")
    add_json(st)
    st.set_defaults(func=cmd_status)

