// digitdraw page, number mode: write a whole number on canvas#number-pad; after
// every stroke the drawing goes to POST /predict/number, the number is shown
// large and each digit's box is drawn over the ink with its confidence.
// Digit mode (static/app.js, canvas#pad) works on its own; both modes draw with
// static/pad.js and ask with static/ask.js. This file only adds the mode switch
// and everything inside main#number-mode.
(function () {
  "use strict";

  const percent = window.digitdraw.percent;  // static/ask.js

  const UNSURE_BELOW = 0.6;            // same threshold the API uses for "unsure"
  const PHONE_WIDTH = 600;             // below this viewport width the pad is 2:1, not 3:1

  const canvas = document.getElementById("number-pad");
  const boxes = document.getElementById("number-boxes");
  if (!canvas || !boxes) return;
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
  const setStatus = window.digitdraw.statusLine(els.status);

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
    if (pad.strokeCount()) return;
    const width = window.innerWidth < PHONE_WIDTH ? 560 : 840;
    if (canvas.width !== width) {
      canvas.width = boxes.width = width;
      canvas.parentElement.classList.toggle("narrow", width === 560);
    }
    pad.redraw();
  }

  els.digitButton.addEventListener("click", function () { setMode("digit"); });
  els.numberButton.addEventListener("click", function () { setMode("number"); });

  // ---------------------------------------------------------------- drawing (static/pad.js)

  const pad = window.digitdraw.pad(canvas, {
    brush: function () { return canvas.height / 14; },   // 20 px on 280: the digit pad's marker
    undoButton: els.undo,
    onStrokeStart: clearBoxes,         // the old boxes no longer match the ink
    onChange: readDrawing,
  });

  function clearAll() {
    pad.clear();
    asker.forget();
    showIdle();
    setStatus("");
    fitPad();
  }

  els.clear.addEventListener("click", clearAll);
  document.addEventListener("keydown", function (event) {
    if (els.numberMode.hidden || !window.digitdraw.isUndoKey(event)) return;
    event.preventDefault();
    event.stopImmediatePropagation();    // digit mode's Ctrl+Z must not undo its hidden pad
    pad.undo();
  }, true);

  // ---------------------------------------------------------------- asking the server (static/ask.js)

  const asker = window.digitdraw.ask("/predict/number", {
    valid: function (data) { return typeof data.number === "string"; },
    sending: function () { setStatus("Reading your number…"); },
    answered: function (data, body, strokeCount) {
      showReading(data);
      els.number.dataset.strokes = String(strokeCount);   // which drawing this answer is for
      setStatus("");
    },
    failed: showError,
  });

  function readDrawing() {
    asker.forget();
    if (!pad.strokeCount()) {
      showIdle();
      setStatus("");
      return;
    }
    asker.sendCanvas(canvas, pad.strokeCount());
  }

  // ---------------------------------------------------------------- showing answers

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
    const size = data.image_size || [canvas.width, canvas.height];
    const sx = boxes.width / size[0];
    const sy = boxes.height / size[1];
    overlay.font = "600 " + Math.round(canvas.height / 16) + "px system-ui, sans-serif";
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

  window.addEventListener("resize", function () {
    if (!els.numberMode.hidden) fitPad();
  });

  setMode(window.location.hash === "#number" ? "number" : "digit");
})();
