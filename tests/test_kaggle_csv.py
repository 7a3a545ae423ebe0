"""Kaggle Digit Recognizer CSV: both layouts read back exactly; bad rows are named by line."""
import gzip

import numpy as np
import pytest

from model.kaggle_csv import PIXEL_COLUMNS, KaggleCsvError, read_kaggle_csv

TRAIN_HEADER = "label," + ",".join(PIXEL_COLUMNS)
TEST_HEADER = ",".join(PIXEL_COLUMNS)


def csv_text(pixels, labels=None, newline="\n"):
    lines = [TRAIN_HEADER if labels is not None else TEST_HEADER]
    for i, row in enumerate(pixels.reshape(len(pixels), -1)):
        values = ([str(labels[i])] if labels is not None else []) + [str(v) for v in row]
        lines.append(",".join(values))
    return newline.join(lines) + newline


@pytest.fixture
def digits():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (4, 28, 28)).astype(np.uint8), rng.integers(0, 10, 4).astype(np.uint8)


def test_train_csv(tmp_path, digits):
    pixels, labels = digits
    path = tmp_path / "train.csv"
    path.write_text(csv_text(pixels, labels))
    data = read_kaggle_csv(path)
    assert data["images"].dtype == np.uint8 and data["images"].shape == (4, 28, 28)
    np.testing.assert_array_equal(data["images"], pixels)
    np.testing.assert_array_equal(data["labels"], labels)


def test_test_csv_has_no_labels(tmp_path, digits):
    pixels, _ = digits
    path = tmp_path / "test.csv"
    path.write_text(csv_text(pixels))
    data = read_kaggle_csv(path)
    assert data["labels"] is None
    np.testing.assert_array_equal(data["images"], pixels)


def test_crlf_bom_trailing_blank_line_and_gzip(tmp_path, digits):
    pixels, labels = digits
    text = "\ufeff" + csv_text(pixels, labels, newline="\r\n") + "\r\n"
    path = tmp_path / "train.csv.gz"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    data = read_kaggle_csv(path)
    np.testing.assert_array_equal(data["images"], pixels)
    np.testing.assert_array_equal(data["labels"], labels)


def test_row_is_raster_order(tmp_path):
    """pixel(28*i + j) is row i, column j, as Kaggle documents."""
    pixels = np.zeros((1, 28, 28), np.uint8)
    pixels[0, 2, 5] = 200
    path = tmp_path / "test.csv"
    path.write_text(TEST_HEADER + "\n" + ",".join("200" if i == 28 * 2 + 5 else "0" for i in range(784)) + "\n")
    np.testing.assert_array_equal(read_kaggle_csv(path)["images"], pixels)


def write_rows(tmp_path, rows, header=TRAIN_HEADER):
    path = tmp_path / "train.csv"
    path.write_text("\n".join([header] + rows) + "\n")
    return path


def good_row(label=3, fill="0"):
    return ",".join([str(label)] + [fill] * 784)


def test_wrong_header_names_the_column(tmp_path):
    header = TRAIN_HEADER.replace("pixel7,", "pixel77,")
    with pytest.raises(KaggleCsvError, match=r"train.csv line 1: header must be .* column 9 is "
                                             r"'pixel77', expected 'pixel7'"):
        read_kaggle_csv(write_rows(tmp_path, [good_row()], header=header))


def test_header_with_missing_columns(tmp_path):
    with pytest.raises(KaggleCsvError, match=r"line 1: .*; 11 columns, expected 785"):
        read_kaggle_csv(write_rows(tmp_path, [good_row()], header="label," + ",".join(PIXEL_COLUMNS[:10])))


def test_short_row(tmp_path):
    rows = [good_row(), good_row()[:-2]]
    with pytest.raises(KaggleCsvError, match=r"train.csv line 3: 784 values, expected 785"):
        read_kaggle_csv(write_rows(tmp_path, rows))


def test_non_integer_value(tmp_path):
    fields = good_row().split(",")
    fields[11] = "1.5"
    with pytest.raises(KaggleCsvError, match=r"line 2: column 12 \(pixel10\) is '1.5', not an integer"):
        read_kaggle_csv(write_rows(tmp_path, [",".join(fields)]))


def test_pixel_out_of_range(tmp_path):
    fields = good_row().split(",")
    fields[101] = "256"
    with pytest.raises(KaggleCsvError, match=r"line 3: pixel100 is 256, outside 0-255"):
        read_kaggle_csv(write_rows(tmp_path, [good_row(), ",".join(fields)]))


def test_negative_pixel(tmp_path):
    fields = good_row().split(",")
    fields[1] = "-1"
    with pytest.raises(KaggleCsvError, match=r"line 2: pixel0 is -1, outside 0-255"):
        read_kaggle_csv(write_rows(tmp_path, [",".join(fields)]))


def test_label_out_of_range(tmp_path):
    with pytest.raises(KaggleCsvError, match=r"line 2: label 10 is not a digit 0-9"):
        read_kaggle_csv(write_rows(tmp_path, [good_row(label=10)]))


def test_header_only(tmp_path):
    with pytest.raises(KaggleCsvError, match=r"train.csv: header but no data rows"):
        read_kaggle_csv(write_rows(tmp_path, []))


def test_empty_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("")
    with pytest.raises(KaggleCsvError, match=r"train.csv: empty file"):
        read_kaggle_csv(path)


def test_binary_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    with pytest.raises(KaggleCsvError, match=r"train.csv: not a readable text CSV"):
        read_kaggle_csv(path)


def test_missing_file(tmp_path):
    with pytest.raises(KaggleCsvError, match=r"absent.csv: file not found"):
        read_kaggle_csv(tmp_path / "absent.csv")
