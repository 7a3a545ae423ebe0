// "Compare models": every model the server loaded (GET /models) answers the same
// drawing, side by side. app.js announces each input with a "digitdraw:input"
// event (detail null when the drawing is cleared); this file sends that input
// to POST /predict?model=NAME once per other model and shows the answers. The
// default model's card shows the page's own answer ("digitdraw:answer", or
// "digitdraw:failed"): the server is not asked the same question twice.
(function () {
  "use strict";

  const percent = window.digitdraw.percent;  // static/ask.js

  const section = document.getElementById("compare");
  const toggle = document.getElementById("compare-toggle");
  const list = document.getElementById("compare-results");
  const STORAGE_KEY = "digitdraw.compare";

  let models = [];          // from GET /models, the default first
  let lastInput = null;     // {body, headers} of the latest drawing or upload
  let lastAnswer = null;    // the page's own answer to it: {data} or {error}
  let generation = 0;       // bumps when earlier answers become stale
  let controllers = [];

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function buildCards() {
    list.replaceChildren();
    models.forEach(function (model) {
      const card = el("li", "compare-model");
      card.dataset.model = model.name;
      const head = el("div", "compare-head");
      head.append(el("span", "compare-name", model.name + (model.default ? " (default)" : "")));
      const acc = typeof model.mnist_accuracy === "number"
        ? (model.mnist_accuracy * 100).toFixed(2) + "% on MNIST" : "MNIST accuracy unknown";
      const meta = el("span", "compare-meta",
        model.architecture + " · " + model.parameters.toLocaleString("en") + " parameters · " + acc);
      const answer = el("div", "compare-answer");
      const digit = el("output", "compare-digit", "–");
      const confidence = el("span", "compare-confidence", "");
      const meter = el("span", "compare-meter");
      meter.setAttribute("aria-hidden", "true");
      meter.append(el("span", "compare-meter-fill"));
      answer.append(digit, confidence);
      card.append(head, meta, answer, meter);
      list.append(card);
    });
  }

  function card(name) {
    return list.querySelector('li[data-model="' + CSS.escape(name) + '"]');
  }

  function showAnswer(name, data, error) {
    const node = card(name);
    if (!node) return;
    const digit = node.querySelector(".compare-digit");
    const confidence = node.querySelector(".compare-confidence");
    const fill = node.querySelector(".compare-meter-fill");
    node.classList.remove("pending", "failed", "disagrees");
    if (error) {
      digit.textContent = "–";
      confidence.textContent = error;
      fill.style.width = "0";
      node.classList.add("failed");
      return;
    }
    digit.textContent = String(data.digit);
    confidence.textContent = percent(data.confidence) + " sure" + (data.is_digit === false ? ", not a digit?" : "");
    fill.style.width = (data.confidence * 100).toFixed(1) + "%";
    node.setAttribute("aria-label", name + ": " + data.digit + ", " + percent(data.confidence) + " sure");
    markDisagreements();
  }

  function markDisagreements() {
    const main = models.find(function (m) { return m.default; }) || models[0];
    const reference = card(main.name).querySelector(".compare-digit").textContent;
    list.querySelectorAll(".compare-model").forEach(function (node) {
      const answer = node.querySelector(".compare-digit").textContent;
      node.classList.toggle("disagrees", answer !== "–" && reference !== "–" && answer !== reference);
    });
  }

  function reset() {
    generation += 1;
    controllers.forEach(function (c) { c.abort(); });
    controllers = [];
    list.querySelectorAll(".compare-model").forEach(function (node) {
      node.classList.remove("pending", "failed", "disagrees");
      node.removeAttribute("aria-label");
      node.querySelector(".compare-digit").textContent = "–";
      node.querySelector(".compare-confidence").textContent = "";
      node.querySelector(".compare-meter-fill").style.width = "0";
    });
  }

  async function ask(model, input, mine) {
    const controller = new AbortController();
    controllers.push(controller);
    card(model.name).classList.add("pending");
    let data = null;
    let response;
    try {
      response = await fetch("/predict?model=" + encodeURIComponent(model.name), {
        method: "POST", body: input.body, headers: input.headers, signal: controller.signal,
      });
      data = await response.json().catch(function () { return null; });
    } catch (err) {
      if (mine === generation) showAnswer(model.name, null, "No answer: the server could not be reached.");
      return;
    }
    if (mine !== generation) return;
    if (!response.ok || !data || typeof data.digit !== "number") {
      showAnswer(model.name, null, data && data.error ? data.error : "The server answered " + response.status + ".");
      return;
    }
    showAnswer(model.name, data);
  }

  function defaultModel() {
    return models.find(function (m) { return m.default; });
  }

  function showPageAnswer() {
    const main = defaultModel();
    if (!toggle.checked || !lastInput || !lastAnswer || !main) return;
    showAnswer(main.name, lastAnswer.data, lastAnswer.error);
  }

  function compareNow() {
    reset();
    if (!toggle.checked || !lastInput) return;
    const mine = generation;
    const input = lastInput;
    models.forEach(function (model) {
      if (model.default) {
        card(model.name).classList.add("pending");
        showPageAnswer();                 // at once if the page already has it
      } else {
        ask(model, input, mine);
      }
    });
  }

  function setOpen(open) {
    list.hidden = !open;
    try { window.localStorage.setItem(STORAGE_KEY, open ? "on" : "off"); } catch (err) { /* private mode */ }
    compareNow();
  }

  document.addEventListener("digitdraw:input", function (event) {
    lastInput = event.detail;
    lastAnswer = null;
    compareNow();
  });
  document.addEventListener("digitdraw:answer", function (event) {
    lastAnswer = { data: event.detail.result };
    showPageAnswer();
  });
  document.addEventListener("digitdraw:failed", function (event) {
    lastAnswer = { error: event.detail.message };
    showPageAnswer();
  });
  toggle.addEventListener("change", function () { setOpen(toggle.checked); });

  fetch("/models").then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
    if (!data || !Array.isArray(data.models) || data.models.length < 2) return;  // nothing to compare
    models = data.models.slice().sort(function (a, b) { return (b.default ? 1 : 0) - (a.default ? 1 : 0); });
    buildCards();
    section.hidden = false;
    let remembered = null;
    try { remembered = window.localStorage.getItem(STORAGE_KEY); } catch (err) { /* private mode */ }
    toggle.checked = remembered === "on";
    setOpen(toggle.checked);
  }).catch(function () { /* comparing is optional: the page works without it */ });
})();
