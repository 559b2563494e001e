"""``ablate ui``: the MLflow UI on this project's store, bound to 127.0.0.1 by default."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ablate.errors import AblateError
from ablate.tracking import ARTIFACTS, DEFAULT_STORE, tracking_uri, working_root


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
    print(f"MLflow UI for {uri} at http://{args.host}:{args.port} (Ctrl-C to stop)", flush=True)
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
    }
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0
