// digitdraw correction row: after each answer, "Wrong? It was: 0 ... 9".
// One tap sends the image that was just answered, with the chosen digit, to
// POST /feedback. app.js says when an answer is shown (digitdraw:answer, with
// the image it sent) and when it is gone (digitdraw:idle).
(function () {
  "use strict";

  const row = document.getElementById("feedback");
  if (!row) return;                    // corrections are switched off on this server
  const status = document.getElementById("feedback-status");
  const buttons = Array.from(row.querySelectorAll(".feedback-label"));

  let image = null;                    // Blob or File that produced the answer on screen
  let answered = 0;                    // bumps with every new answer: late replies are ignored

  function reset() {
    buttons.forEach(function (button) {
      button.disabled = false;
      button.setAttribute("aria-pressed", "false");
    });
    setStatus("");
  }

  function setStatus(message, isError) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  document.addEventListener("digitdraw:answer", function (event) {
    image = event.detail && event.detail.image;
    answered += 1;
    reset();
    row.hidden = !image;
  });

  document.addEventListener("digitdraw:idle", function () {
    image = null;
    answered += 1;
    row.hidden = true;
  });

  async function send(label, button) {
    if (!image) return;
    const mine = answered;
    buttons.forEach(function (b) { b.disabled = true; });
    button.setAttribute("aria-pressed", "true");
    setStatus("Saving…");
    const form = new FormData();
    form.append("image", image, image.name || "drawing.png");
    form.append("label", String(label));
    let response = null;
    let data = null;
    try {
      response = await fetch("/feedback", { method: "POST", body: form });
      data = await response.json().catch(function () { return null; });
    } catch (err) {
      response = null;
    }
    if (mine !== answered) return;     // a new drawing replaced the one corrected
    if (response && response.status === 201) {
      setStatus("Saved, thank you.");
      button.focus();                  // keep keyboard users where they were
      return;
    }
    reset();
    const message = data && data.error ? data.error
      : response ? "The server answered " + response.status + "." : "Could not reach the server.";
    setStatus("Not saved: " + message, true);
  }

  buttons.forEach(function (button) {
    button.addEventListener("click", function () {
      send(Number(button.dataset.label), button);
    });
  });
})();
