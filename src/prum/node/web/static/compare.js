// Comparison of a probe and a candidate: one zoom and pan for every view (wheel, drag,
// keyboard); faces: landmarks from the node's own landmarker, and besides side by side
// a blend, flicker or wipe of the two; fingerprints: the minutia pairs the holder's
// matcher relied on, numbered alike on both prints.
(function () {
  "use strict";
  const section = document.querySelector("section.compare");
  if (!section) return;
  const ports = Array.from(document.querySelectorAll(".viewport"));
  const layers = ports.map((p) => p.querySelector(".layer"));
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
    const shown = ports.find((p) => p.offsetParent !== null) || ports[0];
    const r = shown.getBoundingClientRect();
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

  function dot(svg, x, y, r, colour) {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("cx", x);
    c.setAttribute("cy", y);
    c.setAttribute("r", r);
    c.setAttribute("fill", colour);
    svg.appendChild(c);
    return c;
  }

  // Faces: landmarks in the crop's pixels.
  function landmarks(svg, face) {
    if (!svg || !face || !face.landmarks) return;
    svg.setAttribute("viewBox", `0 0 ${face.width} ${face.height}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    const r = Math.max(0.8, face.width / 300);
    face.landmarks.forEach(([x, y]) => dot(svg, x, y, r, "#39e75f"));
  }

  // Fingerprints: pair i drawn as a ring numbered i on both prints, in the image's own
  // pixels once it has loaded (the viewBox then matches object-fit: contain).
  const PALETTE = ["#ff3b30", "#ff9500", "#ffcc00", "#34c759", "#00c7be", "#30b0ff", "#5856d6", "#af52de", "#ff2d55"];
  function minutiae(svg, img, pairs, side) {
    if (!svg || !img) return;
    const draw = () => {
      const w = img.naturalWidth, h = img.naturalHeight;
      if (!w || !h) return;
      svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
      svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
      svg.replaceChildren();
      const r = Math.max(4, w / 60);
      pairs.forEach((p, i) => {
        const x = p[2 * side] * w, y = p[2 * side + 1] * h;
        const colour = PALETTE[i % PALETTE.length];
        const ring = dot(svg, x, y, r, "none");
        ring.setAttribute("stroke", colour);
        ring.setAttribute("stroke-width", Math.max(1.5, r / 3));
        ring.setAttribute("class", "minutia");
        const label = document.createElementNS(SVG, "text");
        label.setAttribute("x", x + r * 1.1);
        label.setAttribute("y", y - r * 0.6);
        label.setAttribute("fill", colour);
        label.setAttribute("font-size", r * 1.6);
        label.setAttribute("font-weight", "bold");
        label.textContent = String(i + 1);
        svg.appendChild(label);
      });
    };
    if (img.complete) draw(); else img.addEventListener("load", draw);
  }

  const probeSvg = document.getElementById("probe-overlay");
  const candidateSvg = document.getElementById("candidate-overlay");
  const facesData = document.getElementById("faces-data");
  const pairsData = document.getElementById("pairs-data");
  const toggle = document.getElementById("landmarks-toggle");
  if (facesData) {
    const shownFaces = JSON.parse(facesData.textContent || "{}");
    landmarks(probeSvg, shownFaces.probe);
    landmarks(candidateSvg, shownFaces.candidate);
    if (toggle) toggle.disabled = !shownFaces.probe;
  }
  if (pairsData) {
    const pairs = JSON.parse(pairsData.textContent || "[]");
    minutiae(probeSvg, document.getElementById("probe-img"), pairs, 0);
    minutiae(candidateSvg, document.getElementById("candidate-img"), pairs, 1);
  }
  if (toggle) {
    // SVG elements ignore the HTML "hidden" attribute: a class on the section shows them.
    toggle.addEventListener("change", () => {
      section.classList.toggle("show-landmarks", toggle.checked);
    });
  }

  // Faces: side by side, or the candidate over the probe (blend, flicker, wipe).
  const modes = document.getElementById("view-modes");
  if (!modes) return;
  const pair = section.querySelector(".pair");
  const stack = document.getElementById("stack");
  const top = document.getElementById("stack-top");
  const mix = document.getElementById("mix");
  const faces = facesData ? JSON.parse(facesData.textContent || "{}") : {};

  // The candidate's eyes onto the probe's: a similarity transform (scale, turn, shift)
  // from the two eye centres, in the viewport's pixels (both images fit it, contained).
  function align() {
    const img = document.getElementById("stack-candidate");
    const port = stack.querySelector(".viewport");
    if (!faces.probe || !faces.candidate || !faces.probe.eyes || !faces.candidate.eyes) return;
    const W = port.clientWidth, H = port.clientHeight;
    if (!W || !H) return;
    const shown = (face, [x, y]) => {
      const s = Math.min(W / face.width, H / face.height);
      return [(W - face.width * s) / 2 + x * s, (H - face.height * s) / 2 + y * s];
    };
    const [a1, a2] = faces.candidate.eyes.map((p) => shown(faces.candidate, p));
    const [b1, b2] = faces.probe.eyes.map((p) => shown(faces.probe, p));
    const va = [a2[0] - a1[0], a2[1] - a1[1]], vb = [b2[0] - b1[0], b2[1] - b1[1]];
    const k = Math.hypot(...vb) / Math.max(1e-6, Math.hypot(...va));
    const t = Math.atan2(vb[1], vb[0]) - Math.atan2(va[1], va[0]);
    const a = k * Math.cos(t), b = k * Math.sin(t);
    const e = b1[0] - (a * a1[0] - b * a1[1]), f = b1[1] - (b * a1[0] + a * a1[1]);
    img.style.transformOrigin = "0 0";
    img.style.transform = `matrix(${a}, ${b}, ${-b}, ${a}, ${e}, ${f})`;
  }
  window.addEventListener("resize", align);
  let timer = null;
  function show(mode) {
    if (timer) { clearInterval(timer); timer = null; }
    section.dataset.mode = mode;
    pair.hidden = mode !== "side";
    stack.hidden = mode === "side";
    if (mode !== "side") align();
    mix.disabled = mode === "side" || mode === "flicker";
    const share = Number(mix.value) / 100;
    top.style.opacity = mode === "blend" ? String(share) : "1";
    top.style.clipPath = mode === "wipe" ? `inset(0 ${100 - 100 * share}% 0 0)` : "none";
    top.style.visibility = "visible";
    if (mode === "flicker") {
      timer = setInterval(() => {
        top.style.visibility = top.style.visibility === "hidden" ? "visible" : "hidden";
      }, 600);
    }
  }
  modes.addEventListener("change", () => {
    const chosen = modes.querySelector("input[name=view-mode]:checked");
    show(chosen ? chosen.value : "side");
  });
  mix.addEventListener("input", () => show(section.dataset.mode || "side"));
  show("side");
})();
