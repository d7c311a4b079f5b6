#!/usr/bin/env python3
"""Benchmark: this module on an emulated ATECC608 Trust&GO chip against SoftHSM2, side by side.

    .venv/bin/python bench/run.py            # full run (a few minutes): bench/results.md, .png
    .venv/bin/python bench/run.py --quick    # tiny iteration counts (seconds), same table
    .venv/bin/python bench/run.py --out DIR  # write results.md and ratios.png into DIR

One run, one machine: it creates (in a temporary directory, with its own SOFTHSM2_CONF; no system
configuration is touched) a SoftHSM2 token with an EC P-256 key pair and emulated Trust&GO chips
(`atecc emulator init`), then drives them through the SAME client: bench/p11bench.c, compiled
on the fly. Our token is measured twice: direct (the client loads libatecc_pkcs11.so) and through
the broker (`atecc broker` owns a second emulated chip; the client loads p11-kit's
p11-kit-client.so and talks to it over a UNIX socket). A C client measures the modules, not a
client library; it also means our module starts its own embedded interpreter, exactly as under
pkcs11-tool, p11tool or the OpenSSL engine. (A Python client such as python-pkcs11 would make the
module reuse the client's interpreter: no start-up cost, but client and module then share one GIL,
so "4 threads" would measure the GIL.)

Every figure is the median of several repetitions; the spread printed is min-max. Ratios are
ours / SoftHSM2's; for throughput > 1 means we are faster, for times and sizes < 1 means we are
better. The chart plots the "advantage" (ratio for throughput, its inverse for times and sizes),
so a bar to the right of 1 is always good for us.

Everything runs on 127.0.0.1, every process started is stopped, every loop is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = Path(sys.executable).parent
SOFTHSM_LIB_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)
P11_INCLUDE = "/usr/include/p11-kit-1"
KEY_LABEL = "device"  # both tokens: the private key, public key (and certificate) share it
SOFTHSM_TOKEN, SOFTHSM_PIN, SOFTHSM_SO_PIN = "bench", "1234", "5678"
CHIP_TOKEN = "00ABC"
#: Busy times the emulator models for one signature (Random + Nonce + Sign), from the driver's
#: own table of worst-case execution times (atecc.constants.EXEC_TIME_MAX_MS).
SIGN_OPCODES = ("RANDOM", "NONCE", "SIGN")


@dataclass
class Params:
    reps: int
    seconds: float  #: per throughput repetition
    cold_reps: int
    tls_handshakes: int
    tls_reps: int
    memory_signatures: int
    realistic_signatures: int
    realistic_reps: int


FULL = Params(
    reps=5,
    seconds=2.0,
    cold_reps=7,
    tls_handshakes=30,
    tls_reps=3,
    memory_signatures=10_000,
    realistic_signatures=10,
    realistic_reps=3,
)
QUICK = Params(
    reps=2,
    seconds=0.05,
    cold_reps=2,
    tls_handshakes=2,
    tls_reps=1,
    memory_signatures=200,
    realistic_signatures=2,
    realistic_reps=1,
)


@dataclass
class Token:
    name: str
    module: str
    label: str
    pin: str  # "-" = no login
    env: dict[str, str]
    key_uri: str


@dataclass
class Stat:
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def fmt(self, unit: str = "", digits: int | None = None) -> str:
        def f(v: float) -> str:
            if digits is not None:
                return f"{v:,.{digits}f}"
            if abs(v) >= 100:
                return f"{v:,.0f}"
            if abs(v) >= 10:
                return f"{v:.1f}"
            return f"{v:.2f}"

        lo, hi = min(self.values), max(self.values)
        spread = f" ({f(lo)}–{f(hi)})" if len(self.values) > 1 else ""
        return f"{f(self.median)}{unit}{spread}"


@dataclass
class Row:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    ours: Stat | None = None
    theirs: Stat | None = None
    broker: Stat | None = None  #: our token through `atecc broker` and p11-kit-client.so
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return _ratio(self.ours, self.theirs)

    @property
    def broker_ratio(self) -> float | None:
        return _ratio(self.broker, self.theirs)

    @property
    def advantage(self) -> float | None:
        r = self.ratio
        if r is None or r == 0:
            return None
        return r if self.higher_is_better else 1 / r


def _ratio(a: Stat | None, b: Stat | None) -> float | None:
    if a is None or b is None or b.median == 0:
        return None
    return a.median / b.median


@dataclass
class Results:
    rows: dict[str, Row] = field(default_factory=dict)
    realistic: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, label: str, unit: str, higher_is_better: bool) -> Row:
        self.rows[key] = Row(key, label, unit, higher_is_better)
        return self.rows[key]


ROWS = (
    ("sign1", "ECDSA P-256 C_Sign, 1 thread", "/s", True),
    ("sign4t", "ECDSA P-256 C_Sign, 4 threads (aggregate)", "/s", True),
    ("sign4p", "ECDSA P-256 C_Sign, 4 processes (aggregate)", "/s", True),
    ("random", "C_GenerateRandom(32)", "/s", True),
    ("find", "find + C_GetAttributeValue(CKA_EC_POINT) round trip", "/s", True),
    ("cold_list", "cold start: `pkcs11-tool -L` wall time", " ms", False),
    ("cold_sign", "cold start: process start to first signature", " ms", False),
    ("init", "first C_Initialize (inside the above)", " ms", False),
    ("tls", "mTLS handshakes, new `s_client` each (engine)", "/s", True),
    ("rss_init", "resident size after C_Initialize", " MB", False),
    ("rss_end", "resident size after {n} signatures", " MB", False),
    ("rss_growth", "RSS growth, warm → {n} signatures", " kB", False),
)


#: Rows measured through the broker too (the others are properties of one process's module).
BROKER_ROWS = ("sign1", "sign4p", "cold_list", "cold_sign", "init", "tls")
CLIENT_MODULE_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
    "/usr/lib/arm-linux-gnueabihf/pkcs11/p11-kit-client.so",
    "/usr/lib64/pkcs11/p11-kit-client.so",
)


def row_labels(params: Params) -> dict[str, str]:
    """The table's row labels for a run with ``params`` (the smoke test checks them all)."""
    return {key: label.format(n=f"{params.memory_signatures:,}") for key, label, _, _ in ROWS}


