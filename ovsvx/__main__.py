"""`ovsvx` and `python -m ovsvx`: the CLI, loaded so that a Ctrl-C while it starts is a quiet exit, and
a bad command line is one line on stderr, as every other user error is."""

import sys


def run() -> None:
    try:
        import click

        from ovsvx.cli.main import main
    except KeyboardInterrupt:  # interrupted before any work began: nothing to undo, nothing to say
        sys.exit(130)
    try:
        code = main(standalone_mode=False)  # --help and ctx.exit(N) come back as N
    except click.exceptions.NoArgsIsHelpError as err:  # `ovsvx` alone: the help, as click prints it
        print(err.format_message(), file=sys.stderr)
        sys.exit(err.exit_code)
    except click.ClickException as err:  # a bad option or value: click would print usage and a hint too
        print(f"ovsvx: error: {err.format_message()}", file=sys.stderr)
        sys.exit(err.exit_code)
    except click.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
