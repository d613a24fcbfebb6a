"""`imaginarium train run`: launch `axolotl train` in the Axolotl environment, output streamed.

Why a subprocess: Axolotl's pinned libraries differ from imaginarium's (see environment.py).
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from imaginarium.axolotl_configs.environment import SUBPROCESS_ENV, find_env, subprocess_env
from imaginarium.errors import InputError


def train_command(config: str | Path, env: Path, extra_args: Sequence[str] = ()) -> list[str]:
    """The `axolotl train CONFIG ...` command line of the environment."""
    return [str(env / "bin" / "axolotl"), "train", str(config), *extra_args]


def run_training(config: str | Path, *, env_dir: str | Path | None = None, dry_run: bool = False,
                 extra_args: Sequence[str] = ()) -> int:
    """Run Axolotl's training on `config`; its output goes straight to this process's stdout/stderr.

    `dry_run`: print the command and the environment settings instead of running. Returns the
    exit code of `axolotl train`.
    """
    config = Path(config)
    if not config.is_file():
        raise InputError("no such config file", where=str(config))
    env = find_env(env_dir)
    command = train_command(config, env, extra_args)
    if dry_run:
        settings = " ".join(f"{key}={value}" for key, value in SUBPROCESS_ENV.items())
        print(f"{settings} PATH={env / 'bin'}:$PATH {shlex.join(command)}")
        return 0
    return subprocess.run(command, env=subprocess_env(env), check=False).returncode
