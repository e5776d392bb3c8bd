// New face search: drag-and-drop the probe, show the faces the node detects with their
// quality, let the officer pick one. No framework; works without JS (plain upload).
(function () {
  "use strict";
  const form = document.getElementById("search-form");
  const input = document.getElementById("image");
  const zone = document.getElementById("dropzone");
  const preview = document.getElementById("preview");
  const img = document.getElementById("preview-image");
  const svg = document.getElementById("preview-boxes");
  const status = document.getElementById("preview-status");
  const list = document.getElementById("faces");
  const boxField = document.getElementById("face_box");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const SVG = "http://www.w3.org/2000/svg";
  let faces = [];

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function choose(index) {
    boxField.value = faces.length > 1 && index >= 0 ? faces[index].box.join(",") : "";
    svg.querySelectorAll("rect").forEach((r, i) => r.classList.toggle("chosen", i === index));
    svg.querySelectorAll("rect").forEach((r, i) => {
      r.setAttribute("stroke-width", i === index ? Math.max(4, r.dataset.w / 40) : Math.max(2, r.dataset.w / 80));
    });
  }

  function draw(result) {
    svg.replaceChildren();
    list.replaceChildren();
    faces = result.faces || [];
    status.textContent = "";
    status.className = "";
    if (result.error) {
      status.textContent = "Refused: " + result.error;
      status.className = "alert";
    }
    if (result.image) img.src = result.image; // a Type-10 transaction: its frontal image
    if (result.transaction && !result.error) status.textContent = "Transaction " + result.transaction;
    if (!result.width) return;
    svg.setAttribute("viewBox", `0 0 ${result.width} ${result.height}`);
    faces.forEach((face, i) => {
      const [l, t, r, b] = face.box;
      const rect = document.createElementNS(SVG, "rect");
      Object.entries({ x: l, y: t, width: r - l, height: b - t, fill: "none",
        stroke: face.refused ? "#e0262d" : "#28c043", "stroke-width": Math.max(2, (r - l) / 80) })
        .forEach(([k, v]) => rect.setAttribute(k, v));
      rect.dataset.w = r - l;
      svg.appendChild(rect);
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", l);
      label.setAttribute("y", Math.max(t - 6, 14));
      label.setAttribute("fill", face.refused ? "#e0262d" : "#28c043");
      label.setAttribute("font-size", Math.max(14, (r - l) / 6));
      label.textContent = String(i + 1);
      svg.appendChild(label);

      const box = el("div", { class: "face-choice" + (face.refused ? " refused" : "") });
      const radioId = "face-" + i;
      const radio = el("input", { type: "radio", name: "face_choice", id: radioId, value: String(i) });
      if (face.refused) radio.disabled = true;
      radio.addEventListener("change", () => choose(i));
      const lab = el("label", { for: radioId, class: "check" });
      lab.append(radio, ` Face ${i + 1}: overall quality ${face.overall}`);
      box.appendChild(lab);
      if (face.refused) box.appendChild(el("p", { class: "alert", role: "note" }, face.refused));
      const table = el("table");
      const caption = el("caption", { class: "sr-only" }, `Quality components of face ${i + 1}`);
      table.appendChild(caption);
      Object.entries(face.components).forEach(([name, score]) => {
        const row = el("tr");
        row.appendChild(el("th", { scope: "row" }, name.replaceAll("_", " ")));
        const cell = el("td");
        const bar = el("span", { class: "bar", style: `width:${Math.max(2, score)}px` });
        cell.append(bar, ` ${score}`);
        row.appendChild(cell);
        table.appendChild(row);
      });
      box.appendChild(table);
      list.appendChild(box);
    });
    const usable = faces.map((f, i) => (f.refused ? -1 : i)).filter((i) => i >= 0);
    if (usable.length === 1) {
      document.getElementById("face-" + usable[0]).checked = true;
      choose(usable[0]);
    } else if (usable.length > 1) {
      status.textContent = `${faces.length} faces found: choose the one to search with.`;
      choose(-1);
    }
  }

  async function analyse(file) {
    preview.hidden = false;
    img.src = URL.createObjectURL(file);
    status.className = "";
    status.textContent = "Checking the photo …";
    const body = new FormData();
    body.append("image", file);
    body.append("csrf_token", csrf);
    try {
      const response = await fetch(form.action + "/preview", {
        method: "POST", body, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin",
      });
      if (!response.ok) throw new Error("the node answered HTTP " + response.status);
      draw(await response.json());
    } catch (err) {
      status.textContent = "The photo could not be checked: " + err.message;
      status.className = "alert";
    }
  }

  input.addEventListener("change", () => { if (input.files.length) analyse(input.files[0]); });
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (e) => {
    e.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (!e.dataTransfer.files.length) return;
    input.files = e.dataTransfer.files;
    analyse(input.files[0]);
  });
})();
