"""Where the Axolotl environment is and how its processes are started.

Why: Axolotl pins other versions of torch, transformers and datasets than imaginarium, so it has
its own virtualenv (`make axolotl-env` -> .venv-axolotl) and imaginarium reaches it only through
subprocesses. Every such process gets the same environment: no telemetry, no Hub, no W&B.
"""

from __future__ import annotations

import os
from pathlib import Path

from imaginarium.errors import InputError

ENV_VAR = "IMAGINARIUM_AXOLOTL_ENV"
DEFAULT_DIR = ".venv-axolotl"
# Axolotl sends usage telemetry unless told not to; the Hub and W&B must not be reached.
SUBPROCESS_ENV = {
    "AXOLOTL_DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
}


def find_env(env_dir: str | os.PathLike | None = None) -> Path:
    """The Axolotl virtualenv: `env_dir`, else $IMAGINARIUM_AXOLOTL_ENV, else ./.venv-axolotl."""
    path = Path(env_dir or os.environ.get(ENV_VAR) or DEFAULT_DIR)
    if not (path / "bin" / "python").exists():
        raise InputError("no Axolotl environment here: create it with `make axolotl-env` "
                         f"(or point {ENV_VAR} at one)", where=str(path))
    return path


def subprocess_env(env: Path) -> dict[str, str]:
    """This process's environment plus the settings every Axolotl process needs.

    The env's bin/ goes first on PATH, as if activated: `axolotl train` starts `accelerate launch`.
    """
    path = os.pathsep.join([str((env / "bin").resolve()), os.environ.get("PATH", "")])
    return {**os.environ, **SUBPROCESS_ENV, "PATH": path, "VIRTUAL_ENV": str(env.resolve())}
