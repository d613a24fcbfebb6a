"""`imaginarium train check`: run the checker inside the Axolotl environment and read its report.

Why: only Axolotl's own code can prove that Axolotl reads a config as meant (it ignores unknown
keys, and some of its chat templates and loaders drop tools silently). The checker
(axolotl_check_script.py) runs in Axolotl's virtualenv and writes a JSON report; this module
starts it, streams its log to a file, and turns the report into a summary per row.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from imaginarium.axolotl_configs.environment import find_env, subprocess_env
from imaginarium.errors import InputError

CHECK_SCRIPT = "axolotl_check_script.py"


def check_config(config: str | Path, *, rows: int = 8, env_dir: str | Path | None = None,
                 log: str | Path | None = None) -> dict[str, Any]:
    """The checker's report for `config` (see axolotl_check_script.py for its fields).

    `log`: where Axolotl's own output goes (default: a file beside the report, removed after).
    Raises InputError when the config cannot be read or the checker fails without a report.
    """
    config = Path(config)
    if not config.is_file():
        raise InputError("no such config file", where=str(config))
    env = find_env(env_dir)
    python = env / "bin" / "python"
    script = resources.files("imaginarium.axolotl_configs").joinpath(CHECK_SCRIPT)
    with tempfile.TemporaryDirectory(prefix="imaginarium-check-") as work:
        report_path = Path(work) / "report.json"
        log_path = Path(log) if log else Path(work) / "axolotl.log"
        with open(log_path, "w", encoding="utf-8") as log_file:
            # The caller's working directory: relative dataset paths in the config mean the same as for `axolotl`.
            result = subprocess.run([str(python), str(script), str(config.resolve()), "--rows", str(rows),
                                     "--json", str(report_path)], stdout=log_file, stderr=subprocess.STDOUT,
                                    env=subprocess_env(env), check=False)
        if result.returncode == 2 or not report_path.is_file():
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise InputError(f"the Axolotl checker failed (exit {result.returncode}):\n{tail}", where=str(config))
        return json.loads(report_path.read_text(encoding="utf-8"))


def summary(report: dict[str, Any]) -> list[str]:
    """The report as lines for a person: what is wrong first, then one line per row."""
    lines = [f"{report['config']}: Axolotl {report['axolotl_version']}, {report['kind']} config"]
    for key in report["unknown_keys"]:
        lines.append(f"  unknown key (Axolotl would ignore it): {key}")
    for error in report["validation_errors"]:
        lines.append(f"  invalid: {error['where']}: {error['message']}")
    for problem in report.get("chat_template_problems", []):
        lines.append(f"  {problem}")
    if report.get("preprocess_error"):
        lines.append(f"  preprocessing failed: {report['preprocess_error']}")
    for row in report["rows"]:
        detail = "; ".join(row["problems"]) if row["problems"] else "tool calls and answer trained, the rest masked"
        if report["kind"] == "dpo" and not row["problems"]:
            detail = "tools in the prompt, tool calls and answer in the chosen completion"
        lines.append(f"  row {row['row']}: {'ok' if row['ok'] else 'FAIL'}: {detail}")
    if report.get("note"):
        lines.append(f"  note: {report['note']}")
    lines.append("OK" if report["ok"] else "FAILED")
    return lines
