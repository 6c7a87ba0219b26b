"""Start the embedded Milvus standalone server (PyPI package ``milvus``) and print ``PID URI`` once it serves.

Run by ``.ci/with-milvus`` inside a network namespace that has only loopback: the server listens on every
interface it has, so it must never run on a host's network. Binaries unpack once into a cache folder; data, logs
and config go in ``--data``. On any failure the server is killed and one line says why (exit 1).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

READY_TIMEOUT_S = 120


def fail(msg: str) -> None:
    print(f"milvus server: {msg}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="an empty folder for the server's data, logs and config")
    ap.add_argument("--bin-cache", default=os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser(
        "~/.cache")), "vps-milvus-server"), help="where the server's binaries unpack (once per version)")
    args = ap.parse_args()
    try:
        import milvus
        from pymilvus import MilvusClient
    except ImportError as e:
        fail(f"not installed ({e}); pip install -r requirements-dev.txt")
    bin_base = Path(args.bin_cache) / milvus.__version__
    milvus._initialize_data_files(str(bin_base))  # unpacks only what changed
    cfg = milvus.MilvusServerConfig(data_dir=args.data)
    cfg.resolve()  # free ports on 127.0.0.1 (the namespace's only address), config written under --data
    http_port, sock = cfg.resolve_port(9091)
    sock.close()
    port = cfg.get("proxy_port")
    bindir = bin_base / "bin"
    env = os.environ | {"DEPLOY_MODE": "STANDALONE", "METRICS_PORT": str(http_port),
                        "MILVUS_RUN_DIR": os.path.join(args.data, "run"),
                        "LD_LIBRARY_PATH": f"{bindir}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    logs = Path(args.data) / "logs"
    with open(logs / "milvus-stdout.log", "w") as out, open(logs / "milvus-stderr.log", "w") as err:
        proc = subprocess.Popen([str(bindir / "milvus"), "run", "standalone"], cwd=args.data, env=env,
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    t0, why = time.monotonic(), "not ready"
    while time.monotonic() - t0 < READY_TIMEOUT_S:
        if proc.poll() is not None:
            fail(f"exited with status {proc.returncode} (logs in {logs})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as r:  # noqa: S310
                if b"OK" in r.read():
                    version = MilvusClient(uri=uri, timeout=10).get_server_version()
                    print(f"{proc.pid} {uri} {version} {time.monotonic() - t0:.1f}", flush=True)
                    return
        except Exception as e:  # noqa: BLE001 - not up yet: connection refused, reset, timeouts
            why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        time.sleep(0.2)
    proc.kill()
    fail(f"not ready in {READY_TIMEOUT_S} s ({why}; logs in {logs})")


if __name__ == "__main__":
    main()
