"""``atecc completion bash``: the script, loaded into a real bash, completes what the parser has
(every layer's commands, subcommands, options, choices), skips option values, and leaves values
without choices to bash's file-name completion."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ATECC = Path(sys.executable).with_name("atecc")


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    out = subprocess.run(
        [str(ATECC), "completion", "bash"], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stderr == ""
    path = tmp_path_factory.mktemp("completion") / "atecc.bash"
    path.write_text(out.stdout)
    return path


def complete(script: Path, line: str) -> list[str]:
    """COMPREPLY for ``line`` with the cursor at its end (a trailing space: a new word)."""
    words = line.split()
    if line.endswith(" "):
        words.append("")
    quoted = " ".join("'" + w + "'" for w in words)
    code = (
        f"source '{script}'\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        "_atecc\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert out.stderr == ""
    return [w for w in out.stdout.splitlines() if w]


def test_top_level_offers_every_layers_commands(script: Path) -> None:
    offered = complete(script, "atecc ")
    for name in ("emulator", "info", "doctor", "completion", "module-path"):
        assert name in offered  # the driver's own
    assert {"sign", "broker", "ca"} <= set(offered)  # registered by cryptoki, broker, fleet


def test_subcommands_options_and_choices(script: Path) -> None:
    assert complete(script, "atecc emulator i") == ["init"]
    assert complete(script, "atecc ca l") == ["list"]
    assert "--device" in complete(script, "atecc emulator init --")
    assert complete(script, "atecc emulator run --timing ") == ["fast", "realistic"]
    assert complete(script, "atecc completion ") == ["bash"]


def test_option_values_are_skipped_and_left_to_file_names(script: Path) -> None:
    # the value of --filestore is not taken for a command word
    assert complete(script, "atecc --filestore emulator em") == ["emulator"]
    assert complete(script, "atecc --filestore ./fs emulator i") == ["init"]
    # a value without choices: nothing from us, so bash completes file names (-o default)
    assert complete(script, "atecc --filestore ") == []
    assert "complete -o default -F _atecc atecc" in script.read_text()


def test_an_unknown_word_keeps_the_level_it_is_on(script: Path) -> None:
    assert complete(script, "atecc nosuch --") == complete(script, "atecc --")
    assert complete(script, "atecc emulator nosuch i") == ["init"]
