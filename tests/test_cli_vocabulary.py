"""One CLI vocabulary (issue #26 item 4): a flag that several commands take has one meaning and one
kind of value everywhere, and is defined once (cli_commands.options); renamed flags still work, with a
one-line deprecation warning; usage lines say clevr-ds."""

from __future__ import annotations

from collections import defaultdict

import click
import pytest

from cli import cli, main
from cli_commands.options import MEANINGS, CoverK, SharedOption

KINDS = {click.types.StringParamType: "text", click.Choice: "text", click.types.IntParamType: "int",
         click.types.IntRange: "int", click.types.FloatParamType: "float", click.types.FloatRange: "float",
         click.types.BoolParamType: "bool", click.Path: "path", CoverK: "int or auto"}  # fmt: skip


def visible_options() -> dict[str, list[tuple[str, click.Option]]]:
    """Flag -> (command, option) of every option a user sees (hidden: a deprecated spelling)."""
    found = defaultdict(list)
    for name, command in cli.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                for flag in param.opts:
                    if flag.startswith("--"):
                        found[flag].append((name, param))
    return found


def test_a_flag_of_several_commands_has_one_meaning_and_one_kind_of_value():
    problems = []
    for flag, uses in sorted(visible_options().items()):
        if len({command for command, _ in uses}) < 2:
            continue
        outside = [command for command, param in uses if not isinstance(param, SharedOption)]
        if outside:
            problems.append(f"{flag}: defined outside cli_commands.options in {', '.join(outside)}")
            continue
        meanings = {param.meaning for _, param in uses}
        kinds = {KINDS[type(param.type)] for _, param in uses}
        if len(meanings) > 1 or len(kinds) > 1:
            problems.append(f"{flag}: {meanings} {kinds}")
    assert problems == []


def test_every_meaning_is_used_and_the_former_clashes_are_gone():
    options = visible_options()
    assert set(MEANINGS) <= set(options)
    commands_of = {flag: {command for command, _ in uses} for flag, uses in options.items()}
    assert "--extract-batch" in commands_of and {"bench", "index", "encode", "train"} <= commands_of["--extract-batch"]
    assert "--batch-size" not in commands_of or not commands_of["--batch-size"] & {"bench", "index", "encode"}
    assert "--k" not in commands_of and {"bench", "index", "encode", "train"} <= commands_of["--cover-k"]
    assert commands_of.get("--queries", set()) <= {"train"} and "report" in commands_of["--gallery-queries"]


def test_renamed_passes_the_old_spelling_to_the_new_option_with_one_warning():
    from click.testing import CliRunner

    from cli_commands.options import renamed

    @click.command()
    @click.option("--new-name", type=int, default=1)
    @renamed("--old-name", "--new-name", type=int)
    def toy(new_name):
        click.echo(f"value {new_name}")

    runner = CliRunner()
    old = runner.invoke(toy, ["--old-name", "5"])
    assert old.output.splitlines() == ["warning: --old-name is deprecated and will be removed in the next release; use --new-name",
                                       "value 5"]  # fmt: skip
    assert runner.invoke(toy, ["--old-name", "5", "--new-name", "7"]).output.splitlines()[-1] == "value 7"
    assert runner.invoke(toy, []).output == "value 1\n"


@pytest.mark.parametrize("argv, old, new", [
    (["report", "RESULTS", "--queries", "2"], "--queries", "--gallery-queries"),
    (["bench", "--data", "MISSING", "--batch-size", "2"], "--batch-size", "--extract-batch"),
    (["index", "MISSING", "--out", "x.npz", "--batch-size", "2"], "--batch-size", "--extract-batch"),
    (["encode", "--images", "MISSING", "--out", "x.npz", "--batch-size", "2"], "--batch-size", "--extract-batch"),
    (["train", "--data", "MISSING", "--out", "x.pt", "--k", "2"], "--k", "--cover-k"),
    (["train-backbone", "--data", "MISSING", "--out", "x.safetensors", "--model", "ViT-B-32"], "--model", "--backbone"),
])  # fmt: skip
def test_the_real_commands_keep_their_old_spellings(capsys, tmp_path, argv, old, new):
    argv = [str(tmp_path) if a == "RESULTS" else str(tmp_path / "missing") if a == "MISSING" else a for a in argv]
    assert main(argv) != 0  # the input is missing: the command ran past its options
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"warning: {old} is deprecated and will be removed in the next release; use {new}"
    assert len(err) == 2 and err[1].startswith("error: ") and "No such option" not in err[1]


@pytest.mark.parametrize("command", ["bench", "index", "encode", "train"])
def test_cover_k_takes_auto_and_refuses_other_words_in_one_line(command):
    param = next(p for p in cli.commands[command].params if "--cover-k" in p.opts)
    assert param.type.convert("auto", param, None) == "auto" and param.type.convert("7", param, None) == 7
    with pytest.raises(click.BadParameter) as refused:
        param.type.convert("big", param, None)
    assert str(refused.value) == "k must be a positive integer" + (" up to 30" if command == "train" else "") + " or auto, got 'big'"


def test_usage_lines_say_clevr_ds(capsys):
    assert main(["bench", "--help"]) == 0
    assert capsys.readouterr().out.startswith("Usage: clevr-ds bench")
