// digitdraw page: draw on canvas#pad, and after every stroke ask POST /predict.
// Strokes are kept as point lists so Undo can redraw without the last one.
(function () {
  "use strict";

  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const brush = pad.width / 14;       // 20 px on the 280 px pad: a marker-like stroke

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

  let strokes = [];        // finished strokes: arrays of {x, y} in canvas pixels
  let upload = null;       // ImageBitmap of an uploaded file, shown in the pad until the next stroke
  let current = null;      // the stroke being drawn
  let activePointer = null;
  let frameQueued = false;
  let inflight = null;     // AbortController of the request whose answer we still want
  let generation = 0;      // bumps whenever earlier answers become stale

  // ---------------------------------------------------------------- drawing

  function paintBackground() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
  }

  function paintStroke(points) {
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
    ctx.lineWidth = brush;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    if (points.length === 1) {
      ctx.arc(points[0].x, points[0].y, brush / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.moveTo(points[0].x, points[0].y);
    // Curve through the midpoints, using the sampled points as control points:
    // smooth strokes without the corners of a plain polyline.
    for (let i = 1; i < points.length - 1; i++) {
      const mx = (points[i].x + points[i + 1].x) / 2;
      const my = (points[i].y + points[i + 1].y) / 2;
      ctx.quadraticCurveTo(points[i].x, points[i].y, mx, my);
    }
    const last = points[points.length - 1];
    ctx.lineTo(last.x, last.y);
    ctx.stroke();
  }

  function paintUpload() {
    // Scaled to fit the pad, aspect kept, centred: the person sees what was read.
    const scale = Math.min(pad.width / upload.width, pad.height / upload.height);
    const w = upload.width * scale;
    const h = upload.height * scale;
    ctx.drawImage(upload, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  }

  function redraw() {
    frameQueued = false;
    paintBackground();
    if (upload) paintUpload();
    strokes.forEach(paintStroke);
    if (current) paintStroke(current);
    els.undo.disabled = strokes.length === 0;
  }

  function queueRedraw() {
    if (!frameQueued) {
      frameQueued = true;
      requestAnimationFrame(redraw);
    }
  }

  function toCanvasPoint(event) {
    // The pad is CSS-scaled; map client pixels back to its 280x280 grid.
    const box = pad.getBoundingClientRect();
    const left = box.left + pad.clientLeft;
    const top = box.top + pad.clientTop;
    return {
      x: (event.clientX - left) * (pad.width / pad.clientWidth),
      y: (event.clientY - top) * (pad.height / pad.clientHeight),
    };
  }

  pad.addEventListener("pointerdown", function (event) {
    if (activePointer !== null) return;                      // one finger at a time
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    activePointer = event.pointerId;
    upload = null;                                           // a new drawing replaces an upload
    current = [toCanvasPoint(event)];
    queueRedraw();
  });

  pad.addEventListener("pointermove", function (event) {
    if (event.pointerId !== activePointer) return;
    event.preventDefault();
    const samples = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    (samples.length ? samples : [event]).forEach(function (sample) {
      current.push(toCanvasPoint(sample));
    });
    queueRedraw();
  });

  function endStroke(event) {
    if (event.pointerId !== activePointer) return;
    activePointer = null;
    if (current && current.length) strokes.push(current);
    current = null;
    redraw();
    predictDrawing();
  }

  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  pad.addEventListener("lostpointercapture", endStroke);
  pad.addEventListener("contextmenu", function (event) { event.preventDefault(); });

  function undo() {
    if (!strokes.length) return;
    strokes.pop();
    redraw();
    predictDrawing();
  }

  function clearAll() {
    strokes = [];
    upload = null;
    current = null;
    activePointer = null;
    redraw();
    forgetPending();
    showIdle();
    setStatus("");
  }

  els.undo.addEventListener("click", undo);
  els.clear.addEventListener("click", clearAll);
  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
    if ((event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z") {
      event.preventDefault();
      undo();
    }
  });

  // ---------------------------------------------------------------- asking the server

  function forgetPending() {
    generation += 1;
    if (inflight) inflight.abort();
    inflight = null;
  }

  function predictDrawing() {
    forgetPending();
    if (!strokes.length) {
      showIdle();
      setStatus("");
      return;
    }
    const mine = generation;
    pad.toBlob(function (blob) {
      if (mine !== generation) return;     // drawing changed while encoding
      if (!blob) {
        showError("Your browser could not export the drawing; try another browser.");
        return;
      }
      send(blob, { "Content-Type": "image/png" }, "your drawing");
    }, "image/png");
  }

  function uploadFile(file) {
    strokes = [];
    upload = null;
    redraw();
    forgetPending();
    showUpload(file, generation);
    const form = new FormData();
    form.append("image", file, file.name);
    send(form, {}, file.name);
  }

  function showUpload(file, mine) {
    if (!window.createImageBitmap) return;
    createImageBitmap(file).then(function (bitmap) {
      if (mine !== generation) return;     // drawn over or cleared meanwhile
      upload = bitmap;
      redraw();
    }).catch(function () {
      // Not an image this browser decodes; the server's answer says what is wrong.
    });
  }

  async function send(body, headers, what) {
    // The same input for static/compare.js, which asks the other models (the
    // default model's card shows this request's answer or error, not a second one).
    document.dispatchEvent(new CustomEvent("digitdraw:input", { detail: { body: body, headers: headers } }));
    const controller = new AbortController();
    inflight = controller;
    const mine = generation;
    setStatus("Reading " + what + "…");
    let response;
    let data = null;
    try {
      response = await fetch("/predict", {
        method: "POST", body: body, headers: headers, signal: controller.signal,
      });
      data = await response.json().catch(function () { return null; });
    } catch (err) {
      if (err.name === "AbortError" || mine !== generation) return;
      failed("Could not reach the server; check the connection and try again.");
      return;
    } finally {
      if (inflight === controller) inflight = null;
    }
    if (mine !== generation) return;       // a newer stroke or a Clear won
    if (!response.ok || !data || typeof data.digit !== "number") {
      failed(data && data.error ? data.error : "The server answered " + response.status + ".");
      return;
    }
    showResult(data);
    setStatus(what === "your drawing" ? "" : "Result for " + what + ".");
    // For feedback.js: the image just answered (the drawing's PNG, or the uploaded file).
    document.dispatchEvent(new CustomEvent("digitdraw:answer", {
      detail: { image: body instanceof FormData ? body.get("image") : body, result: data } }));
  }

  // ---------------------------------------------------------------- showing answers

  function percent(p) {
    // Never claim certainty the numbers do not show: 0.99996 is ">99.9%", not "100%".
    if (p >= 0.9995) return ">99.9%";
    if (p < 0.0005) return "<0.1%";
    return (p * 100).toFixed(1) + "%";
  }

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
    delete els.result.dataset.isDigit;
    els.result.classList.remove("not-a-digit");
    els.notDigit.hidden = true;
    document.dispatchEvent(new CustomEvent("digitdraw:idle"));
    document.dispatchEvent(new CustomEvent("digitdraw:input", { detail: null }));
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
    showError(message);
    document.dispatchEvent(new CustomEvent("digitdraw:failed", { detail: { message: message } }));
  }

  function showError(message) {
    showIdle();
    setStatus(message, true);
  }

  function setStatus(message, isError) {
    els.status.textContent = message;
    els.status.classList.toggle("error", Boolean(isError));
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

  redraw();
})();
