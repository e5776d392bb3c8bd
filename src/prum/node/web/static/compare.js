// Side-by-side comparison: one zoom and pan for both images (wheel, drag, keyboard),
// and a landmark overlay drawn from the node's own landmarker.
(function () {
  "use strict";
  const ports = Array.from(document.querySelectorAll(".viewport"));
  const layers = ports.map((p) => p.querySelector(".layer"));
  const data = JSON.parse(document.getElementById("faces-data").textContent || "{}");
  const toggle = document.getElementById("landmarks-toggle");
  const SVG = "http://www.w3.org/2000/svg";
  const view = { scale: 1, x: 0, y: 0 };

  function apply() {
    layers.forEach((layer) => {
      layer.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    });
  }

  function zoom(factor, cx, cy) {
    const next = Math.min(12, Math.max(1, view.scale * factor));
    const f = next / view.scale;
    view.x = cx - (cx - view.x) * f;
    view.y = cy - (cy - view.y) * f;
    view.scale = next;
    if (next === 1) { view.x = 0; view.y = 0; }
    apply();
  }

  function centre() {
    const r = ports[0].getBoundingClientRect();
    return [r.width / 2, r.height / 2];
  }

  ports.forEach((port) => {
    port.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = port.getBoundingClientRect();
      zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    let drag = null;
    port.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
      port.setPointerCapture(e.pointerId);
    });
    port.addEventListener("pointermove", (e) => {
      if (!drag) return;
      view.x = drag.vx + e.clientX - drag.x;
      view.y = drag.vy + e.clientY - drag.y;
      apply();
    });
    port.addEventListener("pointerup", () => { drag = null; });
    port.addEventListener("keydown", (e) => {
      const step = 40;
      const keys = {
        "+": () => zoom(1.2, ...centre()), "=": () => zoom(1.2, ...centre()),
        "-": () => zoom(1 / 1.2, ...centre()), "0": () => { view.scale = 1; view.x = 0; view.y = 0; apply(); },
        ArrowLeft: () => { view.x += step; apply(); }, ArrowRight: () => { view.x -= step; apply(); },
        ArrowUp: () => { view.y += step; apply(); }, ArrowDown: () => { view.y -= step; apply(); },
      };
      if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
    });
  });
  document.getElementById("zoom-in").addEventListener("click", () => zoom(1.25, ...centre()));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(1 / 1.25, ...centre()));
  document.getElementById("zoom-reset").addEventListener("click", () => {
    view.scale = 1; view.x = 0; view.y = 0; apply();
  });

  function overlay(svg, face) {
    if (!face || !face.landmarks) return;
    svg.setAttribute("viewBox", `0 0 ${face.width} ${face.height}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    const r = Math.max(0.8, face.width / 300);
    face.landmarks.forEach(([x, y]) => {
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x);
      dot.setAttribute("cy", y);
      dot.setAttribute("r", r);
      dot.setAttribute("fill", "#39e75f");
      svg.appendChild(dot);
    });
  }
  const probeSvg = document.getElementById("probe-overlay");
  const candidateSvg = document.getElementById("candidate-overlay");
  overlay(probeSvg, data.probe);
  overlay(candidateSvg, data.candidate);
  if (toggle) {
    toggle.disabled = !data.probe;
    // SVG elements ignore the HTML "hidden" attribute: a class on the section shows them.
    const section = document.querySelector("section.compare");
    toggle.addEventListener("change", () => {
      section.classList.toggle("show-landmarks", toggle.checked);
    });
  }
})();
