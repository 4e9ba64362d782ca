"""`freshcast pull`: download the published parquet files from the dataset's hub page."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipelines.data import io
from pipelines.data.io import SPLITS
from pipelines.errors import FreshcastError

HUB_REPO = "Dingdong-Inc/FreshRetailNet-50K"


def pull_dataset(out: Path, *, repo_id: str = HUB_REPO) -> list[Path]:
    """Download ``data/train.parquet`` and ``data/eval.parquet`` into ``out``.

    Each file is copied into place atomically, so an interrupted download leaves nothing
    behind. Offline, or with the hub unreachable, raises a :class:`FreshcastError`.
    """
    from huggingface_hub import hf_hub_download

    written = []
    for split in SPLITS:
        try:
            cached = hf_hub_download(
                repo_id=repo_id, repo_type="dataset", filename=f"data/{split}.parquet"
            )
        except Exception as exc:
            offline = os.environ.get("HF_HUB_OFFLINE") in {"1", "true", "True"}
            hint = (
                " (HF_HUB_OFFLINE is set)"
                if offline
                else " (no network, or the hub is unreachable)"
            )
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FreshcastError(
                f"could not download {split}.parquet from the hub dataset {repo_id}{hint}: {first}. "
                "freshcast runs offline on simulated data: `freshcast simulate --out DIR`."
            ) from None
        target = out / f"{split}.parquet"
        with io.atomic_path(target) as tmp:
            shutil.copyfile(cached, tmp)
        written.append(target)
    return written
