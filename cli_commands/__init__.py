"""The click commands of `clevr-ds` (cli.py), one module per subject, and the options several of them
share (`cli_commands.options`: one meaning per flag). The library packages never import click; each
command imports its library's heavy modules (torch, bpy) inside its body, so `--help` stays fast."""
