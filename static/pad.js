// digitdraw drawing pad, shared by digit mode (app.js) and number mode (number.js):
// mouse, pen and touch through pointer events on a <canvas>, round marker strokes.
// Strokes are kept as point lists so Undo can redraw without the last one.
//
//   const pad = digitdraw.pad(canvas, {
//     brush,          // stroke width in canvas pixels, or a function giving it at paint time
//     undoButton,     // optional: clicking it undoes; disabled while there is nothing to undo
//     onStrokeStart,  // optional: a stroke has begun (what it covers is now stale)
//     onChange,       // a stroke ended or was undone: time to read the drawing
//     paintUnder,     // optional: paintUnder(ctx) paints over the white, under the strokes
//   });
//   pad.redraw(); pad.undo(); pad.clear(); pad.strokeCount();
//
// digitdraw.isUndoKey(event): Ctrl+Z (Cmd+Z) outside text fields; each mode
// listens for it itself, since only the visible pad may undo.
(function () {
  "use strict";

  const digitdraw = window.digitdraw = window.digitdraw || {};

  digitdraw.isUndoKey = function (event) {
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) return false;
    return (event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z";
  };

  digitdraw.pad = function (canvas, options) {
    const ctx = canvas.getContext("2d");

    let strokes = [];        // finished strokes: arrays of {x, y} in canvas pixels
    let current = null;      // the stroke being drawn
    let activePointer = null;
    let frameQueued = false;

    function brush() {
      // number.js resizes its pad, so its brush is asked for at paint time.
      return typeof options.brush === "function" ? options.brush() : options.brush;
    }

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

    function redraw() {
      frameQueued = false;
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      if (options.paintUnder) options.paintUnder(ctx);
      strokes.forEach(paintStroke);
      if (current) paintStroke(current);
      if (options.undoButton) options.undoButton.disabled = strokes.length === 0;
    }

    function queueRedraw() {
      if (!frameQueued) {
        frameQueued = true;
        requestAnimationFrame(redraw);
      }
    }

    function toCanvasPoint(event) {
      // The pad is CSS-scaled; map client pixels back to its own pixel grid.
      const box = canvas.getBoundingClientRect();
      return {
        x: (event.clientX - box.left - canvas.clientLeft) * (canvas.width / canvas.clientWidth),
        y: (event.clientY - box.top - canvas.clientTop) * (canvas.height / canvas.clientHeight),
      };
    }

    canvas.addEventListener("pointerdown", function (event) {
      if (activePointer !== null) return;                      // one finger at a time
      if (event.pointerType === "mouse" && event.button !== 0) return;
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      activePointer = event.pointerId;
      current = [toCanvasPoint(event)];
      if (options.onStrokeStart) options.onStrokeStart();
      queueRedraw();
    });

    canvas.addEventListener("pointermove", function (event) {
      if (event.pointerId !== activePointer) return;
      event.preventDefault();
      // Coalesced samples: a fast stroke keeps its shape even when frames are slow.
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
      options.onChange();
    }

    canvas.addEventListener("pointerup", endStroke);
    canvas.addEventListener("pointercancel", endStroke);
    canvas.addEventListener("lostpointercapture", endStroke);
    canvas.addEventListener("contextmenu", function (event) { event.preventDefault(); });

    function undo() {
      if (!strokes.length) return;
      strokes.pop();
      redraw();
      options.onChange();
    }

    function clear() {
      // Also forgets a stroke still being drawn; the caller says what else clearing means.
      strokes = [];
      current = null;
      activePointer = null;
      redraw();
    }

    if (options.undoButton) options.undoButton.addEventListener("click", undo);

    return {
      canvas: canvas,
      redraw: redraw,
      undo: undo,
      clear: clear,
      strokeCount: function () { return strokes.length; },
    };
  };
})();
