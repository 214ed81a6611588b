// Shared page behaviour: focus the first field of a dialog when it opens.
// (The order entry page has its own script, order_entry.js.)
(function () {
  "use strict";
  document.addEventListener("shown.bs.modal", function (event) {
    var field = event.target.querySelector("[autofocus]");
    if (field) field.focus();
  });
})();
