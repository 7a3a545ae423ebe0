// digitdraw: asking the server about a drawing, shared by app.js and number.js.
// One question at a time: a newer drawing, an Undo or a Clear makes the answers
// still on their way stale, so they are dropped (and their requests aborted).
//
//   const asker = digitdraw.ask("/predict", {
//     valid(data),                 // is this JSON a real answer? (anything else is an error)
//     sending(body, headers, tag), // optional: the request is going out now
//     answered(data, body, tag),   // the current question's answer
//     failed(message, sent),       // one sentence for the person; sent is false when the
//                                  // drawing never left the page (the canvas would not export)
//   });
//   asker.forget(); asker.sendCanvas(canvas, tag); asker.send(body, headers, tag);
//   asker.generation()             // bumps with every forget(): compare to spot stale work
//
// digitdraw.statusLine(element) gives setStatus(message, isError) for a mode's
// status line, so both modes show progress and errors the same way;
// digitdraw.percent(p) writes every answer's confidence (digit, number and
// compare cards alike).
(function () {
  "use strict";

  const digitdraw = window.digitdraw = window.digitdraw || {};

  // Never claim certainty the numbers do not show: 0.99996 is ">99.9%", not "100%".
  digitdraw.percent = function (p) {
    if (p >= 0.9995) return ">99.9%";
    if (p < 0.0005) return "<0.1%";
    return (p * 100).toFixed(1) + "%";
  };

  digitdraw.statusLine = function (element) {
    return function setStatus(message, isError) {
      element.textContent = message;
      element.classList.toggle("error", Boolean(isError));
    };
  };

  digitdraw.ask = function (url, options) {
    let inflight = null;     // AbortController of the request whose answer we still want
    let generation = 0;      // bumps whenever earlier answers become stale

    function forget() {
      generation += 1;
      if (inflight) inflight.abort();
      inflight = null;
    }

    function sendCanvas(canvas, tag) {
      const mine = generation;
      canvas.toBlob(function (blob) {
        if (mine !== generation) return;     // drawing changed while encoding
        if (!blob) {
          options.failed("Your browser could not export the drawing; try another browser.", false);
          return;
        }
        send(blob, { "Content-Type": "image/png" }, tag);
      }, "image/png");
    }

    async function send(body, headers, tag) {
      if (options.sending) options.sending(body, headers, tag);
      const controller = new AbortController();
      inflight = controller;
      const mine = generation;
      let response;
      let data = null;
      try {
        response = await fetch(url, {
          method: "POST", body: body, headers: headers, signal: controller.signal,
        });
        data = await response.json().catch(function () { return null; });
      } catch (err) {
        if (err.name === "AbortError" || mine !== generation) return;
        options.failed("Could not reach the server; check the connection and try again.", true);
        return;
      } finally {
        if (inflight === controller) inflight = null;
      }
      if (mine !== generation) return;       // a newer stroke or a Clear won
      if (!response.ok || !data || !options.valid(data)) {
        options.failed(data && data.error ? data.error : "The server answered " + response.status + ".", true);
        return;
      }
      options.answered(data, body, tag);
    }

    return {
      forget: forget,
      send: send,
      sendCanvas: sendCanvas,
      generation: function () { return generation; },
    };
  };
})();
