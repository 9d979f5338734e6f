"""Command line of CLEVR-DS and the DetailCLIP benchmark: `python cli.py --help` (installed as `clevr-ds`).

The commands live in `cli_commands` (one module per subject, shared options in
`cli_commands.options`); heavy imports happen inside the commands, so `--help` stays fast. `main` is
the one error boundary of every command: a usage error, a domain error (infra.errors.ToolkitError)
or an OS error (a missing file, a read-only or full disk, a file in the way) ends with one line on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

import click

from cli_commands.benchmark import COMMANDS as BENCHMARK_COMMANDS
from cli_commands.dataset import COMMANDS as DATASET_COMMANDS
from cli_commands.detailclip import COMMANDS as DETAILCLIP_COMMANDS
from cli_commands.listing import COMMANDS as LIST_COMMANDS
from cli_commands.render import COMMANDS as RENDER_COMMANDS
from cli_commands.search import COMMANDS as SEARCH_COMMANDS
from infra.errors import ToolkitError, describe_os_error


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="clevr-ds", prog_name="clevr-ds")
def cli():
    """CLEVR-DS rendering, DetailCLIP training and the detail-retrieval benchmark."""


for command in (*RENDER_COMMANDS, *DATASET_COMMANDS, *DETAILCLIP_COMMANDS, *BENCHMARK_COMMANDS, *SEARCH_COMMANDS, *LIST_COMMANDS):
    cli.add_command(command)


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "failed"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn usage, domain and OS errors into one line on stderr and a non-zero exit."""
    try:
        cli.main(args=argv, prog_name="clevr-ds", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: interrupted", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"error: {_one_line(e.format_message())}", err=True)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except ToolkitError as e:
        click.echo(f"error: {_one_line(str(e))}", err=True)
        return 1
    except OSError as e:
        click.echo(f"error: {_one_line(describe_os_error(e))}", err=True)
        return 1
    except MemoryError:
        click.echo("error: out of memory", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
