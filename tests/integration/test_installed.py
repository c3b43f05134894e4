"""xpmstore installed from its wheel in a fresh virtual environment (see conftest.py): the wheel
and the sdist hold every module and data file of the sources, every module imports from the
installation, and an experiment, Store lookups, the command line and the job runner work from a
folder outside the repository."""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from ..helpers import REPO_ROOT
from .conftest import DATA_PROBES, PACKAGES, Installation, Ran, installed_name, run, source_files

pytestmark = pytest.mark.slow


def _module_names() -> list[str]:
    """Every module of the repository's sources, by its installed name."""
    names = []
    for folder in PACKAGES:
        for path in source_files(REPO_ROOT, folder):
            if path.suffix == ".py":
                parts = installed_name(path.with_suffix("")).split("/")
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _site_packages(installation: Installation) -> Path:
    (site,) = (installation.venv / "lib").glob("python3*/site-packages")
    return site


def test_the_wheel_holds_every_file_of_the_packages(installation: Installation) -> None:
    names = set(zipfile.ZipFile(installation.wheel).namelist())
    wanted = {installed_name(path) for folder in PACKAGES
              for path in source_files(installation.source, folder)}
    assert {"xpmstore/py.typed", "xpmstore/scheduler/launchers/local.py", "xpmstore/remote/s3.py",
            "xpmstore_cli/main.py", *map(installed_name, map(Path, DATA_PROBES))} <= wanted
    assert sorted(wanted - names) == []
    assert not any(name.startswith(("cli/", "tests/", "benchmarks/", "examples/"))
                   for name in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(installation.wheel).read(entry_points).decode()
    assert "xpmstore = xpmstore_cli:main" in text


def test_the_repository_root_never_shadows_the_installed_cli(installation: Installation) -> None:
    code = "import xpmstore_cli.main; print(xpmstore_cli.__file__)"
    result = run([installation.python, "-c", code], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    imported = Path(result.stdout.strip())
    assert imported == _site_packages(installation) / "xpmstore_cli" / "__init__.py"


def test_the_sdist_holds_every_file_the_build_reads(installation: Installation) -> None:
    with tarfile.open(installation.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wanted = {str(path) for folder in PACKAGES
              for path in source_files(installation.source, folder)}
    assert set(DATA_PROBES) <= wanted
    assert sorted(wanted - names) == []
    assert {"pyproject.toml", "setup.py", "README.md"} <= names


def test_every_module_imports_from_the_installation(installation: Installation) -> None:
    modules = _module_names()
    assert "xpmstore.scheduler.launchers.local" in modules and "xpmstore.remote.s3" in modules
    code = ("import importlib, json, sys\n"
            "print(json.dumps({name: importlib.import_module(name).__file__"
            " for name in sys.argv[1:]}))")
    result = installation.run([installation.python, "-c", code, *modules])
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)
    site = _site_packages(installation)
    assert sorted(files) == sorted(modules)
    assert all(Path(file).is_relative_to(site) for file in files.values()), files


def test_an_experiment_runs_from_another_folder(installation: Installation, ran: Ran) -> None:
    report = ran.report
    site = _site_packages(installation)
    assert report["reasons"] == ["ran", "ran"]
    assert report["status"] == "done"
    assert report["found"] == [report["tasks"]["count"]]
    assert Path(report["report_path"], "report.txt").read_text() == "5 distinct words\n"
    assert Path(report["script"]["xpmstore"]).is_relative_to(site)
    for name, identifier in report["tasks"].items():
        (taskdir,) = ran.workspace.glob(f"jobs/*/{identifier}")
        job = json.loads((taskdir / "process.json").read_text())
        assert job["pid"] != report["script"]["pid"], name
        assert Path(job["xpmstore"]).is_relative_to(site), name
        assert job["parent"][:3] == [str(installation.python), "-m", "xpmstore.scheduler.zygote"], (
            job
        )
    (entry,) = ran.workspace.glob("cache/installed.Words/*")
    assert (entry / "words.txt").read_text() == "and cat dog saw the"
    computed_by = json.loads((entry / "computed-by").read_text())
    count_job = json.loads(next(ran.workspace.glob(
        f"jobs/*/{report['tasks']['count']}/process.json")).read_text())
    assert computed_by["pid"] == count_job["pid"]  # the @cache entry was made in the job


def test_the_command_line_finds_what_the_experiment_made(installation: Installation,
                                                         ran: Ran) -> None:
    listed = installation.xpmstore("ls", workspace=ran.workspace)
    assert listed.returncode == 0, listed.stderr
    rows = sorted(line.split("\t")[1:4] for line in listed.stdout.splitlines())
    assert rows == [["cache", "installed.Words", "done"], ["task", "installed.Count", "done"],
                    ["task", "installed.Report", "done"]]
    report = ran.report["tasks"]["report"]
    shown = installation.xpmstore("show", report[:8], workspace=ran.workspace)
    assert shown.returncode == 0, shown.stderr
    assert f"identifier\t{report}\n" in shown.stdout
    got = installation.xpmstore("get", report, workspace=ran.workspace)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == ran.report["report_path"]
    collected = installation.xpmstore("gc", "--dry-run", workspace=ran.workspace)
    assert collected.returncode == 0, collected.stderr
    lines = collected.stdout.splitlines()  # the roots first, then the summary
    assert lines[0] == "roots:" and lines[-1].startswith("would free: 0 in 0 of 3 objects")
    kept = [path.name for kind in ("jobs", "cache") for path in ran.workspace.glob(f"{kind}/*/*")]
    assert len(kept) == 3 and set(ran.report["tasks"].values()) <= set(kept)  # nothing deleted


def test_the_job_runner_entry_point(installation: Installation, ran: Ran) -> None:
    helped = installation.run([installation.python, "-m", "xpmstore.scheduler.runner", "--help"])
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: python -m xpmstore.scheduler.runner TASKDIR")
    assert helped.stderr == ""
    not_a_task = installation.run([installation.python, "-m", "xpmstore.scheduler.runner",
                                   installation.elsewhere])
    assert not_a_task.returncode == 2
    assert "Traceback" not in not_a_task.stderr
    assert len(not_a_task.stderr.splitlines()) == 1
    assert not_a_task.stderr.startswith("xpmstore.scheduler.runner: ")
    (taskdir,) = ran.workspace.glob(f"jobs/*/{ran.report['tasks']['report']}")
    done = installation.run([installation.python, "-m", "xpmstore.scheduler.runner", taskdir])
    assert (done.returncode, done.stderr) == (0, "")  # done already: nothing runs again


def test_the_web_service_serves_its_shipped_files(installation: Installation, ran: Ran) -> None:
    """``xpmstore serve`` of the installation answers with the pages, the API and the static
    files that the wheel shipped (vendored layout library and its licence included)."""
    import subprocess
    import urllib.request

    process = subprocess.Popen(
        [installation.script, "serve", "-w", ran.workspace, "--port", "0"],
        cwd=installation.elsewhere, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"HOME": str(installation.home), "PATH": str(installation.venv / "bin")})
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""

        def fetch(path: str) -> bytes:
            with urllib.request.urlopen(url.rstrip("/") + path, timeout=30) as answer:
                return bytes(answer.read())

        assert b'data-page="experiments"' in fetch("/")
        assert b"dagre" in fetch("/static/vendor/dagre/dagre.min.js")
        assert b"Permission is hereby granted" in fetch("/static/vendor/dagre/LICENSE")
        assert b"EventSource" in fetch("/static/app.js")
        names = {entry["name"] for entry in json.loads(fetch("/api/names"))}
        assert names == {"installed.Words", "installed.Count", "installed.Report"}
    finally:
        process.send_signal(2)  # Ctrl-C
        assert process.wait(60) == 0


def test_a_wheel_built_in_a_used_tree_holds_no_module_of_an_earlier_build(
        tmp_path: Path) -> None:
    # setuptools builds into build/lib and keeps what an earlier build left there: a module
    # moved or deleted since (the flat modules before the layered tree) would be shipped.
    from ..helpers import PYTHON
    from .conftest import copy_sources

    source = copy_sources(tmp_path / "src")
    for package in ("xpmstore", "xpmstore_cli"):
        stale = source / "build" / "lib" / package / "moved_away.py"
        stale.parent.mkdir(parents=True)
        stale.write_text("raise ImportError('a module of an earlier build')\n")
    built = run([PYTHON, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                 tmp_path / "dist", source], cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("xpmstore-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "xpmstore/scheduler/engine.py" in names
    assert not [n for n in names if n.endswith("moved_away.py")]
