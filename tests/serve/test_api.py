"""The JSON API of ``xpmstore serve`` and its guards, over a workspace where a real experiment
ran: in process (Starlette's TestClient over the real disk and index) and, for what needs real
connections (dropped event streams, the token printed at start, Ctrl-C), a real server."""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from xpmstore.serve.app import LOOPBACK_HOSTS, ServeConfig, make_app
from xpmstore.store.pins import pinned
from xpmstore.store.workspace import Workspace

from ..clihelpers import XPMSTORE
from ..helpers import PYTHON, REPO_ROOT
from .conftest import DEADLINE, serving, wait_for


def client(workspace: Path, **options: Any) -> TestClient:
    """A client of an application serving ``workspace`` (any Host accepted unless said)."""
    options.setdefault("allowed_hosts", ["*"])
    return TestClient(make_app(ServeConfig(workspace=Workspace.at(workspace), **options)))


@pytest.fixture(scope="module")
def api(done_workspace: Path) -> TestClient:
    """A read-only client of the done experiment's workspace."""
    return client(done_workspace)


def gated(workspace: Path, name: str) -> Path:
    """The directory of the Gated task ``name``."""
    (found,) = [d for d in workspace.glob("jobs/servetests.Gated/*")
                if f"started {name}\n" in (d / "stdout").read_text()]
    return found


@pytest.fixture
def copied(done_workspace: Path, tmp_path: Path) -> Path:
    """A copy of the done workspace that a test may change (its index is rebuilt there)."""
    target = tmp_path / "copy"
    shutil.copytree(done_workspace, target, ignore=shutil.ignore_patterns("index", "locks"))
    return target


# --- reading ----------------------------------------------------------------------------------

def test_experiments_and_their_runs_with_counts(api: TestClient) -> None:
    (experiment,) = api.get("/api/experiments").json()
    assert experiment["name"] == "serve-tests"
    (run,) = experiment["runs"]
    assert run["status"] == "ok" and run["jobs"] == 6
    assert run["counts"] == {"done": 6, "running": 0, "queued": 0, "failed": 0, "reused": 0,
                             "not run": 0}


def test_a_run_lists_its_jobs_with_state_reason_tags_launcher_and_times(api: TestClient) -> None:
    (experiment,) = api.get("/api/experiments").json()
    name = experiment["runs"][0]["run"]
    run = api.get(f"/api/runs/serve-tests/{name}").json()
    assert {job["name"] for job in run["jobs"]} == {"servetests.Gated", "servetests.Scored"}
    for job in run["jobs"]:
        assert job["status"] == "done" and job["reason"] == "ran:new"
        assert job["launcher"].startswith("local(")
        assert job["started"] <= job["ended"]
        assert job["tags"]["lr"] in (0.1, 0.01)
    assert api.get("/api/runs/serve-tests/nope").status_code == 404
    assert api.get("/api/runs/.hidden/x").status_code == 400


def test_an_object_has_its_params_tree_with_defaults_files_logs_and_dependents(
        api: TestClient, done_workspace: Path) -> None:
    directory = gated(done_workspace, "a")
    data = api.get(f"/api/objects/{directory.name[:10]}").json()
    assert data["identifier"] == directory.name and data["status"] == "done"
    kinds = {node["name"]: node["kind"] for node in data["tree"]}
    assert kinds == {"name": "param", "epochs": "default", "lr": "default", "gate": "meta"}
    paths = [f["path"] for f in data["files"]["files"]]
    assert paths == ["metrics.json", "params.json", "stderr", "stdout"]
    assert data["log_names"] == ["stdout", "stderr"]
    (dependent,) = data["dependents"]
    scored = api.get(f"/api/objects/{dependent}").json()
    assert scored["name"] == "servetests.Scored"
    (source,) = scored["tree"]
    assert source["task"] is True and source["id"] == directory.name
    assert {n["name"]: n["kind"] for n in source["children"]}["epochs"] == "default"


