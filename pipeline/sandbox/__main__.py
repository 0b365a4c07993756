"""`python -m pipeline.sandbox`: the same command as `masivo-sync sandbox`."""

from pipeline.sandbox.cli import sandbox_command

if __name__ == "__main__":
    sandbox_command(prog_name="python -m pipeline.sandbox")
