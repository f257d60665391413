"""Merge the parts of a benchmark run (several ``--out`` folders) into one results.json / results.md.

    python -m bench.merge OUT_DIR PART_DIR...
"""
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.run import markdown, goals

def main(out, parts):
    report = None
    for p in parts:
        f = Path(p) / "results.json"
        if not f.exists():
            continue
        r = json.loads(f.read_text())
        if report is None:
            report = r
            report["parts"] = [r.get("started")]
            continue
        for k in ("in_process",):
            if r.get(k):
                report.setdefault(k, []).extend(r[k])
        for k in ("whole_process", "ensembling", "scaling", "levers"):
            if r.get(k):
                report[k] = r[k]
        report["finished"] = r["finished"]
    report["goals"] = goals(report)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "results.json").write_text(json.dumps(report, indent=1))
    (Path(out) / "results.md").write_text(markdown(report))
    print(markdown(report))

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
