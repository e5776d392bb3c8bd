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
  document.querySelectorAll("textarea[maxlength]").forEach((area) => {
    const limit = Number(area.getAttribute("maxlength"));
    const counter = document.createElement("p");
    counter.className = "help counter";
    counter.id = (area.id || area.name) + "-count";
    counter.setAttribute("aria-live", "polite");
    area.insertAdjacentElement("afterend", counter);
    const words = area.dataset.counter || "{n} of {max} characters";
    const show = () => {
      counter.textContent = words.replace("{n}", area.value.length).replace("{max}", limit);
      counter.classList.toggle("mismatch", area.value.length >= limit);
    };
    area.addEventListener("input", show);
    show();
  });
})();