def test_an_object_whose_params_json_is_damaged_says_so(copied: Path) -> None:
    directory = gated(copied, "a")
    (directory / "params.json").write_bytes(b"\x00\xff{{{")
    damaged = client(copied)
    answer = damaged.get(f"/api/objects/{directory.name}")
    assert answer.status_code == 200
    data = answer.json()
    assert data["damaged"].startswith(f"{directory / 'params.json'}: not valid JSON"), data
    assert data["params"] is None and data["tree"] is None
    assert damaged.get("/api/health").status_code == 200  # and the server goes on


@pytest.mark.parametrize(("text", "status"), [("x..", 400), ("XYZ", 400), ("f" * 64, 404),
                                              ("", 404), ("0" * 65, 400)])
def test_bad_identifiers_are_refused(api: TestClient, text: str, status: int) -> None:
    response = api.get(f"/api/objects/{text}")
    assert response.status_code == status
    assert "\n" not in response.json()["error"]


def test_search_filters_like_ls_and_find_and_pages(api: TestClient) -> None:
    def search(query: str) -> dict[str, Any]:
        response = api.get(f"/api/search?{query}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    everything = search("")
    assert everything["total"] == 6
    assert search("name=servetests.Gated")["total"] == 3
    assert search("kind=cache")["total"] == 0
    assert search("status=done&tag=lr=0.01")["total"] == 2  # the task and its Scored user
    assert search("name=servetests.Gated&param=epochs=4")["total"] == 2
    assert search("name=servetests.Gated&param=epochs=2")["total"] == 1  # a default counts
    assert search("name=servetests.Scored&param=source.lr=0.01")["total"] == 1  # through refs
    first = everything["items"][0]["identifier"]
    assert search(f"prefix={first[:8]}")["items"][0]["identifier"] == first
    paged = search("per_page=4&page=2")
    assert (paged["pages"], paged["page"], len(paged["items"])) == (2, 2, 2)
    assert [i["identifier"] for i in search("per_page=4")["items"] + paged["items"]] == [
        i["identifier"] for i in everything["items"]]
    for bad in ("status=nope", "kind=nope", "page=x", "tag=novalue", "param=epochs=4"):
        response = api.get(f"/api/search?{bad}")
        assert response.status_code == 400, bad
        assert "\n" not in response.json()["error"]


def test_the_results_table_its_sort_and_csv(api: TestClient) -> None:
    table = api.get("/api/table/servetests.Gated?sort=metric:loss").json()
    keys = [c["key"] for c in table["columns"]]
    assert keys == ["identifier", "param:epochs", "param:lr", "param:name", "tag:lr",
                    "metric:epochs_seen", "metric:loss"]
    assert [row[keys.index("metric:loss")] for row in table["rows"]] == [2.5, 5.0, 25.0]
    descending = api.get("/api/table/servetests.Gated?sort=param:name&desc=1").json()
    assert [row[keys.index("param:name")] for row in descending["rows"]] == ["c", "b", "a"]
    response = api.get("/api/table/servetests.Gated/csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == keys and len(rows) == 4


@pytest.mark.parametrize("metrics", ["../../../../etc/passwd", "/etc/passwd", ".xpm/done",
                                     "stdout/../metrics.json", "nope.json"])
def test_a_hostile_metrics_file_reads_nothing(api: TestClient, metrics: str) -> None:
    table = api.get("/api/table/servetests.Gated", params={"metrics": metrics}).json()
    assert table["missing"] == 3
    assert [c for c in table["columns"] if c["group"] == "metric"] == []


def test_the_provenance_graph(api: TestClient, done_workspace: Path) -> None:
    directory = gated(done_workspace, "b")
    graph = api.get(f"/api/objects/{directory.name}/graph?depth=5").json()
    assert graph["root"] == directory.name
    assert {n["distance"] for n in graph["nodes"]} == {0, 1}
    (edge,) = graph["edges"]
    assert edge["from"] == directory.name
    assert api.get(f"/api/objects/{directory.name}/graph?depth=x").status_code == 400


# --- files and logs ---------------------------------------------------------------------------

HOSTILE = ["../../../../etc/passwd", "/etc/passwd", "./metrics.json", "metrics.json/",
           "stdout/../metrics.json", ".xpm/done", ".xpm/launch.json", ".xpm/attempts/1/../../done",
           ".xpm/attempts/0/stdout", "metrics.json\x00", "", "params.json/..", "%2e%2e/etc/passwd"]


@pytest.mark.parametrize("path", HOSTILE)
def test_a_crafted_path_is_refused(api: TestClient, done_workspace: Path, path: str) -> None:
    directory = gated(done_workspace, "a")
    for endpoint in ("file", "log", "events/log"):
        key = "path" if endpoint == "file" else "name"
        url = (f"/api/events/objects/{directory.name}/log" if endpoint == "events/log"
               else f"/api/objects/{directory.name}/{endpoint}")
        response = api.get(url, params={key: path})
        assert response.status_code == 403, (endpoint, path)
        assert "root:" not in response.text


def test_files_are_served_as_text_never_as_html(api: TestClient, done_workspace: Path) -> None:
    directory = gated(done_workspace, "a")
    response = api.get(f"/api/objects/{directory.name}/file", params={"path": "metrics.json"})
    assert response.status_code == 200 and json.loads(response.text)["loss"] == 5.0
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"
    download = api.get(f"/api/objects/{directory.name}/file",
                       params={"path": "stdout", "download": "1"})
    assert download.headers["content-disposition"] == 'attachment; filename="stdout"'
    chunk = api.get(f"/api/objects/{directory.name}/log?name=stdout&offset=8&limit=6").json()
    assert (chunk["text"], chunk["offset"]) == ("a\nrele", 14)


def test_a_link_put_in_place_of_a_listed_file_is_refused(copied: Path) -> None:
    directory = gated(copied, "a")
    (directory / "metrics.json").unlink()
    (directory / "metrics.json").symlink_to("/etc/passwd")
    (directory / "stdout").unlink()
    (directory / "stdout").symlink_to("/etc/passwd")
    served = client(copied)
    for path in ("metrics.json", "stdout"):
        response = served.get(f"/api/objects/{directory.name}/file", params={"path": path})
        assert response.status_code == 403, path
        assert "root:" not in response.text
    table = served.get("/api/table/servetests.Gated").json()
    assert table["missing"] == 1


# --- guards -----------------------------------------------------------------------------------

def test_actions_need_allow_actions_and_the_action_header(copied: Path) -> None:
    directory = gated(copied, "a")
    url = f"/api/objects/{directory.name}/actions/pin"
    read_only = client(copied)
    response = read_only.post(url, headers={"x-xpmstore-action": "1"})
    assert response.status_code == 403 and "--allow-actions" in response.json()["error"]
    allowed = client(copied, allow_actions=True)
    assert allowed.post(url).status_code == 403  # no header: a form of another site
    assert pinned(Workspace.at(copied)) == set()
    response = allowed.post(url, headers={"x-xpmstore-action": "1"})
    assert response.status_code == 200, response.text
    assert pinned(Workspace.at(copied)) == {directory.name}
    response = allowed.post(f"/api/objects/{directory.name}/actions/explode",
                            headers={"x-xpmstore-action": "1"})
    assert response.status_code == 404
    response = allowed.post(f"/api/objects/{directory.name}/actions/rm",
                            headers={"x-xpmstore-action": "1"})
    assert response.status_code == 409 and "depend" in response.json()["error"]
    assert directory.is_dir()
    response = allowed.post(f"/api/objects/{directory.name}/actions/kill",
                            headers={"x-xpmstore-action": "1"})
    assert response.status_code == 409 and "not running" in response.json()["error"]


def test_the_token_is_required_off_loopback(done_workspace: Path) -> None:
    served = client(done_workspace, token="s3cret")
    assert served.get("/api/health").status_code == 401
    assert served.get("/api/health?token=wrong").status_code == 401
    response = served.get("/search?token=s3cret&name=x", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/search?name=x"
    assert "samesite=strict" in response.headers["set-cookie"].lower()
    assert served.get("/api/health").status_code == 200  # the cookie carries it now
    bearer = client(done_workspace, token="s3cret")
    assert bearer.get("/api/health", headers={"authorization": "Bearer s3cret"}).status_code == 200


def test_loopback_serves_only_loopback_host_names(done_workspace: Path) -> None:
    served = client(done_workspace, allowed_hosts=list(LOOPBACK_HOSTS))
    assert served.get("/api/health", headers={"host": "127.0.0.1:8642"}).status_code == 200
    assert served.get("/api/health", headers={"host": "localhost"}).status_code == 200
    assert served.get("/api/health", headers={"host": "[::1]:8642"}).status_code == 200
    for evil in ("evil.example", "evil.example:8642", "127.0.0.1.evil.example", "[::2]:80", ""):
        assert served.get("/api/health", headers={"host": evil}).status_code == 400, evil


def test_pages_carry_a_strict_content_security_policy(api: TestClient) -> None:
    response = api.get("/")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert api.get("/static/vendor/dagre/dagre.min.js").status_code == 200
    assert api.get("/static/../app.py").status_code == 404


# --- a real server ----------------------------------------------------------------------------

def _open_stream(base: str, path: str) -> socket.socket:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=DEADLINE)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
                 .encode())
    received = b""
    while b"\ndata:" not in received:
        data = sock.recv(65536)
        assert data, received
        received += data
    assert received.startswith(b"HTTP/1.1 200")
    return sock


def test_a_dropped_event_stream_costs_the_server_nothing(done_workspace: Path) -> None:
    with serving(done_workspace) as server:
        streams = [_open_stream(server.base, "/api/events/experiments") for _ in range(3)]
        assert server.get("/api/health").json()["streams"] == 3
        for sock in streams:
            sock.close()  # a closed browser: no goodbye
        wait_for(lambda: server.get("/api/health").json()["streams"] == 0,
                 "the server to let the dropped streams go")
        assert server.get("/api/health").json()["streams_opened"] == 3


def test_a_non_loopback_host_prints_a_token(done_workspace: Path) -> None:
    with serving(done_workspace, "--host", "0.0.0.0") as server:
        assert "?token=" in server.url
        port = server.base.rsplit(":", 1)[1]
        plain = f"http://127.0.0.1:{port}"
        assert httpx2.get(f"{plain}/api/health", timeout=30).status_code == 401
        token = server.url.split("?token=", 1)[1]
        assert httpx2.get(f"{plain}/api/health", timeout=30,
                         headers={"authorization": f"Bearer {token}"}).status_code == 200


def test_serve_without_the_extra_says_what_to_install(done_workspace: Path) -> None:
    code = ("import sys\n"
            "for name in ('starlette', 'uvicorn', 'jinja2'): sys.modules[name] = None\n"
            "from xpmstore_cli.main import main\n"
            f"sys.exit(main(['serve', '-w', {str(done_workspace)!r}]))")
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=DEADLINE, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == ("xpmstore: xpmstore serve needs starlette, uvicorn, jinja2:"
                                   " pip install 'xpmstore[serve]'")


def test_a_port_in_use_is_one_line(done_workspace: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([XPMSTORE, "serve", "-w", str(done_workspace), "--port", str(port)],
                              capture_output=True, text=True, timeout=DEADLINE, check=False)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"xpmstore: cannot listen on 127.0.0.1:{port}: ")


def test_a_page_of_search_reads_each_status_again_and_the_listing_is_remade(
        copied: Path) -> None:
    served = client(copied, catalog_age=3600.0)
    (item,) = served.get("/api/search?name=servetests.Scored&per_page=1").json()["items"]
    assert item["status"] == "done"
    directory = next(copied.glob(f"jobs/servetests.Scored/{item['identifier']}"))
    (directory / ".xpm" / "done").unlink()  # no longer done: the page says so at once
    (again,) = served.get("/api/search?name=servetests.Scored&per_page=1").json()["items"]
    assert again["identifier"] == item["identifier"] and again["status"] != "done"
    fresh = client(copied, catalog_age=0.0)  # every search remakes the listing behind it
    assert fresh.get("/api/search").json()["total"] == 6
    shutil.rmtree(directory)
    wait_for(lambda: fresh.get("/api/search").json()["total"] == 5,
             "the listing to be made again without the removed object")


def test_a_listing_is_kept_while_nothing_it_is_made_of_changed(copied: Path) -> None:
    from xpmstore.admin.ls import list_entries
    from xpmstore.serve.catalog import Catalog
    from xpmstore.store.lookup import Store

    calls: list[int] = []

    def lister(store: Store) -> list[dict[str, Any]]:
        calls.append(1)
        return list_entries(store)

    store = Store(copied)
    # The copy has no index: fill it now.  A listing that fills the index changed what it is
    # made of (the index's last transaction moved after it started), so it would be made again.
    assert store.reconcile() == (6, 0)
    catalog = Catalog(store, max_age=0.0, lister=lister)
    assert len(catalog.entries()) == 6 and len(calls) == 1
    before = set(threading.enumerate())
    for _ in range(3):
        catalog.entries()  # stale, but the index and the class folders did not change
    # No listing started: none on its way (threads first: one that ended has been counted).
    assert not [t for t in threading.enumerate() if t not in before], "a listing started"
    assert len(calls) == 1
    directory = gated(copied, "a")
    (directory.parent / ("0" * 64)).mkdir()  # a new task directory (not done)
    wait_for(lambda: len(catalog.entries()) == 7, "a new listing with the new object")
    wait_for(lambda: not catalog._refreshing, "the listing's thread to end")
    # The listing that saw the new directory wrote the index (the folder's new stamp): it must
    # not count as a change after it, or every listing would be made twice.
    before = set(threading.enumerate())
    for _ in range(3):
        catalog.entries()
    assert not [t for t in threading.enumerate() if t not in before], "a listing started again"
    assert len(calls) == 2


def test_the_remote_which_objects_it_holds_and_a_pull_from_a_page(
        copied: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xpmstore.remote import open_remote, push

    workspace = Workspace.at(copied)
    (tmp_path / "remote").mkdir()  # as `xpmstore remote init` would: a push never does
    monkeypatch.setenv("XPMSTORE_REMOTE", (tmp_path / "remote").as_uri())
    (scored, *_) = sorted(p.name for p in copied.glob("jobs/servetests.Scored/*"))
    remote = open_remote(workspace)
    assert remote is not None
    assert not push(workspace, [scored], remote).failed
    served = client(copied, allow_actions=True)
    assert served.get(f"/api/objects/{scored}/remote").json()["present"] is True
    other = gated(copied, "a").name
    assert served.get(f"/api/objects/{other}/remote").json()["present"] is False
    listed = served.get("/api/remote?list=1").json()
    assert [(i["identifier"], i["local"]) for i in listed["items"]] == [(scored, True)]
    action = {"x-xpmstore-action": "1"}
    assert served.post(f"/api/objects/{scored}/actions/rm", headers=action).status_code == 200
    assert served.get(f"/api/objects/{scored}").status_code == 404
    assert served.get(f"/api/objects/{scored}/remote").json()["present"] is True  # not here
    assert served.get("/api/remote?list=1").json()["items"][0]["local"] is False
    pulled = served.post(f"/api/objects/{scored}/actions/pull", headers=action)
    assert pulled.status_code == 200, pulled.text
    assert served.get(f"/api/objects/{scored}").json()["status"] == "done"
    missing = served.post(f"/api/objects/{'f' * 64}/actions/pull", headers=action)
    assert missing.status_code == 404
