/* The pages work without JavaScript; this only adds conveniences:
   - a replay slider submits its form when moved, and names the event it points at;
   - a [data-print] button prints the page. */
(function () {
  "use strict";
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
    var range = form.querySelector("input[type=range]");
    var output = form.querySelector("output");
    if (!range) { return; }
    var labels = output ? (output.dataset.labels || "").split("|") : [];
    range.addEventListener("input", function () {
      if (!output) { return; }
      var v = parseInt(range.value, 10);
      output.textContent = v === 0 ? output.dataset.zero : (labels[v - 1] || range.value);
    });
    range.addEventListener("change", function () { form.submit(); });
  });
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
}());