# ------------------------------------------------------------------------------ helpers -------
def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
    cwd: Path | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        cmd, env=full_env, timeout=timeout, capture_output=True, text=True, cwd=cwd, stdin=stdin
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def kv(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-0-9.]+)", line)}


def find_softhsm() -> str:
    for cand in SOFTHSM_LIB_CANDIDATES:
        if Path(cand).is_file():
            return cand
    raise SystemExit("bench: SoftHSM2 not found (apt-get install softhsm2)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------- setup -------
def compile_client(work: Path) -> Path:
    if not Path(P11_INCLUDE, "p11-kit", "pkcs11.h").is_file():
        raise SystemExit(
            f"bench: {P11_INCLUDE}/p11-kit/pkcs11.h missing (apt-get install libp11-kit-dev)"
        )
    exe = work / "p11bench"
    cc = os.environ.get("CC", "cc")
    run(
        [
            cc,
            "-O2",
            "-Wall",
            "-I",
            P11_INCLUDE,
            "-o",
            str(exe),
            str(HERE / "p11bench.c"),
            "-ldl",
            "-lpthread",
        ]
    )
    return exe


def setup_softhsm(work: Path) -> Token:
    lib = find_softhsm()
    tokdir = work / "softhsm" / "tokens"
    tokdir.mkdir(parents=True)
    conf = work / "softhsm" / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokdir}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    env = {"SOFTHSM2_CONF": str(conf)}
    run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            SOFTHSM_TOKEN,
            "--so-pin",
            SOFTHSM_SO_PIN,
            "--pin",
            SOFTHSM_PIN,
        ],
        env=env,
    )
    run(
        [
            "pkcs11-tool",
            "--module",
            lib,
            "--token-label",
            SOFTHSM_TOKEN,
            "--login",
            "--pin",
            SOFTHSM_PIN,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            KEY_LABEL,
            "--id",
            "01",
        ],
        env=env,
    )
    uri = f"pkcs11:token={SOFTHSM_TOKEN};object={KEY_LABEL};type=private?pin-value={SOFTHSM_PIN}"
    return Token("SoftHSM2", lib, SOFTHSM_TOKEN, SOFTHSM_PIN, env, uri)


