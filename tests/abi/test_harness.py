"""The library as C hosts see it: tests/abi/harness.c run in its own process.

Each mode of the harness prints one ``FAIL ...`` line per failed check; these tests assert on its
exit status and show its output. The harness needs the real core behind the ABI (the exact CK_RVs
for uninitialised calls, invalid handles, short buffers come from it), so these skip until
``cryptoki.library`` is importable.
"""

from __future__ import annotations

from pathlib import Path

from ._support import describe, host_env, make_filestore, require_core, run


def test_bad_arguments_battery(harness: Path, module_path: Path, filestore: Path) -> None:
    """(a) NULL pointers, invalid handles, short buffers, pre-init calls, double init, every
    function-list slot filled, C_GetInterface for 3.0/2.40/3.2/unknown; a crash fails too."""
    proc = run([harness, module_path, "checks"], env=host_env(filestore), timeout=120)
    assert proc.returncode == 0, describe(proc)
    assert "token checks ran on slot 0" in proc.stdout
    assert "PASSED" in proc.stdout


def test_battery_without_a_token(harness: Path, module_path: Path, tmp_path: Path) -> None:
    """The same battery with an empty filestore (no slots): nothing may return CKR_OK wrongly."""
    require_core()
    empty = make_filestore(tmp_path / "empty", with_token=False)
    proc = run([harness, module_path, "checks"], env=host_env(empty), timeout=120)
    assert proc.returncode == 0, describe(proc)
    assert "no token present" in proc.stdout


def test_hostile_environment_still_loads(
    harness: Path, module_path: Path, filestore: Path, tmp_path: Path
) -> None:
    """(b) PATH without the venv and garbage PYTHONHOME/PYTHONPATH: the isolated pre-init still
    starts the venv's interpreter (a bad PYTHONHOME would otherwise kill the host)."""
    env = host_env(
        filestore,
        PYTHONHOME=str(tmp_path / "no-such-home"),
        PYTHONPATH="/nonexistent:/also/not/here",
        PYTHONSTARTUP="/nonexistent.py",
        PYTHONUNBUFFERED="1",
    )
    proc = run([harness, module_path, "env"], env=env, timeout=120, cwd="/")
    assert proc.returncode == 0, describe(proc)
    facts = dict(
        line[3:].split(" ", 1) for line in proc.stdout.splitlines() if line.startswith("PY ")
    )
    venv = Path(__import__("sys").prefix)
    assert Path(facts["prefix"]) == venv, describe(proc)
    assert Path(facts["cffi"]).is_relative_to(venv), describe(proc)
    assert Path(facts["cryptoki"]).parent == module_path.parent, describe(proc)
    assert facts["flags"].split() == ["isolated", "1", "utf8", "1"]
    assert "Fatal Python error" not in proc.stderr


def test_fork_with_a_busy_thread(harness: Path, module_path: Path, filestore: Path) -> None:
    """(e) The parent has a second thread calling into Python; each child re-initialises. Without
    the atfork handlers children deadlock in take_gil(); each child has a 20 s alarm."""
    proc = run([harness, module_path, "fork", "20"], env=host_env(filestore), timeout=300)
    assert proc.returncode == 0, describe(proc)


def test_concurrent_first_calls(harness: Path, module_path: Path, filestore: Path) -> None:
    """8 threads race to make the first call (the interpreter starts once): 1 OK, 7 ALREADY."""
    proc = run([harness, module_path, "threads"], env=host_env(filestore), timeout=120)
    assert proc.returncode == 0, describe(proc)


def _limits(harness: Path, module_path: Path, filestore: Path, group: str) -> None:
    proc = run([harness, module_path, "limits", group], env=host_env(filestore), timeout=120)
    assert proc.returncode == 0, describe(proc)
    assert "PASSED" in proc.stdout, describe(proc)


def test_lengths_over_the_limits_are_refused_before_anything_is_read(
    harness: Path, module_path: Path, filestore: Path
) -> None:
    """A CK_BBOOL or CK_ULONG attribute with ulValueLen 0xFFFFFFFF (it segfaulted the host),
    template counts of 2^40, a huge PIN or mechanism parameter, a 2^63-byte C_GenerateRandom (it
    hung), data over limits.MAX_DATA_PER_CALL: each gets its specific CK_RV at once."""
    _limits(harness, module_path, filestore, "lengths")


def test_get_attribute_value_never_writes_past_the_value_whatever_ulvaluelen_says(
    harness: Path, module_path: Path, filestore: Path
) -> None:
    _limits(harness, module_path, filestore, "get-attribute")


def test_sign_refused_by_the_abi_ends_the_operation(
    harness: Path, module_path: Path, filestore: Path
) -> None:
    """C_Sign with a NULL pulSignatureLen or NULL data (CKR_ARGUMENTS_BAD) terminates the
    operation (every error but CKR_BUFFER_TOO_SMALL does); it used to stay active."""
    _limits(harness, module_path, filestore, "termination")


def test_mechanism_parameters_are_judged_after_session_and_operation_state(
    harness: Path, module_path: Path, filestore: Path
) -> None:
    """A bad or 2^40-byte parameter with an invalid session, an active operation or an invalid
    key gets SESSION_HANDLE_INVALID, OPERATION_ACTIVE, KEY_HANDLE_INVALID (it got
    MECHANISM_PARAM_INVALID or HOST_MEMORY)."""
    _limits(harness, module_path, filestore, "parameters")


def test_unexpected_exception_prints_no_traceback_on_the_hosts_stderr(
    harness: Path, module_path: Path, filestore: Path, tmp_path: Path
) -> None:
    """An exception no code path should raise (injected into the core of a C host) gives
    CKR_GENERAL_ERROR, one ERROR line on stderr (function, type, message) and no traceback;
    the traceback goes to the module's log at DEBUG."""
    proc = run([harness, module_path, "raise"], env=host_env(filestore), timeout=120)
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    lines = [line for line in proc.stderr.splitlines() if "ZeroDivisionError" in line]
    assert len(lines) == 1, describe(proc)
    assert (
        "ERROR C_GetInfo failed: unexpected ZeroDivisionError: injected\\nsecond line" in (lines[0])
    )

    log = tmp_path / "module.log"
    env = host_env(filestore, ATECC_PKCS11_LOG=f"{log}:DEBUG")
    proc = run([harness, module_path, "raise"], env=env, timeout=120)
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "ZeroDivisionError" in text
