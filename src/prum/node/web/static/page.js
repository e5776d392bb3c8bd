// Every page: a form marked data-once is sent once (its submit button locks until the
// next page; the server also answers a repeated form with the first search), and a
// text area with a maxlength counts the characters left.
(function () {
  "use strict";
  document.querySelectorAll("form[data-once]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      form.querySelectorAll("button[type=submit]").forEach((button) => {
        button.setAttribute("aria-disabled", "true");
        button.classList.add("busy");
        if (button.dataset.busy) button.textContent = button.dataset.busy;
      });
      form.setAttribute("aria-busy", "true");
    });
  });
  // Back to a page kept in the browser's cache: the form may be sent again.
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-once]").forEach((form) => {
      delete form.dataset.sent;
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button[type=submit]").forEach((button) => {
        button.removeAttribute("aria-disabled");
        button.classList.remove("busy");
        if (button.dataset.idle) button.textContent = button.dataset.idle;
      });
    });
  });
  // A limit in data-max is told, never enforced by cutting: a pasted text stays whole,
  // the counter says how much is too much and the form is not sent until it fits.
  document.querySelectorAll("textarea[maxlength], textarea[data-max]").forEach((area) => {
    const limit = Number(area.dataset.max || area.getAttribute("maxlength"));
    const counter = document.createElement("p");
    counter.className = "help counter";
    counter.id = (area.id || area.name) + "-count";
    counter.setAttribute("aria-live", "polite");
    area.insertAdjacentElement("afterend", counter);
    const described = area.getAttribute("aria-describedby");
    area.setAttribute("aria-describedby", (described ? described + " " : "") + counter.id);
    const words = counter.closest("[data-counter]");
    const show = () => {
      const n = area.value.length;
      const over = n - limit;
      const template = over > 0
        ? (words && words.dataset.counterOver) || "{n} of {max} characters: {over} too many"
        : (words && words.dataset.counter) || "{n} of {max} characters";
      const text = template.replace("{n}", n.toLocaleString()).replace("{max}", limit.toLocaleString())
        .replace("{over}", over.toLocaleString());
      counter.textContent = text;
      counter.classList.toggle("over", over > 0);
      area.setCustomValidity(over > 0 ? text : "");
    };
    area.addEventListener("input", show);
    show();
  });
  // Times come in UTC; each is shown in the officer's own zone, with its abbreviation.
  const lang = document.documentElement.lang || "en";
  document.querySelectorAll("time[data-form]").forEach((node) => {
    const at = new Date(node.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) return;
    const form = node.dataset.form;
    const options = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
      minute: "2-digit", hourCycle: "h23", timeZoneName: "short" };
    if (form === "seconds") options.second = "2-digit";
    const parts = {};
    new Intl.DateTimeFormat(lang, options).formatToParts(at).forEach((p) => { parts[p.type] = p.value; });
    let text = `${parts.year}-${parts.month}-${parts.day}`;
    if (form !== "date") {
      text += ` ${parts.hour}:${parts.minute}${parts.second ? ":" + parts.second : ""} ${parts.timeZoneName}`;
    }
    node.title = node.textContent;  // the UTC time, on hover
    node.textContent = text;
  });
  // A table wider than a phone scrolls inside itself: reachable with the keyboard too.
  const scrollable = () => document.querySelectorAll("table.data").forEach((table) => {
    if (table.scrollWidth > table.clientWidth + 1) {
      table.setAttribute("tabindex", "0");
    } else if (table.getAttribute("tabindex") === "0") {
      table.removeAttribute("tabindex");
    }
  });
  window.addEventListener("resize", scrollable);
  scrollable();
})();
