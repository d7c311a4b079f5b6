"""atecc.lazylog: logging is imported only for a record worth emitting, and then the hooks run
first, so the record reaches the handler they attach; with cryptoki.log (the hook the core
registers), both stay usable in a child forked at any moment. Each case runs in a fresh interpreter:
the test process itself has logging loaded, which makes every LazyLogger delegate at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def fresh(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-I", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout + proc.stderr


def test_records_below_warning_do_not_import_logging() -> None:
    out = fresh(
        """
        import sys
        from atecc.lazylog import get_logger, on_load
        on_load(lambda: print("hook ran"))
        log = get_logger("cryptoki.test")
        log.debug("quiet %d", 1)
        log.info("quiet")
        print(log.isEnabledFor(10), log.handlers, "logging" in sys.modules)
        """
    )
    assert out.strip() == "False [] False"


def test_a_warning_loads_logging_after_the_hooks_and_reaches_their_handler() -> None:
    out = fresh(
        """
        import sys
        from atecc.lazylog import get_logger, on_load
        def hook():
            import logging
            h = logging.StreamHandler(sys.stdout)
            h.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(funcName)s"))
            logging.getLogger("cryptoki").addHandler(h)
            print("hook ran")
        on_load(hook)
        on_load(hook)  # once only
        log = get_logger("cryptoki.test")
        def caller():
            log.warning("chip %s is absent", "0.conf")
        caller()
        log.debug("still dropped: the logger's level is WARNING")
        log.error("second")
        """
    )
    assert out.splitlines() == [
        "hook ran",
        "cryptoki.test WARNING chip 0.conf is absent caller",
        "cryptoki.test ERROR second <module>",
    ]


def test_a_host_that_uses_logging_gets_every_level_it_asks_for() -> None:
    out = fresh(
        """
        import logging, sys
        logging.basicConfig(stream=sys.stdout, level=10, format="%(levelname)s %(message)s")
        from atecc.lazylog import get_logger
        log = get_logger("atecc.test")
        log.debug("wanted")
        print(log.isEnabledFor(10))
        """
    )
    assert out.splitlines() == ["DEBUG wanted", "True"]


def test_a_failing_hook_does_not_fail_the_caller() -> None:
    out = fresh(
        """
        import sys
        from atecc.lazylog import get_logger, on_load
        def broken():
            raise OSError("cannot open the log file")
        on_load(broken)
        get_logger("cryptoki.test").warning("still said")
        print("caller goes on")
        """
    )
    # stdout and stderr (logging's last resort) are joined by fresh(): compare as a set
    assert set(out.splitlines()) == {"still said", "caller goes on"}


def test_a_child_forked_while_hooks_run_can_still_log() -> None:
    out = fresh(
        """
        import os, threading
        from atecc import lazylog
        from atecc.lazylog import get_logger, on_load
        started, release = threading.Event(), threading.Event()
        def slow_hook():
            started.set()
            release.wait(10)
        on_load(slow_hook)
        t = threading.Thread(target=get_logger("cryptoki.a").warning, args=("parent",))
        t.start()
        started.wait(10)
        pid = os.fork()
        if pid == 0:  # the lock is held by the parent's thread at fork time
            on_load(lambda: None)
            get_logger("cryptoki.b").warning("child")
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        release.set()
        t.join()
        print("child exit", status)
        """
    )
    assert "child exit 0" in out and "child" in out


def test_a_child_forked_while_the_core_configures_logging_can_configure_it(tmp_path) -> None:
    fifo = tmp_path / "blocks"
    os.mkfifo(fifo)
    out = fresh(
        f"""
        import os, threading, time
        os.environ["ATECC_PKCS11_LOG"] = "{fifo}"
        from cryptoki import log
        t = threading.Thread(target=log.configure, daemon=True)
        t.start()  # opening a FIFO with no reader blocks inside configure(), under its lock
        time.sleep(0.3)
        pid = os.fork()
        if pid == 0:
            os.environ["ATECC_PKCS11_LOG"] = "stderr"
            log.configure(force=True).warning("child configured")
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child exit", status, flush=True)
        os._exit(0)  # the parent's thread stays blocked on the FIFO
        """
    )
    assert "child exit 0" in out and "child configured" in out
