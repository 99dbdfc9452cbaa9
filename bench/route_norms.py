"""Why a merge rule ranks mixtures as it does: the norms of real proxies' and components' weight updates.

For a finished study or demo folder with a swarm and per-domain components (``bench/bench_routes.py``), it
prints each real proxy's update norm ``|W_run - W_base|`` beside its largest mixture weight (does a real
update's size depend on the mixture? the premise of ``proxies.merge: norm`` is that it does not), the
components' norms and pairwise cosines, and for every swarm mixture how much of the weighted component
norm a linear merge keeps (what ``norm`` rescales away). The mixture weights serve as the merge
coefficients directly: a small domain's component that was filled up with general data is not unmixed.

    .venv/bin/python bench/route_norms.py --out runs/real_study
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file
from scipy.stats import spearmanr


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/real_study", help="study folder (swarm/ and components/)")
    parser.add_argument("--base", default=None, help="base model folder (default OUT/base_model)")
    args = parser.parse_args()
    root = Path(args.out)
    base = load_file(str(Path(args.base or root / "base_model") / "model.safetensors"))

    def delta(folder: Path) -> np.ndarray:
        w = load_file(str(folder / "model.safetensors"))
        return np.concatenate([(w[k].astype(np.float64) - base[k]).ravel() for k in sorted(base) if k in w])

    ratios = pd.read_csv(root / "swarm" / "ratios.csv", index_col=0)
    runs = [r for r in ratios.index if (root / "swarm" / "runs" / r / "model.safetensors").exists()]
    real = pd.DataFrame(
        {
            "update_norm": [float(np.linalg.norm(delta(root / "swarm" / "runs" / r))) for r in runs],
            "largest_weight": [float(ratios.loc[r].max()) for r in runs],
        },
        index=pd.Index(runs, name="run"),
    )
    print("real proxies: update norm and largest mixture weight")
    print(real.round(3).to_string())
    rho = spearmanr(real["update_norm"], real["largest_weight"])[0]
    print(f"Spearman(update norm, largest weight) = {rho:+.2f}")

    comps = sorted((root / "components" / "runs").glob("component-*"))
    names = [c.name.removeprefix("component-") for c in comps]
    F = np.stack([delta(c) for c in comps])
    norms = np.linalg.norm(F, axis=1)
    print("\ncomponents: update norm")
    print(pd.Series(norms, index=names).round(3).to_string())
    cos = (F @ F.T) / np.outer(norms, norms)
    print("\npairwise cosine of the components' updates")
    print(pd.DataFrame(cos, index=names, columns=names).round(2).to_string())
    kept = []
    for r in ratios.index:
        x = np.array([float(ratios.loc[r].get(n, 0.0)) for n in names])
        kept.append(float(np.linalg.norm(x @ F) / (x @ norms)))
    print("\nshare of the weighted component norm a linear merge keeps, per swarm mixture")
    print(pd.Series(kept, index=ratios.index).round(3).to_string())
    print(f"range {min(kept):.2f}-{max(kept):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
