"""Agreement of imaginarium's BFCL checker with bfcl-eval's own, on the perturbation set of
tests/bfcl_perturb.py over every AST and relevance category of BFCL v4 (the installed package's
data). Writes benchmarks/results/bfcl-agreement.json: cases and agreements per category and per
perturbation kind, and every disagreement. Run: .venv/bin/python benchmarks/bfcl_agreement.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bfcl_perturb import cases  # noqa: E402
from test_bfcl_oracle import DATA, fc_form, load_oracle, oracle_verdict  # noqa: E402

from imaginarium.evaluation.bfcl.data import CATEGORIES, load_categories  # noqa: E402
from imaginarium.evaluation.bfcl.score import score_item  # noqa: E402


def main() -> None:
    oracle = load_oracle()
    data = load_categories(DATA, list(CATEGORIES))
    per_category: dict[str, Counter] = defaultdict(Counter)
    per_kind: dict[str, Counter] = defaultdict(Counter)
    disagreements = []
    for item in data.items.values():
        for kind, result in cases(item):
            if isinstance(result, str):
                continue
            ours = score_item(item, result)
            try:
                theirs = oracle_verdict(oracle, item, fc_form(result))
            except Exception as exc:  # bfcl-eval raising is a finding, counted apart
                per_category[item.category]["oracle_raised"] += 1
                disagreements.append({"id": item.id, "kind": kind, "oracle_raised": type(exc).__name__})
                continue
            for counter in (per_category[item.category], per_kind[kind]):
                counter["cases"] += 1
                counter["agree"] += ours.valid == theirs
                counter["valid_by_bfcl"] += theirs
            if ours.valid != theirs:
                disagreements.append({"id": item.id, "kind": kind, "ours": ours.valid, "bfcl": theirs,
                                      "our_reason": ours.error})
    def table(counters):
        return {name: {**c, "agreement": round(100 * c["agree"] / c["cases"], 3)} for name, c in sorted(counters.items())}
    total = sum(c["cases"] for c in per_category.values())
    agree = sum(c["agree"] for c in per_category.values())
    report = {"bfcl_eval": "2026.3.23", "cases": total, "agreement": round(100 * agree / total, 3),
              "per_category": table(per_category), "per_kind": table(per_kind), "disagreements": disagreements}
    out = ROOT / "benchmarks" / "results" / "bfcl-agreement.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("cases", "agreement")} | {"disagreements": len(disagreements)}))


if __name__ == "__main__":
    main()
