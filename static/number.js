// digitdraw page, number mode: write a whole number on canvas#number-pad; after
// every stroke the drawing goes to POST /predict/number, the number is shown
// large and each digit's box is drawn over the ink with its confidence.
// Digit mode (static/app.js, canvas#pad) is left exactly as it is; this file
// only adds the mode switch and everything inside main#number-mode.
(function () {
  "use strict";

  const UNSURE_BELOW = 0.6;            // same threshold the API uses for "unsure"
  const PHONE_WIDTH = 600;             // below this viewport width the pad is 2:1, not 3:1

  const pad = document.getElementById("number-pad");
  const boxes = document.getElementById("number-boxes");
  if (!pad || !boxes) return;
  const ctx = pad.getContext("2d");
  const overlay = boxes.getContext("2d");

  const els = {
    digitMode: document.querySelector("main.layout"),
    numberMode: document.getElementById("number-mode"),
    digitButton: document.getElementById("mode-digit"),
    numberButton: document.getElementById("mode-number"),
    title: document.querySelector(".masthead h1"),
    lead: document.querySelector(".masthead .lead"),
    number: document.getElementById("number"),
    confidence: document.getElementById("number-confidence"),
    digits: document.getElementById("number-digits"),
    status: document.getElementById("number-status"),
    undo: document.getElementById("number-undo"),
    clear: document.getElementById("number-clear"),
  };
  const digitTexts = { title: els.title.textContent, lead: els.lead.textContent, doc: document.title };
  const numberTexts = {
    title: "Write a number",
    lead: "Write a number left to right, one digit beside the other. It is read each time you lift the pen.",
    doc: "digitdraw: write a number",
  };

  let strokes = [];
  let current = null;
  let activePointer = null;
  let frameQueued = false;
  let inflight = null;
  let generation = 0;

  // ---------------------------------------------------------------- modes

  function setMode(mode) {
    const number = mode === "number";
    els.numberMode.hidden = !number;
    els.digitMode.hidden = number;
    els.digitButton.setAttribute("aria-pressed", String(!number));
    els.numberButton.setAttribute("aria-pressed", String(number));
    const texts = number ? numberTexts : digitTexts;
    els.title.textContent = texts.title;
    els.lead.textContent = texts.lead;
    document.title = texts.doc;
    if (number) fitPad();
    if (window.location.hash !== (number ? "#number" : "")) {
      history.replaceState(null, "", number ? "#number" : window.location.pathname + window.location.search);
    }
  }

  function fitPad() {
    // A phone gets a taller pad for its width (2:1), a desktop 3:1; only while empty.
    if (strokes.length) return;
    const width = window.innerWidth < PHONE_WIDTH ? 560 : 840;
    if (pad.width !== width) {
      pad.width = boxes.width = width;
      pad.parentElement.classList.toggle("narrow", width === 560);
    }
    redraw();
  }

  els.digitButton.addEventListener("click", function () { setMode("digit"); });
  els.numberButton.addEventListener("click", function () { setMode("number"); });

  // ---------------------------------------------------------------- drawing

  function brush() { return pad.height / 14; }   // 20 px on 280: the digit pad's marker

  function paintStroke(points) {
    const width = brush();
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
    ctx.lineWidth = width;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    if (points.length === 1) {
      ctx.arc(points[0].x, points[0].y, width / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.moveTo(points[0].x, points[0].y);
    for (let i = 1; i < points.length - 1; i++) {
      const mx = (points[i].x + points[i + 1].x) / 2;
      const my = (points[i].y + points[i + 1].y) / 2;
      ctx.quadraticCurveTo(points[i].x, points[i].y, mx, my);
    }
    const last = points[points.length - 1];
    ctx.lineTo(last.x, last.y);
    ctx.stroke();
  }

  function redraw() {
    frameQueued = false;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
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
    const box = pad.getBoundingClientRect();
    return {
      x: (event.clientX - box.left - pad.clientLeft) * (pad.width / pad.clientWidth),
      y: (event.clientY - box.top - pad.clientTop) * (pad.height / pad.clientHeight),
    };
  }

  pad.addEventListener("pointerdown", function (event) {
    if (activePointer !== null) return;
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    activePointer = event.pointerId;
    current = [toCanvasPoint(event)];
    clearBoxes();                      // the old boxes no longer match the ink
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
    readDrawing();
  }

  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  pad.addEventListener("lostpointercapture", endStroke);
  pad.addEventListener("contextmenu", function (event) { event.preventDefault(); });

  function undo() {
    if (!strokes.length) return;
    strokes.pop();
    redraw();
    readDrawing();
  }

  function clearAll() {
    strokes = [];
    current = null;
    activePointer = null;
    redraw();
    forgetPending();
    showIdle();
    setStatus("");
    fitPad();
  }

  els.undo.addEventListener("click", undo);
  els.clear.addEventListener("click", clearAll);
  document.addEventListener("keydown", function (event) {
    if (els.numberMode.hidden) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return;
    if ((event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z") {
      event.preventDefault();
      event.stopImmediatePropagation();
      undo();
    }
  }, true);

  // ---------------------------------------------------------------- asking the server

  function forgetPending() {
    generation += 1;
    if (inflight) inflight.abort();
    inflight = null;
  }

  function readDrawing() {
    forgetPending();
    if (!strokes.length) {
      showIdle();
      setStatus("");
      return;
    }
    const mine = generation;
    pad.toBlob(function (blob) {
      if (mine !== generation) return;
      if (!blob) {
        showError("Your browser could not export the drawing; try another browser.");
        return;
      }
      send(blob, mine, strokes.length);
    }, "image/png");
  }

  async function send(blob, mine, strokeCount) {
    const controller = new AbortController();
    inflight = controller;
    setStatus("Reading your number…");
    let response;
    let data = null;
    try {
      response = await fetch("/predict/number", {
        method: "POST", body: blob, headers: { "Content-Type": "image/png" }, signal: controller.signal,
      });
      data = await response.json().catch(function () { return null; });
    } catch (err) {
      if (err.name === "AbortError" || mine !== generation) return;
      showError("Could not reach the server; check the connection and try again.");
      return;
    } finally {
      if (inflight === controller) inflight = null;
    }
    if (mine !== generation) return;
    if (!response.ok || !data || typeof data.number !== "string") {
      showError(data && data.error ? data.error : "The server answered " + response.status + ".");
      return;
    }
    showReading(data);
    els.number.dataset.strokes = String(strokeCount);   // which drawing this answer is for
    setStatus("");
  }

  // ---------------------------------------------------------------- showing answers

  function percent(p) {
    if (p >= 0.9995) return ">99.9%";
    if (p < 0.0005) return "<0.1%";
    return (p * 100).toFixed(1) + "%";
  }

  function isUnsure(d) {
    return d.confidence < UNSURE_BELOW || d.is_digit === false;
  }

  function showReading(data) {
    els.number.textContent = data.number;
    const unsure = data.digits.filter(isUnsure).length;
    els.confidence.textContent = percent(data.confidence) + " sure of the whole number" +
      (unsure ? "; " + unsure + (unsure === 1 ? " digit" : " digits") + " unsure" : "");
    els.digits.textContent = "";
    data.digits.forEach(function (d, index) {
      const item = document.createElement("li");
      item.className = "number-digit" + (isUnsure(d) ? " unsure" : "");
      item.dataset.digit = String(d.digit);
      item.dataset.confidence = d.confidence.toFixed(4);
      if (d.input_image) {
        const seen = document.createElement("img");
        seen.src = d.input_image;
        seen.alt = "Digit " + (index + 1) + " as the model saw it";
        seen.width = 42;
        seen.height = 42;
        item.appendChild(seen);
      }
      const text = document.createElement("span");
      text.className = "number-digit-text";
      text.textContent = d.digit + " · " + percent(d.confidence) + (d.is_digit === false ? " · not a digit?" : "");
      item.appendChild(text);
      els.digits.appendChild(item);
    });
    drawBoxes(data);
  }

  function clearBoxes() {
    overlay.clearRect(0, 0, boxes.width, boxes.height);
  }

  function drawBoxes(data) {
    clearBoxes();
    const size = data.image_size || [pad.width, pad.height];
    const sx = boxes.width / size[0];
    const sy = boxes.height / size[1];
    overlay.font = "600 " + Math.round(pad.height / 16) + "px system-ui, sans-serif";
    overlay.textBaseline = "bottom";
    data.digits.forEach(function (d) {
      const [left, top, right, bottom] = d.box;
      const x = left * sx - 3, y = top * sy - 3, w = (right - left) * sx + 6, h = (bottom - top) * sy + 6;
      const unsure = isUnsure(d);
      overlay.strokeStyle = unsure ? "#d97706" : "#1d4ed8";
      overlay.lineWidth = 2;
      overlay.setLineDash(unsure ? [6, 4] : []);
      overlay.strokeRect(x, y, w, h);
      overlay.fillStyle = unsure ? "#b45309" : "#1d4ed8";
      const label = d.digit + " " + percent(d.confidence) + (unsure ? " ?" : "");
      overlay.fillText(label, Math.max(2, x), Math.max(overlay.measureText("0").actualBoundingBoxAscent + 2, y - 2));
    });
  }

  function showIdle() {
    els.number.textContent = "";
    els.number.dataset.strokes = "0";
    els.confidence.textContent = "";
    els.digits.textContent = "";
    clearBoxes();
  }

  function showError(message) {
    showIdle();
    setStatus(message, true);
  }

  function setStatus(message, isError) {
    els.status.textContent = message;
    els.status.classList.toggle("error", Boolean(isError));
  }

  window.addEventListener("resize", function () {
    if (!els.numberMode.hidden) fitPad();
  });

  setMode(window.location.hash === "#number" ? "number" : "digit");
})();
