"""Corrections as a training set: `python -m model.corrections export` writes the
stored corrections (POST /feedback) to one `.npz` that `python -m model.finetune`
reads.

The file holds plain arrays only (loaded with allow_pickle=False):
`images` uint8 (N, 28, 28) in the MNIST convention (the very images the model
classified), `labels` uint8 (N,), `predicted` uint8 (N,) (what the model said),
`ids`, `created` and `model_sha256` as fixed-width strings, and `meta`, a JSON
string with the counts per label and where the data came from.

The store is read through `app.store` with the app's own settings (DATA_DIR,
DATABASE_URL), so the export sees exactly what the server stored.
"""
import argparse
import datetime as dt
import hashlib
import json
import os
import sys

import numpy as np

FORMAT = "digitdraw-corrections"
SIDE = 28


class CorrectionsFileError(ValueError):
    """A corrections file that is missing or not what export writes."""


def per_label(labels):
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=10)[:10]
    return {str(d): int(counts[d]) for d in range(10)}


def format_counts(counts):
    digits = "".join(f"{d:>6}" for d in range(10))
    values = "".join(f"{counts[str(d)]:>6}" for d in range(10))
    return f"label {digits}   total\ncount {values}   {sum(counts.values()):>5}"


def save(path, images, labels, predicted=None, ids=None, created=None, model_sha256=None, source=""):
    """Write a corrections file atomically enough for a CLI (temp file, then rename)."""
    images = np.ascontiguousarray(images, dtype=np.uint8).reshape(-1, SIDE, SIDE)
    labels = np.asarray(labels, dtype=np.uint8)
    n = len(labels)
    if len(images) != n:
        raise ValueError(f"{len(images)} images but {n} labels")
    meta = {"format": FORMAT, "version": 1, "count": n, "per_label": per_label(labels),
            "source": source, "exported": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    arrays = {
        "images": images, "labels": labels,
        "predicted": np.asarray(predicted if predicted is not None else np.full(n, 255), dtype=np.uint8),
        "ids": np.asarray(ids if ids is not None else [""] * n, dtype="U32"),
        "created": np.asarray(created if created is not None else [""] * n, dtype="U32"),
        "model_sha256": np.asarray(model_sha256 if model_sha256 is not None else [""] * n, dtype="U64"),
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    os.replace(tmp, path)
    return meta


def load(path):
    """(images uint8 (N, 28, 28), labels int64 (N,), meta dict, sha256 of the file)."""
    if not os.path.isfile(path):
        raise CorrectionsFileError(f"{path}: corrections file not found (make one with "
                                   f"python -m model.corrections export --out {path})")
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            images, labels = archive["images"], archive["labels"]
    except (KeyError, ValueError, OSError) as exc:
        raise CorrectionsFileError(f"{path}: not a corrections file ({exc})") from None
    if meta.get("format") != FORMAT:
        raise CorrectionsFileError(f"{path}: not a {FORMAT} file")
    if images.dtype != np.uint8 or images.shape[1:] != (SIDE, SIDE) or len(images) != len(labels):
        raise CorrectionsFileError(f"{path}: images must be uint8 (N, 28, 28) with one label each")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise CorrectionsFileError(f"{path}: labels must be digits 0-9")
    return images, labels, meta, digest


def export(store, out):
    """Every stored correction into `out`; returns the file's meta."""
    rows = store.rows()
    images = np.stack([np.frombuffer(r["image"], np.uint8).reshape(SIDE, SIDE) for r in rows]) if rows \
        else np.zeros((0, SIDE, SIDE), np.uint8)
    return save(out, images, [r["label"] for r in rows], predicted=[r["predicted"] for r in rows],
                ids=[r["id"] for r in rows], created=[r["created_at"].isoformat() for r in rows],
                model_sha256=[r["model_sha256"] for r in rows], source=store.where)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m model.corrections", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write the stored corrections to an .npz for model.finetune")
    ex.add_argument("--out", default="runs/corrections.npz", help="output .npz (default runs/corrections.npz)")
    ex.add_argument("--data-dir", help="the server's DATA_DIR (default: $DATA_DIR, else the app's default)")
    ex.add_argument("--database-url", help="the server's DATABASE_URL (default: $DATABASE_URL)")
    show = sub.add_parser("show", help="counts per label of an exported file")
    show.add_argument("path")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.command == "show":
        try:
            _, _, meta, _ = load(args.path)
        except CorrectionsFileError as exc:
            sys.exit(str(exc))
        print(format_counts(meta["per_label"]))
        return meta
    # Imported here: the web app's store (SQLAlchemy) is needed to export only.
    from app import config
    from app.store import StoreError, open_store
    environ = dict(os.environ)
    if args.data_dir:
        environ["DATA_DIR"] = args.data_dir
    if args.database_url:
        environ["DATABASE_URL"] = args.database_url
    try:
        settings = config.corrections_from_env(environ)
        store = open_store(config.store_url(settings))
    except (config.SettingError, StoreError) as exc:
        sys.exit(f"cannot read the corrections: {exc}")
    try:
        meta = export(store, args.out)
    finally:
        store.close()
    print(f"exported {meta['count']} corrections from {meta['source']} to {args.out}")
    print(format_counts(meta["per_label"]))
    return meta


if __name__ == "__main__":
    main()
