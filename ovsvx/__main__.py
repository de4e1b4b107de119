"""`ovsvx` and `python -m ovsvx`: the CLI, loaded so that a Ctrl-C while it starts is a quiet exit."""

import sys


def run() -> None:
    try:
        from ovsvx.cli import main
    except KeyboardInterrupt:  # interrupted before any work began: nothing to undo, nothing to say
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
