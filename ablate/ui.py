"""``ablate ui``: the MLflow UI on this project's store, bound to 127.0.0.1 by default.

``mlflow server`` starts a tree of processes (uvicorn and its workers, a job runner and its
huey consumers, some in sessions of their own), and a signal to it reaches none of them. So
the server runs in a process group of its own, ``ablate ui`` adopts whatever is orphaned
below it (Linux: a child subreaper), and SIGTERM, SIGINT or SIGHUP to ``ablate ui`` stops
every process below it: SIGTERM, then SIGKILL for those still up after a few seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path
from types import FrameType

from ablate.errors import AblateError
from ablate.tracking import ARTIFACTS, DEFAULT_STORE, client, tracking_uri, working_root

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE = 5.0  # seconds between SIGTERM and SIGKILL
PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ablate ui", description=__doc__)
    parser.add_argument(
        "--uri",
        help="tracking store URI (default: $MLFLOW_TRACKING_URI, "
        f"else sqlite:///<root>/{DEFAULT_STORE})",
    )
    parser.add_argument("--root", default=".", help="the working root holding mlflow.db")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    uri = tracking_uri(args.uri, args.root)
    if uri.startswith("sqlite:///"):
        store = Path(uri.removeprefix("sqlite:///"))
        if not store.is_file():
            raise AblateError(
                f"no MLflow store at {store}: run `ablate train` first, or pass --uri"
            )
    elif uri.startswith(("http://", "https://")):
        raise AblateError(f"{uri} is a tracking server already: open it in a browser")
    check_port(args.host, args.port)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        (working_root(args.root) / ARTIFACTS).as_uri(),
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    address = f"http://{args.host}:{args.port}"
    print(f"MLflow UI for {uri} at {address} (Ctrl-C to stop)", flush=True)
    for name, link in experiment_links(uri, address):
        print(f"  {name}: {link}", flush=True)
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
    }
    return serve(command, env)


def experiment_links(uri: str, address: str) -> list[tuple[str, str]]:
    """Per experiment with job runs: its page in MLflow's model-training view (MLflow 3.17
    opens experiments in its GenAI view unless the address says `workflowType`), listing its
    job runs flat (named cell/task/trial) by their test value, best first. MLflow keeps the
    chosen columns in the browser, so the values themselves are one Columns choice away."""
    mlflow = client(uri)
    links = []
    for experiment in mlflow.search_experiments():
        job = mlflow.search_runs(
            [experiment.experiment_id], "tags.`ablate.kind` = 'job'", max_results=1
        )
        if not job:
            continue
        tags = job[0].data.tags
        query = {
            "workflowType": "machine_learning",
            "searchFilter": "tags.`ablate.kind` = 'job'",
            "orderByKey": f"metrics.`test_{tags.get('metric', 'loss')}`",
            "orderByAsc": str(tags.get("direction", "minimize") == "minimize").lower(),
        }
        page = f"{address}/#/experiments/{experiment.experiment_id}/runs"
        links.append((experiment.name, f"{page}?{urllib.parse.urlencode(query)}"))
    return links


def check_port(host: str, port: int) -> None:
    """Refuse a port that something already listens on, before saying where the UI is: the
    address would show another store. (SO_REUSEADDR, as uvicorn binds: a port whose last
    connections linger in TIME_WAIT is free.)"""
    if not 0 < port < 65536:
        raise AblateError(f"--port must be between 1 and 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        raise AblateError(f"--host {host}: {err.strerror}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise AblateError(
                    f"port {port} on {host} is in use (another `ablate ui`, or another "
                    "server): stop it, or choose another port with --port"
                ) from None
            raise AblateError(f"cannot listen on {host}:{port}: {err.strerror}") from None


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def serve(command: list[str], env: dict[str, str]) -> int:
    """Run the server until it ends or a stop signal comes; then leave no process behind."""
    _become_subreaper()
    # Installed whatever was inherited: a shell ignores SIGINT in jobs it starts with `&`.
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stop)
    server: subprocess.Popen[bytes] | None = None
    stopped_by: int | None = None
    try:
        server = subprocess.Popen(command, env=env, start_new_session=True)
        while True:
            try:
                server.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                _reap_adopted(server.pid)
    except _Stop as stop:
        stopped_by = stop.signum
    finally:
        for signum in STOP_SIGNALS:  # one stop at a time; it is bounded by GRACE
            signal.signal(signum, signal.SIG_IGN)
        stop_tree(server)
    if stopped_by is not None:
        print(f"ablate ui: stopped ({signal.Signals(stopped_by).name})", file=sys.stderr)
        return 0
    assert server is not None
    code = server.returncode
    print(
        f"ablate ui: error: the MLflow server stopped by itself (exit {code}); see above",
        file=sys.stderr,
    )
    return code if code and code > 0 else 1


def stop_tree(server: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM every process below this one (and the server's process group), SIGKILL those
    still up after GRACE seconds, and reap them all."""
    import psutil

    me = psutil.Process()
    for signum, wait in ((signal.SIGTERM, GRACE), (signal.SIGKILL, GRACE)):
        below = me.children(recursive=True)
        if server is not None:
            with contextlib.suppress(OSError):
                os.killpg(server.pid, signum)
        for proc in below:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signum)
        _, alive = psutil.wait_procs(below, timeout=wait)
        if not alive and not me.children(recursive=True):
            break
    if server is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=GRACE)
    _reap_adopted(None)


def _become_subreaper() -> None:
    """Processes orphaned below us are re-parented to us, not to PID 1: still ours to stop."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_adopted(server_pid: int | None) -> None:
    """Wait for adopted children that ended (the server is Popen's to wait for)."""
    import psutil

    for child in psutil.Process().children():
        if child.pid == server_pid:
            continue
        with contextlib.suppress(psutil.Error, ChildProcessError):
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
