"""Beyond one machine, for real: a PostgreSQL server (started here from Debian's binaries),
an MLflow tracking server on it, and two sweep workers on one Optuna study in it, one of them
SIGKILLed mid-trial, run with the README's commands."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import optuna
import pytest

from ablate.search.sweep import GIVEN_BACK_ATTR, RETRY_ATTR
from ablate.search.trial import HOST_ATTR, MLFLOW_RUN_ATTR
from tests.sweeps import Spawned, free_port, sweep_command, write_conf

README = Path(__file__).resolve().parents[2] / "README.md"
PASSWORD = "s3cret-for-the-test"
N_TRIALS = 4
STUDY = "default/nig/digits"


def readme_commands() -> list[str]:
    """The commands of the README's PostgreSQL block, continuation lines joined."""
    text = README.read_text()
    block = text[text.index('psql -c "CREATE ROLE') :]
    block = block[: block.index("```")]
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+", " ", line).strip()
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


def _bindir() -> Path | None:
    """PostgreSQL's server programs: pg_config's, else Debian's newest."""
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if found.returncode == 0 and (Path(found.stdout.strip()) / "initdb").is_file():
            return Path(found.stdout.strip())
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=len)
    return Path(candidates[-1]).parent if candidates else None


@dataclass
class Postgres:
    port: int
    socket_dir: Path
    as_owner: list[str]  # runs a command as the cluster's owner (its superuser)
    env: dict[str, str]

    def admin(self, command: str) -> None:
        """A superuser command of the README, on the server's socket (trust, as on the host)."""
        result = subprocess.run(
            [*self.as_owner, "sh", "-c", command], env=self.env, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{command}: {result.stderr}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bindir = _bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server programs (Debian: apt-get install postgresql)")
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to the postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    home = Path(tempfile.mkdtemp(prefix="ablate-pg-"))
    home.chmod(0o755)
    data, sockets = home / "data", home / "sockets"
    sockets.mkdir()
    if as_owner:
        shutil.chown(home, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    env = {**os.environ, "PGHOST": str(sockets), "PGPORT": str(port), "PGUSER": "postgres"}
    server = None
    try:
        init = subprocess.run(
            [*as_owner, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth-local=trust", "--auth-host=scram-sha-256"],
            capture_output=True, text=True,
        )  # fmt: skip
        if init.returncode != 0:
            pytest.skip(f"initdb failed, no PostgreSQL server here: {init.stderr.strip()[-300:]}")
        server = subprocess.Popen(
            [*as_owner, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
             "-k", str(sockets), "-h", "127.0.0.1",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while subprocess.run([str(bindir / "pg_isready"), "-q"], env=env).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"the PostgreSQL server did not start: {server.stderr.read()[-300:]}")
            time.sleep(0.2)
        yield Postgres(port, sockets, as_owner, env)
    finally:
        if server is not None:
            server.terminate()  # smart shutdown is refused while MLflow holds connections:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=20)
            server.kill()
            server.wait()
        shutil.rmtree(home, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def _in_own_host(command: list[str], hostname: str) -> list[str]:
    """The command on a host of its own name (a UTS namespace): only its heartbeat tells the
    other worker whether it is alive, as across machines. Root only; else the same host."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return command
    return ["unshare", "--uts", "sh", "-c", f'hostname {hostname} && exec "$@"', "sh", *command]


def test_two_workers_on_postgresql_with_a_tracking_server(postgres, tmp_path):
    commands = readme_commands()
    assert [c.split()[0] for c in commands] == [
        "psql", "createdb", "createdb", "mlflow", "ablate", "ablate", "ablate"
    ]  # fmt: skip
    tracking_port = free_port()
    db = f"127.0.0.1:{postgres.port}"
    tracking = f"127.0.0.1:{tracking_port}"

    def local(command: str) -> str:
        return (
            command.replace("change-me", PASSWORD)
            .replace("db-host:5432", db)
            .replace("tracking-host:5000", tracking)
            .replace("--port 5000", f"--port {tracking_port}")
            .replace("--host 0.0.0.0", "--host 127.0.0.1")
            .replace("/shared/mlartifacts", str(tmp_path / "mlartifacts"))
        )

    psql, createdb_optuna, createdb_mlflow, server, train, status, report = map(local, commands)
    for command in (psql, createdb_optuna, createdb_mlflow):
        postgres.admin(command)

    server_env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    server_command = [sys.executable, "-m", *server.split()]  # `mlflow` of this environment
    server_log = tmp_path / "mlflow-server.log"
    with server_log.open("w") as log, Spawned(server_command, tmp_path, env=server_env,
                 stdout=log, stderr=subprocess.STDOUT) as tracking_server:  # fmt: skip
        deadline = time.monotonic() + 180
        while not _answers(f"http://{tracking}/health"):
            assert tracking_server.proc.poll() is None, server_log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the MLflow server did not answer"
            time.sleep(0.5)
        _sweep_with_a_killed_worker(train, tmp_path)
        _check_the_stores(train, f"http://{tracking}")
        _status_and_report(status, report, tmp_path)


def _worker_command(train: str, conf: Path) -> list[str]:
    """The README's worker command on the tiny search: its tracking and storage settings."""
    settings = [word for word in train.split()[3:] if not word.startswith("experiment=")]
    assert [s.split("=")[0] for s in settings] == ["tracking.uri", "hydra.sweeper.storage"]
    return sweep_command(
        conf, *settings, f"hydra.sweeper.n_trials={N_TRIALS}",
        "trainer.max_epochs=40", "trainer.patience=40",
        "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=8",
    )  # fmt: skip


def _storage(train: str) -> str:
    return next(w for w in train.split() if w.startswith("hydra.sweeper.storage=")).split("=", 1)[1]


def _sweep_with_a_killed_worker(train: str, tmp_path: Path) -> None:
    conf = write_conf(tmp_path)
    folders = [tmp_path / "worker-a", tmp_path / "worker-b"]  # two machines: no shared folder
    for folder in folders:
        folder.mkdir()
    command = _worker_command(train, conf)
    storage = _storage(train)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
    with Spawned(_in_own_host(command, "worker-a"), folders[0], **quiet) as a:
        log_b = (tmp_path / "worker-b.log").open("w")
        b = subprocess.Popen(command, cwd=folders[1], stdout=log_b, stderr=subprocess.STDOUT)
        try:
            # Worker a in the middle of a trial: its job has opened its MLflow run and
            # checkpointed an epoch.
            deadline = time.monotonic() + 300
            while True:
                assert time.monotonic() < deadline, "worker a never started a trial"
                assert a.proc.poll() is None, "worker a ended before it could be killed"
                mine = _trials_of(storage, host_of=a)
                if any(MLFLOW_RUN_ATTR in t.system_attrs for t in mine) and any(
                    folders[0].rglob("checkpoint.pt")
                ):
                    break
                time.sleep(0.2)
            a.below()
            os.killpg(a.proc.pid, 9)  # SIGKILL, the worker and everything below it
            a.proc.wait()
            assert b.wait(timeout=600) == 0, (tmp_path / "worker-b.log").read_text()[-3000:]
        finally:
            b.kill()
            b.wait()
            log_b.close()


def _trials_of(storage: str, host_of: Spawned) -> list[optuna.trial.FrozenTrial]:
    """The running trials that worker ``host_of`` asked (by its host name, or its pid)."""
    try:
        study = optuna.load_study(study_name=STUDY, storage=storage)
    except KeyError:
        return []
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if os.geteuid() == 0 and shutil.which("unshare"):
        return [t for t in running if t.system_attrs.get(HOST_ATTR) == "worker-a"]
    pids = {host_of.proc.pid, *(p.pid for p in host_of.below())}
    return [t for t in running if t.system_attrs.get("ablate:pid") in pids]


def _check_the_stores(train: str, tracking_uri: str) -> None:
    trials = optuna.load_study(study_name=STUDY, storage=_storage(train)).get_trials()
    complete = [t for t in trials if t.state is optuna.trial.TrialState.COMPLETE]
    given_back = [t for t in trials if GIVEN_BACK_ATTR in t.system_attrs]
    assert len(complete) == N_TRIALS, [(t.number, t.state.name) for t in trials]
    assert len(given_back) == 1 and given_back[0].state is optuna.trial.TrialState.FAIL
    killed = given_back[0]
    retries = [t for t in complete if t.user_attrs.get(RETRY_ATTR) == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params  # run again, once
    assert len(trials) == N_TRIALS + 1  # nothing else asked

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("default")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("ablate.kind") == "study"]
    assert len(parents) == 1
    jobs = [r for r in runs if r.data.tags.get("ablate.kind") == "job"]
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parents[0].info.run_id}
    finished = sorted(int(r.data.tags["optuna.trial"]) for r in jobs
                      if r.info.status == "FINISHED")  # fmt: skip
    assert finished == sorted(t.number for t in complete)  # each trial once
    killed_runs = [r for r in jobs if r.info.status == "KILLED"]
    assert [r.info.run_id for r in killed_runs] == [killed.system_attrs[MLFLOW_RUN_ATTR]]


def _status_and_report(status: str, report: str, tmp_path: Path) -> None:
    def ablate(command: str) -> subprocess.CompletedProcess[str]:
        words = command.replace("experiment=greff2017", "experiment=default").split()
        assert words[0] == "ablate"
        return subprocess.run([sys.executable, "-m", "ablate", *words[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)  # fmt: skip

    shown = ablate(status)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1].startswith(f"default: {N_TRIALS} trials, 0 running")
    made = ablate(report + f" --out {tmp_path / 'report'}")
    assert made.returncode == 0, made.stderr[-3000:]
    index = (tmp_path / "report" / "index.md").read_text()
    assert f"{N_TRIALS} finished" in index or f"| {N_TRIALS} |" in index, index[:2000]
