"""Merge benchmark result directories written in parts into one ``results.csv`` + ``summary.json``.

A full SMAP run does not always fit one sitting (a lent machine's time limit, a crash); each
part is a ``pdm-ray benchmark`` or ``benchmarks/smap_full.py`` output directory. Rows are
keyed by (channel, model); a later part wins. With ``--reference`` (Telemanom's
``telemanom_reference_results.csv``), the published run's counts on the same channels are
printed next to the models' for a like-for-like comparison.

    python benchmarks/smap_merge.py out/smap_part1 out/smap_part2 --out out/smap \\
        --reference ../shared/data/nasa_smap/telemanom_reference_results.csv
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from pdm_ray.benchmark.results import PUBLISHED_SMAP
from pdm_ray.evaluation import EventCounts


def _line(name: str, c: EventCounts) -> str:
    return f"| {name} | {c.tp} | {c.fp} | {c.fn} | {c.precision:.3f} | {c.recall:.3f} | {c.f05:.3f} | {c.f1:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reference", type=Path, default=None)
    args = parser.parse_args()

    frames, metas = [], []
    for order, part in enumerate(args.parts):
        frame = pd.read_csv(part / "results.csv")
        frames.append(frame.assign(_part=order))
        metas.append(json.loads((part / "summary.json").read_text())["meta"])
    rows = pd.concat(frames).sort_values("_part").drop_duplicates(["chan_id", "model"], keep="last")
    rows = rows.drop(columns="_part").sort_values(["model", "chan_id"])
    channels = sorted(rows["chan_id"].unique())

    models = {}
    print("| model | TP | FP | FN | precision | recall | F0.5 | F1 |\n|---|---|---|---|---|---|---|---|")
    for model, group in rows.groupby("model"):
        labelled = group.dropna(subset=["tp"])
        c = EventCounts(int(labelled["tp"].sum()), int(labelled["fp"].sum()), int(labelled["fn"].sum()))
        auc = group["roc_auc"].dropna()
        models[model] = {
            "channels": len(group),
            "total": {
                "tp": c.tp,
                "fp": c.fp,
                "fn": c.fn,
                "precision": c.precision,
                "recall": c.recall,
                "f05": c.f05,
                "f1": c.f1,
            },
            "train_seconds": float(group["train_seconds"].sum()),
            "mean_roc_auc": float(auc.mean()) if len(auc) else None,
            "roc_auc_channels": len(auc),
        }
        print(_line(model, c))
    reference = None
    if args.reference is not None:
        ref = pd.read_csv(args.reference)
        # The reference file lists P-2 twice (same counts, two sequence lists); count it once.
        ref = ref[ref["chan_id"].isin(channels)].drop_duplicates("chan_id")
        r = EventCounts(
            int(ref["true_positives"].sum()), int(ref["false_positives"].sum()), int(ref["false_negatives"].sum())
        )
        reference = {
            "channels": len(ref),
            "tp": r.tp,
            "fp": r.fp,
            "fn": r.fn,
            "precision": r.precision,
            "recall": r.recall,
            "f1": r.f1,
        }
        print(_line(f"Telemanom reference run, same {len(ref)} channels", r))
    for model, m in models.items():
        print(
            f"{model}: mean ROC-AUC {m['mean_roc_auc']} over {m['roc_auc_channels']} channels; "
            f"train {m['train_seconds']:.0f} s summed"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out / "results.csv", index=False)
    _merge_predictions(args.parts, args.out / "predictions")
    meta = {"channels": len(channels), "parts": [str(p) for p in args.parts], "part_meta": metas}
    if len({m.get("model") for m in metas}) == 1:  # one model throughout: the merge is a run of it
        meta["model"] = metas[0].get("model")
    payload = {
        "meta": meta,
        "published_telemanom_smap": PUBLISHED_SMAP,
        "telemanom_reference_same_channels": reference,
        "models": models,
    }
    (args.out / "summary.json").write_text(json.dumps(payload, indent=2))
    print(f"{len(channels)} channels -> {args.out}")


def _merge_predictions(parts: list[Path], dest: Path) -> None:
    """Copy each part's stored forecasts, later parts winning, so the merge can be re-scored."""
    for part in parts:
        for npz in sorted((part / "predictions").glob("*.npz")):
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(npz, dest / npz.name)


if __name__ == "__main__":
    main()
