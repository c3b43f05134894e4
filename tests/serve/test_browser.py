"""``xpmstore serve`` in a real browser: headless Chromium driven by Playwright against a real
server process over real experiments (see conftest.py).  Each test saves screenshots of the
pages it visits under its tmp dir (``screenshots/``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import DEADLINE, Experiment, serving, status_of, wait_for

pytestmark = pytest.mark.browser

TIMEOUT_MS = DEADLINE * 1000


def _row(page: Any, identifier: str, status: str) -> str:
    return f'#jobs tr[data-id="{identifier}"][data-status="{status}"]'


def test_a_job_moves_from_running_to_done_while_the_page_is_open(
        tmp_path: Path, start_experiment: Callable[..., Experiment], page: Any) -> None:
    experiment = start_experiment(tmp_path / "ws", "slow")
    directory = experiment.task_dir("slow")
    wait_for(lambda: status_of(directory) == "running", "the job to run")
    (run_file,) = (tmp_path / "ws" / "experiments" / "serve-tests").glob("*.jsonl")
    with serving(tmp_path / "ws") as server:
        page.goto(f"{server.base}/runs/serve-tests/{run_file.stem}")
        page.wait_for_selector(_row(page, directory.name, "running"), timeout=TIMEOUT_MS)
        page.evaluate("window.__notReloaded = true")
        page.shot("run-running")
        experiment.release("slow")
        page.wait_for_selector(_row(page, directory.name, "done"), timeout=TIMEOUT_MS)
        assert page.evaluate("window.__notReloaded") is True  # updated in place: no reload
        page.wait_for_selector("#jobs tr[data-status='done'] >> nth=1", timeout=TIMEOUT_MS)
        page.shot("run-done")
        page.goto(server.base + "/")
        page.wait_for_selector(f'tr[data-run="{run_file.stem}"]', timeout=TIMEOUT_MS)
        page.shot("experiments")
    experiment.wait()


def test_an_objects_log_is_followed_live(
        tmp_path: Path, start_experiment: Callable[..., Experiment], page: Any) -> None:
    experiment = start_experiment(tmp_path / "ws", "talker")
    directory = experiment.task_dir("talker")
    with serving(tmp_path / "ws") as server:
        page.goto(f"{server.base}/objects/{directory.name}")
        log = page.locator("#log-stdout")
        log.wait_for(timeout=TIMEOUT_MS)
        page.locator("#log-stdout", has_text="started talker").wait_for(timeout=TIMEOUT_MS)
        assert "released" not in log.text_content()
        page.shot("object-running")
        experiment.release("talker")
        page.locator("#log-stdout", has_text="released talker").wait_for(timeout=TIMEOUT_MS)
        page.wait_for_selector("#files tr[data-path='metrics.json']", timeout=TIMEOUT_MS)
        page.shot("object-done")
    experiment.wait()


def test_the_provenance_graph_is_drawn_with_its_nodes(done_workspace: Path, page: Any) -> None:
    (gated,) = [d for d in done_workspace.glob("jobs/servetests.Gated/*")
                if "started a\n" in (d / "stdout").read_text()]
    with serving(done_workspace) as server:
        page.goto(f"{server.base}/objects/{gated.name}")
        page.get_by_text("provenance graph").click()
        page.wait_for_selector("#graph svg a.node", timeout=TIMEOUT_MS)
        nodes = page.locator("#graph svg a.node")
        assert nodes.count() == 2  # the task and the Scored task that uses it
        assert page.locator("#graph svg path.edge").count() == 1
        ids = {nodes.nth(i).get_attribute("data-id") for i in range(2)}
        assert gated.name in ids
        (scored,) = ids - {gated.name}
        edge = page.locator("#graph svg path.edge")
        assert (edge.get_attribute("data-from"), edge.get_attribute("data-to")) == (
            gated.name, scored)
        # laid out left to right by dagre: the dependency left of its dependent
        boxes = {nodes.nth(i).get_attribute("data-id"): nodes.nth(i).bounding_box()
                 for i in range(2)}
        assert boxes[gated.name]["x"] < boxes[scored]["x"]
        page.shot("graph")
        page.locator(f'#graph svg a.node[data-id="{scored}"]').click()
        page.wait_for_url(f"**/objects/{scored}", timeout=TIMEOUT_MS)
        page.wait_for_selector("h1 .name", timeout=TIMEOUT_MS)
        assert page.text_content("h1 .name") == "servetests.Scored"


def _column(page: Any, key: str) -> list[str]:
    at = page.locator("#results thead th").evaluate_all(
        f"(cells) => cells.findIndex((c) => c.dataset.key === {key!r})")
    return page.locator(f"#results tbody tr td:nth-child({at + 1})").all_text_contents()


def test_the_results_table_sorts_and_downloads(done_workspace: Path, page: Any) -> None:
    with serving(done_workspace) as server:
        page.goto(f"{server.base}/table")
        page.get_by_role("link", name="servetests.Gated").click()
        page.wait_for_selector("#results tbody tr", timeout=TIMEOUT_MS)
        assert page.locator("#results tbody tr").count() == 3
        keys = page.locator("#results thead th").evaluate_all(
            "(cells) => cells.map((c) => c.dataset.key)")
        # name, epochs and lr differ across the rows; the gate (Meta) is not a param
        assert keys == ["identifier", "param:epochs", "param:lr", "param:name", "tag:lr",
                        "metric:epochs_seen", "metric:loss"]
        header = page.locator('#results th[data-key="metric:loss"]')
        header.click()
        assert _column(page, "metric:loss") == ["2.5", "5", "25"]
        assert _column(page, "param:name") == ["b", "a", "c"]
        assert header.get_attribute("aria-sort") == "ascending"
        page.shot("table-sorted")
        header.click()
        assert _column(page, "metric:loss") == ["25", "5", "2.5"]
        assert header.get_attribute("aria-sort") == "descending"
        with page.expect_download() as download:
            page.click("#csv")
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[0] == ",".join(keys)
        assert len(lines) == 4


def test_a_hostile_path_is_refused(done_workspace: Path, page: Any, tmp_path: Path) -> None:
    (gated,) = [d for d in done_workspace.glob("jobs/servetests.Gated/*")
                if "started b\n" in (d / "stdout").read_text()]
    with serving(done_workspace) as server:
        base = f"{server.base}/api/objects/{gated.name}/file?path="
        for hostile in ("../../../../etc/passwd", "/etc/passwd", "..%2F..%2Fetc%2Fpasswd",
                        ".xpm/done", ".xpm/launch.json", "metrics.json/../params.json"):
            response = page.goto(base + hostile)
            assert response.status == 403, hostile
            assert "root:" not in page.content()
        response = page.goto(f"{server.base}/api/objects/..%2F..%2Fetc/graph")
        assert response.status in (400, 404)
        page.goto(f"{server.base}/objects/%3Cimg%20src=x%20onerror=alert(1)%3E")
        page.wait_for_selector(".error", timeout=TIMEOUT_MS)
        assert "hex" in page.text_content(".error")  # refused, and shown as text
        assert page.locator("main img").count() == 0
        page.shot("hostile-identifier")
        ok = page.goto(base + "metrics.json")
        assert ok.status == 200 and "loss" in page.content()


def test_actions_are_refused_without_allow_actions(
        tmp_path: Path, start_experiment: Callable[..., Experiment], page: Any) -> None:
    experiment = start_experiment(tmp_path / "ws", "victim")
    directory = experiment.task_dir("victim")
    wait_for(lambda: status_of(directory) == "running", "the job to run")
    with serving(tmp_path / "ws") as server:
        page.goto(f"{server.base}/objects/{directory.name}")
        page.wait_for_selector(".summary .status", timeout=TIMEOUT_MS)
        assert page.locator("button.a-kill").count() == 0
        assert "--allow-actions" in page.text_content("#object")
        page.shot("object-read-only")
        refused = page.request.post(f"{server.base}/api/objects/{directory.name}/actions/kill",
                                    headers={"x-xpmstore-action": "1"})
        assert refused.status == 403
        assert "--allow-actions" in refused.json()["error"]
    assert status_of(directory) == "running"
    with serving(tmp_path / "ws", "--allow-actions") as server:
        page.goto(f"{server.base}/objects/{directory.name}")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("button.a-kill", timeout=TIMEOUT_MS)
        page.wait_for_selector("#action-status .ok", timeout=TIMEOUT_MS)
        page.wait_for_selector(".summary .status .s-failed", timeout=TIMEOUT_MS)
        page.shot("object-killed")
    assert status_of(directory) == "failed"
    experiment.process.wait(DEADLINE)
    assert experiment.process.returncode != 0  # the experiment reports the killed job

