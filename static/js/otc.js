// Order entry: add and clear formset lines without a round trip; focus the first field of a dialog.
(function () {
  "use strict";
  document.addEventListener("shown.bs.modal", function (event) {
    var field = event.target.querySelector("[autofocus]");
    if (field) field.focus();
  });
  document.addEventListener("click", function (event) {
    var add = event.target.closest("#add-line");
    if (add) {
      var total = document.getElementById("id_lines-TOTAL_FORMS");
      var template = document.getElementById("empty-line");
      var body = document.querySelector("#order-lines tbody");
      if (!total || !template || !body) return;
      var index = parseInt(total.value, 10);
      var html = template.innerHTML.replace(/__prefix__/g, String(index)).replace(/__num__/g, String(index + 1));
      body.insertAdjacentHTML("beforeend", html);
      total.value = String(index + 1);
      var select = body.lastElementChild && body.lastElementChild.querySelector("select");
      if (select) select.focus();
      return;
    }
    var clear = event.target.closest(".otc-clear-line");
    if (clear) {
      var row = clear.closest("tr");
      row.querySelectorAll("input:not([type=hidden]), select").forEach(function (el) {
        el.value = "";
        el.classList.remove("is-invalid");
      });
      row.querySelectorAll(".invalid-feedback").forEach(function (el) { el.remove(); });
    }
  });
})();
