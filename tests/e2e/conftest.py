"""Fixtures for the keyfence end-to-end suite.

Every test module gets a keyfence node of its own (`node`, with a fresh data
directory), so no state leaks from one module into another; a test that counts
(metrics), lists everything in an account or restarts/kills the node takes
`fresh_node` instead, a node of its own for that one test.  Tests talk to the
node with the real AWS CLI (v1), boto3 and the AWS Encryption SDK, exactly as a
user would with --endpoint-url.

Ports: a node listens on port 0 (the kernel picks free ports, no race) and
publishes what it bound in `<data_dir>/node.addr.json`, which `Node.start`
reads.  A restart or crash re-binds the same ports, as an operator's node
would, so clients made before it keep working.

Environment:
  KEYFENCE_BIN   path of the keyfence binary (default target/debug/keyfence,
                 relative to the repository root)
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import secrets
import shutil
import signal
import string
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT1 = "111122223333"
ACCOUNT2 = "444455556666"
READY_TIMEOUT = 20.0
ADDR_FILE = "node.addr.json"  # keyfence_server::node::ADDR_FILE


def keyfence_bin() -> Path:
    raw = os.environ.get("KEYFENCE_BIN", "target/debug/keyfence")
    p = Path(raw)
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


def venv_bin_dir() -> Path:
    """Directory holding the `aws` and `aws-encryption-cli` entry points."""
    here = Path(sys.executable).parent
    if (here / "aws").exists():
        return here
    return REPO_ROOT / "target" / "e2e-venv" / "bin"


def random_access_key() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


def random_secret() -> str:
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    secret_access_key: str
    account_id: str
    user_name: str
    # IAM JSON identity policy of the principal (None: the node's default,
    # every KMS action on its own account's keys).
    identity_policy: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{self.user_name}"


class AwsCliError(Exception):
    def __init__(self, args, returncode, stdout, stderr):
        self.cmd = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(
            f"aws {' '.join(map(str, args))} exited {returncode}\n"
            f"stdout: {stdout}\nstderr: {stderr}"
        )


_TEMP_POSTGRES: subprocess.Popen | None = None


def store_args() -> list[str]:
    """`--store` for a new node: nothing (its data directory's SQLite file), or,
    with KEYFENCE_E2E_STORE=postgres, a database of its own on one throw-away
    PostgreSQL server for the whole session (target/debug/temp-postgres, from
    `cargo build -p keyfence-testkit`; KEYFENCE_TEMP_POSTGRES overrides)."""
    global _TEMP_POSTGRES
    if os.environ.get("KEYFENCE_E2E_STORE", "sqlite") != "postgres":
        return []
    if _TEMP_POSTGRES is None:
        helper = os.environ.get("KEYFENCE_TEMP_POSTGRES", str(REPO_ROOT / "target/debug/temp-postgres"))
        _TEMP_POSTGRES = subprocess.Popen(
            [helper], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        atexit.register(_TEMP_POSTGRES.stdin.close)
        if _TEMP_POSTGRES.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{helper} did not start PostgreSQL")
    _TEMP_POSTGRES.stdin.write(f"kf_{secrets.token_hex(8)}\n")
    _TEMP_POSTGRES.stdin.flush()
    url = _TEMP_POSTGRES.stdout.readline().strip()
    if not url.startswith("postgres://"):
        raise RuntimeError(f"temp-postgres: {url}")
    return ["--store", url]


class Node:
    """A keyfence server process plus the clients that talk to it."""

    def __init__(self, workdir: Path, name: str = "node", extra_args=(), extra_credentials=(),
                 port: int = 0, metrics_port: int = 0):
        """`port`/`metrics_port` 0 (the default): the node binds free ports and
        they are known after `start()`."""
        self.workdir = workdir
        self.name = name
        self.data_dir = workdir / f"{name}-data"
        self.config_path = workdir / f"{name}-config.toml"
        self.log_path = workdir / f"{name}.log"
        self.extra_args = list(extra_args) + store_args()
        self.extra_credentials = list(extra_credentials)
        self.port = port
        self.metrics_port = metrics_port
        self.proc: subprocess.Popen | None = None
        self._log_fh = None
        self.creds: dict[int, Credential] = {}
        # Empty AWS config files so nothing from the host leaks in.
        self.aws_config_file = workdir / "aws-config"
        self.aws_credentials_file = workdir / "aws-credentials"
        self.aws_config_file.write_text("")
        self.aws_credentials_file.write_text("")
        self._write_config()

    # ----------------------------------------------------------------- process
    def _write_config(self):
        lines = []
        for c in self.extra_credentials:
            lines += [
                "[[credentials]]",
                f'access_key_id = "{c.access_key_id}"',
                f'secret_access_key = "{c.secret_access_key}"',
                f'account_id = "{c.account_id}"',
                f'user_name = "{c.user_name}"',
            ]
            if c.identity_policy is not None:
                lines.append("identity_policy = " + json.dumps(c.identity_policy))
            lines.append("")
        self.config_path.write_text("\n".join(lines))

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def ca_path(self) -> Path:
        return self.data_dir / "ca.pem"

    def command(self) -> list[str]:
        return [
            str(keyfence_bin()),
            "server",
            "--data-dir", str(self.data_dir),
            "--listen", f"127.0.0.1:{self.port}",
            "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
            "--config", str(self.config_path),
            *self.extra_args,
        ]

    def start(self):
        binary = keyfence_bin()
        if not binary.exists():
            raise RuntimeError(
                f"keyfence binary not found at {binary}; build it "
                "(cargo build -p keyfence) or set KEYFENCE_BIN"
            )
        self._log_fh = open(self.log_path, "ab")
        self._log_fh.write(f"\n=== start: {' '.join(self.command())}\n".encode())
        self._log_fh.flush()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.workdir,
        )
        self.wait_ready()
        self._load_credentials()

    @property
    def addr_path(self) -> Path:
        return self.data_dir / ADDR_FILE

    def _published_addrs(self) -> dict | None:
        """The node's `node.addr.json` if this process wrote it (a file left by
        a killed predecessor has another pid)."""
        try:
            doc = json.loads(self.addr_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return doc if doc.get("pid") == self.proc.pid else None

    def wait_ready(self):
        """Wait until the node has published its bound addresses: it does so
        once both listeners are bound and serving."""
        deadline = time.monotonic() + READY_TIMEOUT
        while (doc := self._published_addrs()) is None:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"keyfence exited with {self.proc.returncode} during startup\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"keyfence did not publish {self.addr_path} within {READY_TIMEOUT}s\n"
                    + self.log_tail()
                )
            time.sleep(0.02)
        host, port = doc["api"].rsplit(":", 1)
        mhost, mport = doc["metrics"].rsplit(":", 1)
        assert host == mhost == "127.0.0.1", doc
        if self.port:
            assert int(port) == self.port, (doc, self.port)
        if self.metrics_port:
            assert int(mport) == self.metrics_port, (doc, self.metrics_port)
        self.port, self.metrics_port = int(port), int(mport)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
                self._log_fh.write(b"\n=== killed after SIGTERM timeout\n")
        self.proc = None
        if self._log_fh:
            self._log_fh.write(f"\n=== stopped rc={rc}\n".encode())
            self._log_fh.close()
            self._log_fh = None
        return rc

    def crash(self):
        """SIGKILL the node (no graceful shutdown) and start it again."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self._log_fh.write(b"\n=== killed with SIGKILL\n")
        self._log_fh.close()
        self._log_fh = None
        self.start()

    def restart(self) -> int | None:
        rc = self.stop()
        self.start()
        return rc

    def log_text(self) -> str:
        if self._log_fh:
            self._log_fh.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 200) -> str:
        lines = self.log_text().splitlines()
        return f"--- {self.log_path} (last {n} lines) ---\n" + "\n".join(lines[-n:])

    # ------------------------------------------------------------- credentials
    def _load_credentials(self):
        with open(self.data_dir / "credentials.toml", "rb") as f:
            doc = tomllib.load(f)
        dev = [
            c for c in doc.get("credentials", []) if c.get("account_id") == ACCOUNT1
        ]
        if not dev:
            raise RuntimeError(f"no credential for {ACCOUNT1} in credentials.toml: {doc}")
        c = dev[0]
        self.creds[1] = Credential(
            c["access_key_id"], c["secret_access_key"], c["account_id"], c["user_name"]
        )
        for extra in self.extra_credentials:
            if extra.account_id == ACCOUNT2:
                self.creds[2] = extra

    # ----------------------------------------------------------------- clients
    def aws_env(self, account: int = 1, **overrides) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AWS_") and k not in ("HTTPS_PROXY", "https_proxy")
        }
        cred = self.creds[account] if isinstance(account, int) else account
        env.update(
            AWS_ACCESS_KEY_ID=cred.access_key_id,
            AWS_SECRET_ACCESS_KEY=cred.secret_access_key,
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_CA_BUNDLE=str(self.ca_path),
            AWS_CONFIG_FILE=str(self.aws_config_file),
            AWS_SHARED_CREDENTIALS_FILE=str(self.aws_credentials_file),
            AWS_EC2_METADATA_DISABLED="true",
            AWS_MAX_ATTEMPTS="1",
            AWS_RETRY_MODE="standard",
            NO_PROXY="127.0.0.1,localhost",
            PYTHONWARNINGS="ignore",
        )
        env.update(overrides)
        return env

    def aws_run(self, *args, account=1, output="json", timeout=60, env=None):
        """Run the AWS CLI; return the CompletedProcess (never raises)."""
        cmd = [
            str(venv_bin_dir() / "aws"),
            "--endpoint-url", self.endpoint,
            "--output", output,
            *map(str, args),
        ]
        return subprocess.run(
            cmd,
            env=env or self.aws_env(account),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def aws(self, *args, account=1, output="json", timeout=60):
        """Run the AWS CLI; parsed JSON (or text) on success, AwsCliError otherwise."""
        p = self.aws_run(*args, account=account, output=output, timeout=timeout)
        if p.returncode != 0:
            raise AwsCliError(args, p.returncode, p.stdout, p.stderr)
        if output != "json":
            return p.stdout
        return json.loads(p.stdout) if p.stdout.strip() else {}

    def aws_fail(self, *args, account=1, timeout=60) -> str:
        """Run the AWS CLI expecting failure; return its stderr."""
        p = self.aws_run(*args, account=account, timeout=timeout)
        assert p.returncode != 0, f"aws {args} unexpectedly succeeded: {p.stdout}"
        return p.stderr

    def boto3_client(self, account=1, service="kms", validate=True, credential=None, **config):
        import boto3
        from botocore.config import Config

        cred = credential or self.creds[account]
        session = boto3.session.Session(
            aws_access_key_id=cred.access_key_id,
            aws_secret_access_key=cred.secret_access_key,
            region_name=REGION,
        )
        cfg = Config(
            retries={"max_attempts": 1, "mode": "standard"},
            parameter_validation=validate,
            connect_timeout=5,
            read_timeout=30,
            **config,
        )
        return session.client(
            service, endpoint_url=self.endpoint, verify=str(self.ca_path), config=cfg
        )

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
            assert r.status == 200
            return r.read().decode()


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def second_credential() -> Credential:
    return Credential(random_access_key(), random_secret(), ACCOUNT2, "bob")


@pytest.fixture(scope="session", autouse=True)
def no_host_aws_config(tmp_path_factory):
    """boto3 / botocore in this process must not read the host's AWS config."""
    d = tmp_path_factory.mktemp("aws-config")
    (d / "config").write_text("")
    (d / "credentials").write_text("")
    keys = ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED", "AWS_PROFILE")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["AWS_CONFIG_FILE"] = str(d / "config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(d / "credentials")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ.pop("AWS_PROFILE", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def running_node(workdir: Path, second_credential: Credential, **kwargs):
    """Start a node in `workdir` (generator fixture body): yields it running,
    stops it afterwards; its log is attached to failing tests meanwhile."""
    n = Node(workdir, extra_credentials=[second_credential], **kwargs)
    try:
        n.start()
    except Exception:
        n.stop()
        raise
    _NODES.append(n)
    yield n
    _NODES.remove(n)
    n.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory, second_credential):
    """The test module's own node: a fresh data directory for every module."""
    yield from running_node(tmp_path_factory.mktemp("keyfence"), second_credential)


@pytest.fixture
def fresh_node(tmp_path_factory, second_credential):
    """A node for one test alone, for tests that change or observe node-wide
    state: metrics counters, everything listed in an account, restarts."""
    yield from running_node(tmp_path_factory.mktemp("keyfence-fresh"), second_credential)


@pytest.fixture(scope="module")
def kms(node):
    """boto3 KMS client of account 1 (client-side validation on)."""
    return node.boto3_client(1)


@pytest.fixture(scope="module")
def kms_raw(node):
    """boto3 KMS client of account 1 without client-side parameter validation,
    so out-of-range values reach the server."""
    return node.boto3_client(1, validate=False)


@pytest.fixture(scope="module")
def kms2(node):
    return node.boto3_client(2)


@pytest.fixture
def new_key(kms):
    """Factory: create a fresh symmetric key in account 1; returns its metadata."""

    def make(description="e2e test key", client=None, **kwargs):
        c = client or kms
        return c.create_key(Description=description, **kwargs)["KeyMetadata"]

    return make


def unique(prefix="e2e") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# Nodes currently running, so failures can show their logs.
_NODES: list[Node] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("setup", "call"):
        for n in list(_NODES):
            report.sections.append((f"keyfence log: {n.name}", n.log_tail(80)))


def pytest_sessionfinish(session, exitstatus):
    for n in list(_NODES):
        n.stop()
