// New vehicle search: show the fields of the chosen way (plate, VIN or holder) only.
// Without JS every way stays visible and the radio button decides.
(function () {
  "use strict";
  const radios = document.querySelectorAll('input[name="way"]');
  const ways = document.querySelectorAll(".way[data-way]");
  function show() {
    const chosen = document.querySelector('input[name="way"]:checked');
    ways.forEach((w) => { w.hidden = chosen !== null && w.dataset.way !== chosen.value; });
  }
  radios.forEach((r) => r.addEventListener("change", show));
  show();
})();