def setup_chip(work: Path, timing: str = "fast", name: str = "") -> Token:
    store = work / f"filestore-{name or timing}"
    run([str(VENV_BIN / "atecc"), "emulator", "init", "--filestore", str(store)])
    if timing != "fast":
        slot = store / "0.conf"
        text = slot.read_text()
        slot.write_text(
            re.sub(
                r"^interface\s*=.*$", f"interface = emulator,chip0.json,{timing}", text, flags=re.M
            )
        )
    module = run([str(VENV_BIN / "atecc"), "module-path"]).stdout.strip()
    env = {"ATECC_PKCS11_FILESTORE": str(store)}
    uri = f"pkcs11:token={CHIP_TOKEN};object={KEY_LABEL};type=private"
    return Token("ATECC608 (emulated)", module, CHIP_TOKEN, "-", env, uri)


def find_client_module() -> str | None:
    return next((p for p in CLIENT_MODULE_CANDIDATES if Path(p).is_file()), None)


@contextlib.contextmanager
def broker_token(work: Path, client_module: str) -> Iterator[Token]:
    """`atecc broker` on its own emulated chip, and the token as its clients see it."""
    chip = setup_chip(work, "fast", name="broker")
    sock = Path(tempfile.mkdtemp(prefix="atb-", dir="/tmp")) / "p11.sock"  # AF_UNIX: 108 bytes
    log_file = open(work / "broker.log", "w")
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "atecc"),
            "broker",
            "--filestore",
            chip.env["ATECC_PKCS11_FILESTORE"],
            "--socket",
            str(sock),
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("broker did not start: " + (work / "broker.log").read_text())
            time.sleep(0.02)
        env = {
            "P11_KIT_SERVER_ADDRESS": f"unix:path={sock}",
            # The client must not find the chip by itself.
            "ATECC_PKCS11_FILESTORE": str(work / "no-filestore"),
        }
        yield Token("ATECC608 via broker", client_module, CHIP_TOKEN, "-", env, chip.key_uri)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log_file.close()
        with contextlib.suppress(OSError):
            sock.unlink()
        with contextlib.suppress(OSError):
            sock.parent.rmdir()


