"""Reader for the Kaggle "Digit Recognizer" CSV files (train.csv, test.csv).

train.csv is `label,pixel0,...,pixel783`; test.csv drops the label column.
Hand-edited or half-downloaded CSVs are common, so each row is checked and an
error names the file, the line and the column at fault.
"""
import gzip
import os

import numpy as np

SIDE = 28
PIXEL_COLUMNS = [f"pixel{i}" for i in range(SIDE * SIDE)]


class KaggleCsvError(ValueError):
    """A CSV that is not in the Digit Recognizer layout."""


def _open_text(path):
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _check_header(header, where):
    columns = [c.strip().strip('"') for c in header.split(",")]
    has_label = bool(columns) and columns[0] == "label"
    expected = (["label"] if has_label else []) + PIXEL_COLUMNS
    if columns == expected:
        return has_label
    if len(columns) != len(expected):
        problem = f"{len(columns)} columns, expected {len(expected)}"
    else:
        index = next(i for i, (a, b) in enumerate(zip(columns, expected)) if a != b)
        problem = f"column {index + 1} is {columns[index]!r}, expected {expected[index]!r}"
    raise KaggleCsvError(f"{where}: header must be 'label,pixel0,...,pixel783' (train.csv) "
                         f"or 'pixel0,...,pixel783' (test.csv); {problem}")


def _parse_row(fields, where, columns):
    try:
        return np.array(fields, dtype=np.int64)
    except ValueError:
        for index, field in enumerate(fields):
            try:
                int(field)
            except ValueError:
                raise KaggleCsvError(f"{where}: column {index + 1} ({columns[index]}) is "
                                     f"{field.strip()!r}, not an integer") from None
        raise


def read_kaggle_csv(path):
    """Return {"images": (N, 28, 28) uint8, "labels": (N,) uint8 or None}."""
    name = os.path.basename(os.fspath(path))
    rows = []
    try:
        with _open_text(path) as fh:
            header = fh.readline()
            if not header.strip():
                raise KaggleCsvError(f"{name}: empty file, expected a header line")
            has_label = _check_header(header.rstrip("\r\n"), f"{name} line 1")
            columns = (["label"] if has_label else []) + PIXEL_COLUMNS
            for number, line in enumerate(fh, start=2):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                where = f"{name} line {number}"
                fields = line.split(",")
                if len(fields) != len(columns):
                    raise KaggleCsvError(f"{where}: {len(fields)} values, expected {len(columns)}")
                values = _parse_row(fields, where, columns)
                pixels = values[1:] if has_label else values
                if pixels.min() < 0 or pixels.max() > 255:
                    index = int(np.argmax((pixels < 0) | (pixels > 255)))
                    raise KaggleCsvError(f"{where}: pixel{index} is {int(pixels[index])}, "
                                         f"outside 0-255")
                if has_label and not 0 <= values[0] <= 9:
                    raise KaggleCsvError(f"{where}: label {int(values[0])} is not a digit 0-9")
                rows.append(values.astype(np.uint8))
    except FileNotFoundError:
        raise KaggleCsvError(f"{name}: file not found ({path})") from None
    except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise KaggleCsvError(f"{name}: not a readable text CSV ({exc})") from None
    if not rows:
        raise KaggleCsvError(f"{name}: header but no data rows")
    table = np.stack(rows)
    images = table[:, 1:] if has_label else table
    return {"images": np.ascontiguousarray(images).reshape(-1, SIDE, SIDE),
            "labels": table[:, 0].copy() if has_label else None}
