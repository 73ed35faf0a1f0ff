"""The README's commands run as written: every iql-sweep subcommand and flag it shows exists,
every file it names is there, and its example spec validates. Also the generated spec reference
(docs/spec.md) matches the models that validate specs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer.main
import yaml

from iql_sweep.cli import app
from iql_sweep.spec import validate_spec
from iql_sweep.spec_reference import render, undocumented

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def _commands(text: str) -> list[list[str]]:
    """Each command line of the bash blocks (comments dropped; && splits a line)."""
    out = []
    for block in _blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words:
                    out.append(words)
    return out


def _problems(words: list[str]) -> list[str]:
    """What in one ``iql-sweep …`` command does not exist."""
    command = typer.main.get_command(app)
    path = ["iql-sweep"]
    args = words[1:]
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        sub = command.commands.get(args[0])  # a group's subcommands (typer vendors click)
        if sub is None:
            return [f"{' '.join(path)}: no subcommand {args[0]!r}"]
        path.append(args[0])
        command, args = sub, args[1:]
    if hasattr(command, "commands"):
        return [f"{' '.join(path)}: names a group, not a command"]
    flags = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    return [
        f"{' '.join(path)}: no option {word.split('=')[0]}"
        for word in args
        if word.startswith("--") and word.split("=")[0] not in flags
    ]


def test_every_command_the_readme_shows_exists():
    commands = _commands(README)
    ours = [w for w in commands if Path(w[0]).name == "iql-sweep"]
    assert len(ours) >= 10  # the README shows the CLI, not only set-up
    problems = [p for words in ours for p in _problems(words)]
    assert problems == []
    for words in commands:  # files the commands name (the user's own my_sweep.yaml aside)
        for word in words:
            if re.fullmatch(r"(scripts|sweeps|cluster)/[\w./-]+", word):
                assert (ROOT / word).exists(), f"README names {word}, which is missing"
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert '"--dev"' in setup  # scripts/setup.sh --dev is a real option


def test_the_checker_finds_a_missing_flag_and_subcommand():
    assert _problems(["iql-sweep", "run", "x.yaml", "--adress", "auto"]) == [
        "iql-sweep run: no option --adress"
    ]
    assert _problems(["iql-sweep", "datasets", "fetch", "x"]) == [
        "iql-sweep datasets: no subcommand 'fetch'"
    ]
    assert _problems(["iql-sweep", "train", "--no-normalize-observations", "--out", "r"]) == []


def test_the_readme_example_spec_validates():
    (spec,) = [yaml.safe_load(b) for b in _blocks(README, "yaml")]
    parsed = validate_spec(spec, check_datasets=False, check_output=False)
    assert parsed.configuration_count() == 2 * 3 * 1 * 3


def test_the_spec_reference_page_matches_the_models():
    assert undocumented() == []  # every field says what it means
    page = (ROOT / "docs" / "spec.md").read_text()
    assert page == render(), "regenerate: python -m iql_sweep.spec_reference > docs/spec.md"


def test_the_readme_reads_in_five_minutes():
    first_screen = "\n".join(README.splitlines()[:24])
    for words in ("Ray Tune", "W&B", "report page", "scripts/setup.sh"):
        assert words in first_screen
    assert len(README.splitlines()) <= 220