# ----------------------------------------------------------------------------- measuring -----
class Bench:
    def __init__(self, exe: Path, params: Params) -> None:
        self.exe = exe
        self.p = params

    def client(self, tok: Token, *args: str, timeout: float = 300) -> dict[str, float]:
        cmd = [str(self.exe), tok.module, tok.label, KEY_LABEL, tok.pin, *args]
        out = run(cmd, env=tok.env, timeout=timeout).stdout
        return kv(out)

    def repeat(self, fn: Callable[[], float], reps: int) -> Stat:
        return Stat([fn() for _ in range(reps)])

    def throughput(self, tok: Token, *args: str) -> Stat:
        return self.repeat(lambda: self.client(tok, *args)["rate"], self.p.reps)

    def wall_ms(self, cmd: list[str], env: dict[str, str]) -> float:
        full_env = {**os.environ, **env}
        t0 = time.perf_counter()
        subprocess.run(
            cmd,
            env=full_env,
            timeout=60,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        return (time.perf_counter() - t0) * 1e3

    def cold(self, tok: Token) -> tuple[Stat, Stat, Stat]:
        listing = Stat(
            [
                self.wall_ms(["pkcs11-tool", "--module", tok.module, "-L"], tok.env)
                for _ in range(self.p.cold_reps)
            ]
        )
        first, init = [], []
        cmd = [str(self.exe), tok.module, tok.label, KEY_LABEL, tok.pin, "firstsig"]
        full_env = {**os.environ, **tok.env}
        for _ in range(self.p.cold_reps):
            t0 = time.perf_counter()
            out = subprocess.run(
                cmd, env=full_env, timeout=60, check=True, capture_output=True, text=True
            ).stdout
            first.append((time.perf_counter() - t0) * 1e3)
            init.append(kv(out)["init_ms"])
        return listing, Stat(first), Stat(init)

    def memory(self, tok: Token) -> tuple[Stat, Stat, Stat]:
        vals = [
            self.client(tok, "memory", str(self.p.memory_signatures))
            for _ in range(max(1, self.p.reps // 2))
        ]
        return (
            Stat([v["rss_init_kb"] / 1024 for v in vals]),
            Stat([v["rss_end_kb"] / 1024 for v in vals]),
            Stat([v["rss_end_kb"] - v["rss_warm_kb"] for v in vals]),
        )


# --------------------------------------------------------------------------------- TLS --------
def engine_path() -> str | None:
    proc = run(["bash", str(ROOT / "scripts" / "find-pkcs11-engine.sh")], check=False)
    return proc.stdout.strip() or None


@contextlib.contextmanager
def tls_server(work: Path) -> Iterator[int]:
    """openssl s_server -Verify 2 -verify_return_error on 127.0.0.1; stopped on exit."""
    port = free_port()
    log_file = open(work / "s_server.log", "w")
    proc = subprocess.Popen(
        [
            "openssl",
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-cert",
            "server.crt",
            "-key",
            "server.key",
            "-CAfile",
            "ca.crt",
            "-Verify",
            "2",
            "-verify_return_error",
            "-quiet",
        ],
        cwd=work,
        stdin=subprocess.PIPE,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None:
                raise RuntimeError("s_server exited: " + (work / "s_server.log").read_text())
            time.sleep(0.05)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        if proc.stdin:
            proc.stdin.close()
        log_file.close()


def tls_setup(work: Path) -> None:
    """A local CA and the server's key and certificate (plain OpenSSL, no engine)."""
    work.mkdir(parents=True, exist_ok=True)
    for cmd in (
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"],
        [
            "openssl",
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-sha256",
            "-days",
            "30",
            "-subj",
            "/CN=Bench CA",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key"],
        [
            "openssl",
            "req",
            "-new",
            "-key",
            "server.key",
            "-subj",
            "/CN=localhost",
            "-out",
            "server.csr",
        ],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-out",
            "server.crt",
        ],
    ):
        run(cmd, cwd=work)


def tls_client_cert(work: Path, tok: Token, engine: str, tag: str) -> tuple[Path, Path]:
    """Engine config for ``tok`` and a client certificate for its key (CSR signed on the token)."""
    conf = work / f"engine-{tag}.cnf"
    template = (ROOT / "fleet" / "openssl-pkcs11-engine.cnf.in").read_text()
    conf.write_text(template.replace("@ENGINE_PATH@", engine).replace("@MODULE_PATH@", tok.module))
    env = {**tok.env, "OPENSSL_CONF": str(conf)}
    run(
        [
            "openssl",
            "req",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            tok.key_uri,
            "-new",
            "-out",
            f"client-{tag}.csr",
            "-subj",
            f"/CN=bench {tag}",
        ],
        env=env,
        cwd=work,
    )
    ext = work / "client.ext"
    ext.write_text(
        "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = clientAuth\n"
    )
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            f"client-{tag}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-sha256",
            "-extfile",
            str(ext),
            "-out",
            f"client-{tag}.crt",
        ],
        cwd=work,
    )
    return conf, work / f"client-{tag}.crt"


def tls_rate(work: Path, port: int, tok: Token, conf: Path, cert: Path, n: int) -> float:
    env = {**os.environ, **tok.env, "OPENSSL_CONF": str(conf)}
    cmd = [
        "openssl",
        "s_client",
        "-engine",
        "pkcs11",
        "-keyform",
        "engine",
        "-key",
        tok.key_uri,
        "-cert",
        str(cert),
        "-CAfile",
        "ca.crt",
        "-connect",
        f"127.0.0.1:{port}",
        "-servername",
        "localhost",
        "-verify_return_error",
        "-brief",
    ]
    t0 = time.perf_counter()
    for _ in range(n):
        proc = subprocess.run(
            cmd,
            env=env,
            cwd=work,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode != 0 or "CONNECTION ESTABLISHED" not in proc.stderr + proc.stdout:
            raise RuntimeError(f"s_client with {tok.name} failed:\n{proc.stdout}{proc.stderr}")
    return n / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------- report -------
def versions(tokens: list[Token]) -> dict[str, str]:
    from importlib import metadata

    def first_line(cmd: list[str]) -> str:
        with contextlib.suppress(Exception):
            return run(cmd, check=False).stdout.strip().splitlines()[0]
        return "?"

    def pkg(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "atecc-pkcs11": pkg("atecc-pkcs11"),
        "cryptography": pkg("cryptography"),
        "cffi": pkg("cffi"),
        "SoftHSM2": first_line(["softhsm2-util", "--version"]),
        "p11-kit": first_line(["dpkg-query", "-W", "-f=${Version}", "libp11-kit0"]),
        "OpenSSL": first_line(["openssl", "version"]),
        "libp11 engine": (engine_path() or "not found"),
    }


def render(res: Results, mode: str) -> str:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    v = res.versions
    lines = [
        "# Benchmark: atecc-pkcs11 (emulated ATECC608 Trust&GO) vs SoftHSM2",
        "",
        f"Run: {now}, `{mode}` mode, on {v['cores']} cores ({v['cpu']}), Linux {v['kernel']}.",
        "Generated by `.venv/bin/python bench/run.py`; every figure is the median of several "
        "repetitions, min–max in brackets. Ratio = ours / SoftHSM2's (for /s rows > 1 means we "
        "are faster; for ms and MB rows < 1 means we are better). Direct: the client loads "
        "libatecc_pkcs11.so; broker: the client loads p11-kit-client.so and `atecc broker` "
        "serves the token.",
        "",
        "| metric | SoftHSM2 | ours, direct | direct/SoftHSM2 | ours, broker | broker/SoftHSM2 |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def cell(stat: Stat | None, unit: str) -> str:
        return stat.fmt(unit) if stat else "n/a"

    def ratio_cell(ratio: float | None) -> str:
        return "n/a" if ratio is None else f"{ratio:.3g}"

    for row in res.rows.values():
        lines.append(
            f"| {row.label} | {cell(row.theirs, row.unit)} | {cell(row.ours, row.unit)} | "
            f"{ratio_cell(row.ratio)} | {cell(row.broker, row.unit)} | "
            f"{ratio_cell(row.broker_ratio)} |"
        )
    r = res.realistic
    lines += ["", "## Realistic timing (emulator busy times as the datasheet's maxima)", ""]
    if r:
        lines += [
            "| metric | value |",
            "|---|---:|",
            f"| chip's own time for a signature: tWHI after the wake + Random + Nonce + Sign "
            f"(atecc.constants: WAKE_HIGH_S, EXEC_TIME_MAX_MS) | {r['chip_ms']:.1f} ms |",
            f"| C_Sign latency, realistic timing (median of medians) | {r['latency_ms']:.2f} ms "
            f"({r['latency_min_ms']:.2f}–{r['latency_max_ms']:.2f}) |",
            f"| overhead our driver and module add | {r['overhead_pct']:.2f} % |",
        ]
    else:
        lines.append("n/a")
    lines += ["", "## Targets (issues 6 and 12)", ""]
    lines += [f"* {t}" for t in targets(res)]
    lines += ["", "## Notes", ""]
    lines += [f"* {n}" for n in res.notes]
    lines += ["", "## Versions", ""]
    lines += [f"* {k}: {val}" for k, val in v.items()]
    lines += ["", "![ratios](ratios.png)", ""]
    return "\n".join(lines)


def targets(res: Results) -> list[str]:
    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("MET" if ok else "NOT MET")

    def goal(what: str, value: float | None, ok: Callable[[float], bool], fmt: str) -> str:
        shown = "n/a" if value is None else format(value, fmt)
        return f"{what}: {shown} → {verdict(None if value is None else ok(value))}"

    rows = res.rows
    init = rows["init"].ours
    first = rows["cold_sign"].ours
    return [
        goal("direct: sign throughput ≥ SoftHSM2, 1 thread (ratio)", rows["sign1"].ratio,
             lambda r: r >= 1, ".3g"),
        goal("direct: sign throughput ≥ SoftHSM2, 4 processes (ratio)", rows["sign4p"].ratio,
             lambda r: r >= 1, ".3g"),
        goal("direct: `pkcs11-tool -L` ≤ 5× SoftHSM2's (ratio)", rows["cold_list"].ratio,
             lambda r: r <= 5, ".2f"),
        goal("direct: first C_Initialize ≤ 25 ms (ms)", init.median if init else None,
             lambda v: v <= 25, ".1f"),
        goal("direct: process start → first signature ≤ 60 ms (ms)",
             first.median if first else None, lambda v: v <= 60, ".1f"),
        goal("direct: realistic-timing overhead ≤ 1 % of the chip's time (%)",
             res.realistic.get("overhead_pct"), lambda p: p <= 1, ".2f"),
        goal("broker: mTLS handshakes/s ≥ 1.0× SoftHSM2's (ratio)", rows["tls"].broker_ratio,
             lambda r: r >= 1, ".3g"),
        goal("broker: process start → first signature ≤ 2× SoftHSM2's (ratio)",
             rows["cold_sign"].broker_ratio, lambda r: r <= 2, ".2f"),
    ]  # fmt: skip


def chart(res: Results, path: Path) -> None:
    sys.path.insert(0, str(HERE))
    import png  # bench/png.py

    short = {
        "sign1": "sign, 1 thread",
        "sign4t": "sign, 4 threads",
        "sign4p": "sign, 4 procs",
        "random": "random(32)",
        "find": "find+get ec point",
        "cold_list": "pkcs11-tool -L",
        "cold_sign": "start to 1st sign",
        "init": "first C_Initialize",
        "tls": "mtls handshakes",
        "rss_init": "rss after init",
        "rss_end": "rss after N signs",
    }
    bars = [(short[k], res.rows[k].advantage) for k in short if k in res.rows]
    for k in BROKER_ROWS:
        ratio = res.rows[k].broker_ratio
        if ratio:
            advantage = ratio if res.rows[k].higher_is_better else 1 / ratio
            bars.append((f"{short[k]} (broker)", advantage))
    path.write_bytes(png.bar_chart("ours vs SoftHSM2, advantage (>1 = ours better)", bars))


# --------------------------------------------------------------------------------- main -------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny iteration counts (smoke test)")
    ap.add_argument("--out", type=Path, default=HERE, help="where results.md and ratios.png go")
    ap.add_argument("--skip-tls", action="store_true", help="leave the TLS row n/a")
    ap.add_argument("--json", type=Path, help="also dump the raw figures as JSON")
    args = ap.parse_args(argv)
    params = QUICK if args.quick else FULL
    res = Results()
    labels = row_labels(params)
    for key, _label, unit, hib in ROWS:
        res.add(key, labels[key], unit, hib)

    with tempfile.TemporaryDirectory(prefix="atecc-bench-") as tmp:
        work = Path(tmp)
        log(f"work directory {work}")
        exe = compile_client(work)
        theirs, ours = setup_softhsm(work), setup_chip(work, "fast")
        b = Bench(exe, params)
        pairs = ((theirs, "theirs"), (ours, "ours"))

        def both(key: str, fn: Callable[[Token], Stat]) -> None:
            for tok, side in pairs:
                log(f"{key}: {tok.name}")
                setattr(res.rows[key], side, fn(tok))

        s = str(params.seconds)
        both("sign1", lambda t: b.throughput(t, "sign", "1", s))
        both("sign4t", lambda t: b.throughput(t, "sign", "4", s))
        both("sign4p", lambda t: b.throughput(t, "procs", "4", s))
        both("random", lambda t: b.throughput(t, "random", s))
        both("find", lambda t: b.throughput(t, "find", s))
        for tok, side in pairs:
            log(f"cold start: {tok.name}")
            listing, first, init = b.cold(tok)
            setattr(res.rows["cold_list"], side, listing)
            setattr(res.rows["cold_sign"], side, first)
            setattr(res.rows["init"], side, init)
        for tok, side in pairs:
            log(f"memory: {tok.name}")
            rss_init, rss_end, growth = b.memory(tok)
            setattr(res.rows["rss_init"], side, rss_init)
            setattr(res.rows["rss_end"], side, rss_end)
            setattr(res.rows["rss_growth"], side, growth)

        client_module = find_client_module()
        broker_stack = contextlib.ExitStack()
        broker = None
        if client_module is None:
            res.notes.append("Broker column skipped: p11-kit-client.so not found (p11-kit-modules)")
        else:
            broker = broker_stack.enter_context(broker_token(work, client_module))
            log("broker: throughput")
            res.rows["sign1"].broker = b.throughput(broker, "sign", "1", s)
            res.rows["sign4p"].broker = b.throughput(broker, "procs", "4", s)
            log("broker: cold start")
            listing, first, init = b.cold(broker)
            res.rows["cold_list"].broker = listing
            res.rows["cold_sign"].broker = first
            res.rows["init"].broker = init

        engine = None if args.skip_tls else engine_path()
        if engine is None:
            res.notes.append(
                "TLS row skipped: "
                + ("--skip-tls" if args.skip_tls else "libp11's pkcs11 engine not found")
            )
        else:
            tls_dir = work / "tls"
            tls_setup(tls_dir)
            tls_pairs = (*pairs, (broker, "broker")) if broker else pairs
            certs = {side: tls_client_cert(tls_dir, tok, engine, side) for tok, side in tls_pairs}
            with tls_server(tls_dir) as port:
                for tok, side in tls_pairs:
                    log(f"tls: {tok.name}")
                    conf, cert = certs[side]
                    setattr(
                        res.rows["tls"],
                        side,
                        Stat(
                            [
                                tls_rate(tls_dir, port, tok, conf, cert, params.tls_handshakes)
                                for _ in range(params.tls_reps)
                            ]
                        ),
                    )

        broker_stack.close()

        log("realistic timing")
        from atecc.constants import EXEC_TIME_MAX_MS, WAKE_HIGH_S, Opcode

        # The chip's own time: its wake-up time (tWHI, which the emulator models as NACKs) and
        # the execution time of each command.
        chip_ms = WAKE_HIGH_S * 1e3 + sum(EXEC_TIME_MAX_MS[Opcode[name]] for name in SIGN_OPCODES)
        slow = setup_chip(work, "realistic")
        lat = [
            b.client(slow, "latency", str(params.realistic_signatures))
            for _ in range(params.realistic_reps)
        ]
        medians = [v["median_ms"] for v in lat]
        latency = statistics.median(medians)
        res.realistic = {
            "chip_ms": chip_ms,
            "latency_ms": latency,
            "latency_min_ms": min(medians),
            "latency_max_ms": max(medians),
            "overhead_pct": (latency - chip_ms) / chip_ms * 100,
        }

    res.notes += [
        "Client: bench/p11bench.c (C, compiled by this script), the same binary for both "
        "tokens; C_Initialize with CKF_OS_LOCKING_OK. Our module therefore starts its own "
        "embedded Python interpreter in each process, as it does under pkcs11-tool, p11tool "
        "or the OpenSSL engine. With a Python client (python-pkcs11, PyKCS11) it would reuse "
        "the host's interpreter instead: no interpreter start-up, but client and module share "
        "one GIL, so multi-threaded figures would measure the GIL rather than the module.",
        "Signing: C_SignInit + C_Sign(CKM_ECDSA) over 32 bytes per operation, each thread on "
        "its own session; 4 processes are forked before the module is loaded and start "
        "together. SoftHSM2 needs a login (its keys are CKA_PRIVATE); the chip's key needs none.",
        "Our token signs through the driver and the emulated chip's I2C byte protocol: wake, "
        "Random, Nonce (pass-through to the message digest buffer), Sign, idle; one chip, so "
        "processes and threads serialise on the chip (as on hardware).",
        "Find round trip: C_FindObjectsInit({CKA_CLASS=CKO_PUBLIC_KEY, CKA_LABEL}) + "
        "C_FindObjects + C_FindObjectsFinal + C_GetAttributeValue(CKA_EC_POINT).",
        "Cold start: wall time of the whole process, page cache warm; `first C_Initialize` is "
        "measured inside the client around the call.",
        "TLS: `openssl s_server -Verify 2 -verify_return_error` on 127.0.0.1 with a local CA; "
        f"{params.tls_handshakes} sequential `openssl s_client -engine pkcs11` processes per "
        "repetition, each loading the module and signing once (TLS 1.3, ECDSA client key).",
        "Memory: VmRSS of the client process; growth = RSS after all signatures minus RSS "
        "after a warm-up of 1,000 (a tenth of N in --quick), so allocator warm-up does not "
        "count as growth.",
        "Broker: `atecc broker` (started once, before the broker rows; its own emulated chip, "
        "fast timing) serves the module over a UNIX socket; each client process loads "
        "p11-kit-client.so (C, no Python) with P11_KIT_SERVER_ADDRESS. Its C_Initialize is "
        "the connection and handshake; the module in the broker is already warm. The memory "
        "rows and the per-process throughput rows other than those shown are not measured "
        "through the broker.",
        "Realistic timing: the emulator keeps the chip busy for each command's worst-case "
        "execution time and NACKs reads for tWHI after a wake; the overhead is the C_Sign "
        "latency (C client, direct mode) minus that chip time.",
    ]
    res.versions = versions([theirs, ours])
    mode = "--quick" if args.quick else "full"
    text = render(res, mode)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    chart(res, args.out / "ratios.png")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": {
                        k: {
                            "ours": r.ours.values if r.ours else None,
                            "theirs": r.theirs.values if r.theirs else None,
                            "broker": r.broker.values if r.broker else None,
                            "ratio": r.ratio,
                            "broker_ratio": r.broker_ratio,
                        }
                        for k, r in res.rows.items()
                    },
                    "realistic": res.realistic,
                },
                indent=1,
            )
        )
    print(text)
    log(f"wrote {args.out / 'results.md'} and {args.out / 'ratios.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
