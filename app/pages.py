"""The drawing page: one template, its script and style served from /static."""
from flask import Blueprint, current_app, render_template

from . import formats

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    model = current_app.extensions.get("digit_model")
    return render_template("index.html", model=model.identity if model is not None else None, formats=formats,
                           feedback=current_app.config["FEEDBACK"])
