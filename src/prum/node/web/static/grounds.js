// Offence and penalty belong to criminal-offence searches only: for a missing-person or
// human-remains search they are disabled (and so not sent); the server checks anyway.
(function () {
  "use strict";
  var purpose = document.getElementById("purpose");
  var fields = ["offence", "max_penalty_months"].map(function (id) {
    return document.getElementById(id);
  });
  if (!purpose) return;
  function update() {
    var criminal = purpose.value === "investigation";
    fields.forEach(function (field) {
      if (field) field.disabled = !criminal;
    });
  }
  purpose.addEventListener("change", update);
  update();
})();
