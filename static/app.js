// digitdraw page: draw on canvas#pad, and after every stroke ask POST /predict.
// The pad itself is static/pad.js, the asking static/ask.js (number.js uses both too).
(function () {
  "use strict";

  const percent = window.digitdraw.percent;  // static/ask.js

  const canvas = document.getElementById("pad");

  const els = {
    result: document.getElementById("result"),
    digit: document.getElementById("digit"),
    notDigit: document.getElementById("not-digit"),
    confidence: document.getElementById("confidence"),
    verdict: document.getElementById("verdict"),
    bars: Array.from(document.querySelectorAll("#bars .bar")),
    seen: document.getElementById("seen"),
    seenFigure: document.getElementById("seen-figure"),
    status: document.getElementById("status"),
    undo: document.getElementById("undo"),
    clear: document.getElementById("clear"),
    file: document.getElementById("file"),
    drop: document.getElementById("drop"),
  };
  const idleVerdict = els.verdict.textContent;
  const setStatus = window.digitdraw.statusLine(els.status);

  let upload = null;       // ImageBitmap of an uploaded file, shown in the pad until the next stroke

  // ---------------------------------------------------------------- drawing (static/pad.js)

  const pad = window.digitdraw.pad(canvas, {
    brush: canvas.width / 14,          // 20 px on the 280 px pad: a marker-like stroke
    undoButton: els.undo,
    onStrokeStart: function () { upload = null; },   // a new drawing replaces an upload
    onChange: predictDrawing,
    paintUnder: function (ctx) { if (upload) paintUpload(ctx); },
  });

  function paintUpload(ctx) {
    // Scaled to fit the pad, aspect kept, centred: the person sees what was read.
    const scale = Math.min(canvas.width / upload.width, canvas.height / upload.height);
    const w = upload.width * scale;
    const h = upload.height * scale;
    ctx.drawImage(upload, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
  }

  function clearAll() {
    upload = null;
    pad.clear();
    asker.forget();
    showIdle();
    setStatus("");
  }

  els.clear.addEventListener("click", clearAll);
  document.addEventListener("keydown", function (event) {
    if (!window.digitdraw.isUndoKey(event)) return;
    event.preventDefault();
    pad.undo();
  });

  // ---------------------------------------------------------------- asking the server (static/ask.js)

  const asker = window.digitdraw.ask("/predict", {
    valid: function (data) { return typeof data.digit === "number"; },
    sending: function (body, headers, what) {
      // The same input for static/compare.js, which asks the other models (the
      // default model's card shows this request's answer or error, not a second one).
      document.dispatchEvent(new CustomEvent("digitdraw:input", { detail: { body: body, headers: headers } }));
      setStatus("Reading " + what + "…");
    },
    answered: function (data, body, what) {
      showResult(data);
      setStatus(what === "your drawing" ? "" : "Result for " + what + ".");
      // For feedback.js: the image just answered (the drawing's PNG, or the uploaded file).
      document.dispatchEvent(new CustomEvent("digitdraw:answer", {
        detail: { image: body instanceof FormData ? body.get("image") : body, result: data } }));
    },
    failed: function (message, sent) {
      // A drawing that never left the page was never announced to compare.js either.
      if (sent) failed(message); else showError(message);
    },
  });

  function predictDrawing() {
    asker.forget();
    if (!pad.strokeCount()) {
      showIdle();
      setStatus("");
      return;
    }
    asker.sendCanvas(canvas, "your drawing");
  }

  function uploadFile(file) {
    upload = null;
    pad.clear();
    asker.forget();
    showUpload(file, asker.generation());
    const form = new FormData();
    form.append("image", file, file.name);
    asker.send(form, {}, file.name);
  }

  function showUpload(file, mine) {
    if (!window.createImageBitmap) return;
    createImageBitmap(file).then(function (bitmap) {
      if (mine !== asker.generation()) return;     // drawn over or cleared meanwhile
      upload = bitmap;
      pad.redraw();
    }).catch(function () {
      // Not an image this browser decodes; the server's answer says what is wrong.
    });
  }

  // ---------------------------------------------------------------- showing answers

  function withArticle(digit) {
    return (digit === 8 ? "an " : "a ") + digit;   // "an 8", "a 7"
  }

  function secondDigit(data) {
    if (data.top2 && data.top2.length > 1) return data.top2[1].digit;
    let second = null;
    data.probabilities.forEach(function (p, digit) {
      if (digit !== data.digit && (second === null || p > data.probabilities[second])) second = digit;
    });
    return second;
  }

  function showResult(data) {
    const probabilities = data.probabilities;
    const isDigit = data.is_digit !== false;     // older servers do not send it
    const unsure = isDigit && data.unsure === true;

    els.result.dataset.isDigit = String(isDigit);
    els.result.classList.toggle("not-a-digit", !isDigit);
    els.notDigit.hidden = isDigit;
    els.digit.textContent = String(data.digit);
    if (isDigit) {
      els.confidence.textContent = percent(data.confidence) + " sure";
      els.verdict.textContent = unsure
        ? "Not sure: " + data.digit + " or " + secondDigit(data) + "?"
        : "Looks like " + withArticle(data.digit) + ".";
    } else {
      els.confidence.textContent = "";
      els.verdict.textContent = "If it is one, the closest is " + withArticle(data.digit) + ".";
    }
    els.verdict.classList.toggle("unsure", unsure);

    els.bars.forEach(function (bar, digit) {
      const p = probabilities[digit];
      bar.querySelector(".bar-fill").style.width = (p * 100).toFixed(2) + "%";
      bar.querySelector(".bar-value").textContent = percent(p);
      bar.classList.toggle("best", digit === data.digit);
    });

    if (data.input_image) {
      els.seen.src = data.input_image;
      els.seenFigure.hidden = false;
    }
  }

  function showIdle() {
    clearAnswer();
    document.dispatchEvent(new CustomEvent("digitdraw:input", { detail: null }));
  }

  // The answer goes, the input stays: after a failed request compare.js keeps
  // the drawing (its other models still answer it) and shows the error on the
  // default model's card; feedback.js hides its row (idle).
  function clearAnswer() {
    delete els.result.dataset.isDigit;
    els.result.classList.remove("not-a-digit");
    els.notDigit.hidden = true;
    document.dispatchEvent(new CustomEvent("digitdraw:idle"));
    els.digit.textContent = "";
    els.confidence.textContent = "";
    els.verdict.textContent = idleVerdict;
    els.verdict.classList.remove("unsure");
    els.bars.forEach(function (bar) {
      bar.querySelector(".bar-fill").style.width = "0";
      bar.querySelector(".bar-value").textContent = "–";
      bar.classList.remove("best");
    });
    els.seenFigure.hidden = true;
    els.seen.removeAttribute("src");
  }

  function failed(message) {
    clearAnswer();
    setStatus(message, true);
    document.dispatchEvent(new CustomEvent("digitdraw:failed", { detail: { message: message } }));
  }

  function showError(message) {
    showIdle();
    setStatus(message, true);
  }

  // ---------------------------------------------------------------- files

  els.file.addEventListener("change", function () {
    if (els.file.files && els.file.files[0]) uploadFile(els.file.files[0]);
    els.file.value = "";
  });

  function hasFiles(event) {
    return event.dataTransfer && Array.from(event.dataTransfer.types || []).indexOf("Files") !== -1;
  }

  ["dragenter", "dragover"].forEach(function (type) {
    els.drop.addEventListener(type, function (event) {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      els.drop.classList.add("dragging");
    });
  });
  els.drop.addEventListener("dragleave", function (event) {
    if (!els.drop.contains(event.relatedTarget)) els.drop.classList.remove("dragging");
  });
  els.drop.addEventListener("drop", function (event) {
    event.preventDefault();
    els.drop.classList.remove("dragging");
    const file = event.dataTransfer.files && event.dataTransfer.files[0];
    if (file) uploadFile(file);
  });
  // A file dropped beside the drop zone must not make the browser navigate away.
  window.addEventListener("dragover", function (event) { if (hasFiles(event)) event.preventDefault(); });
  window.addEventListener("drop", function (event) { if (hasFiles(event)) event.preventDefault(); });

  pad.redraw();
})();
