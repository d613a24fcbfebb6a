"""Where the tests find the public STE data: `shared/` beside the repository (as on CI)."""

from pathlib import Path

STE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ste"
TOOLBENCH = STE / "tool_metadata" / "API_descriptions.json"
