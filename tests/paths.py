"""Where the tests find the public STE data: `shared/` beside the repository (as on CI)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
STE = ROOT.parent / "shared" / "datasets" / "ste"
TOOLBENCH = STE / "tool_metadata" / "API_descriptions.json"
