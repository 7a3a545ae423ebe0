"""The README's sample `/predict` answer, produced by the real app and model.

    python -m tools.readme_sample            # print it
    python -m tools.readme_sample --write    # replace the block in README.md

A hand-typed sample drifts (it showed 4 decimals and another model's SHA-256
while real answers carried full floats); this one is a real answer to a thin
stroke-font "1" that the model is not quite sure of, so the numbers are worth
reading. Only the PNG data URL is shortened. tests/test_readme.py checks that
the README's block has the keys and types of a live answer.
"""
import argparse
import io
import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tools import strokes

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- sample-response -->", "<!-- /sample-response -->"
BLOCK = re.compile(re.escape(BEGIN) + r"\s*```json\n(?P<json>.*?)```\s*" + re.escape(END), re.DOTALL)

# A thin-pen stroke-font "1" (tools/strokes.py, seed 1): the shipped model
# gives it about 97%, so several probabilities are not rounded to 0.
DIGIT, VARIANT, SEED = 1, "thin", 1
SHORT_DATA_URL = "data:image/png;base64,iVBORw0KGgo..."


def sample_png():
    rgba = strokes.render_font_digit(DIGIT, VARIANT, np.random.default_rng(SEED))
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def live_answer(model_path=None):
    """A real POST /predict answer from the app (test client, shipped model by default)."""
    from app import create_app

    config = {"TESTING": True}
    if model_path:
        config["MODEL_PATH"] = model_path
    loggers = [logging.getLogger("digitdraw"), logging.getLogger("digitdraw.request")]
    were = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True  # keep the printed sample clean; restored below for the caller
    try:
        client = create_app(config).test_client()
        response = client.post("/predict", data=sample_png(), content_type="image/png")
    finally:
        for logger, was in zip(loggers, were):
            logger.disabled = was
    if response.status_code != 200:
        raise SystemExit(f"/predict answered {response.status_code}: {response.get_data(as_text=True)}")
    return response.get_json()


def render(answer):
    """The answer as the README shows it: one key per line, the data URL cut short."""
    shown = dict(answer, input_image=SHORT_DATA_URL)
    lines = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in shown.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def readme_block(text):
    """The sample JSON in README text, parsed; None when the markers are missing."""
    match = BLOCK.search(text)
    return json.loads(match["json"]) if match else None


def write(path, sample):
    text = path.read_text()
    if not BLOCK.search(text):
        raise SystemExit(f"{path}: no {BEGIN} ... {END} block with a ```json fence")
    replacement = f"{BEGIN}\n```json\n{sample}```\n{END}"
    path.write_text(BLOCK.sub(lambda _: replacement, text, count=1))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.readme_sample", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--write", action="store_true", help="replace the sample block in the README")
    parser.add_argument("--readme", type=Path, default=README, help="the README to update with --write")
    parser.add_argument("--model", help="model file to answer with (default: the shipped model)")
    args = parser.parse_args(argv)
    sample = render(live_answer(args.model))
    if args.write:
        write(args.readme, sample)
        print(f"updated {args.readme}", file=sys.stderr)
    else:
        sys.stdout.write(sample)


if __name__ == "__main__":
    main()
