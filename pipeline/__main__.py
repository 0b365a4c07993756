"""`python -m pipeline` is the same as the `masivo-sync` command."""

from pipeline.cli import main

if __name__ == "__main__":
    main(prog_name="masivo-sync")
