from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synth import bad_files, make_corpus  # noqa: E402

from tintline.data.build import build  # noqa: E402
from tintline.data.sources import import_source  # noqa: E402
from tintline.data.store import Store  # noqa: E402


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> tuple[Path, dict, dict]:
    root = tmp_path_factory.mktemp("corpus")
    expect = make_corpus(root)
    bad = bad_files(root)
    return root, expect, bad


@pytest.fixture(scope="session")
def built_dataset(tmp_path_factory, corpus) -> Path:
    """A dataset built from the generated corpus at size 64 (small and fast); shared, treat as read-only."""
    root, _, _ = corpus
    ds = tmp_path_factory.mktemp("ds") / "data"
    with Store.create(ds) as store:
        import_source(store, str(root), progress=False)
        cfg = store.load_config({"size": 64, "min_side": 32, "workers": 1})
        build(store, cfg, progress=False)
    return ds
